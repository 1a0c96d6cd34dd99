"""`biograd describe` prints Brian2 code: its blocks, pasted into a plain Brian2 script, build the network's groups."""

import json
import re
import subprocess
import sys

import pytest
from typer.testing import CliRunner

from biograd.cli import app
from biograd.models.spec import NetworkSpec

CHECK = """
run(2*n_slot*defaultclock.dt)
groups = {obj.name: obj for obj in list(globals().values()) if isinstance(obj, (NeuronGroup, Synapses))}
print(json.dumps({"t_steps": int(round(defaultclock.t/defaultclock.dt)), "groups": {name: {
    "n": len(obj), "equations": sorted(obj.equations.names),
    "slot_start": [o.when for o in obj.contained_objects if "_run_regularly" in o.name],
    "method": obj.state_updater.method_choice if obj.state_updater else None} for name, obj in groups.items()}}))
"""


def _expected(spec: NetworkSpec) -> dict:
    """Name -> (size, GroupSpec) of every group the network builds, as the composition makes them."""
    c = spec.composition
    layers = [c.layer_group(layer) for layer in range(c.n_layers + 1)]
    groups = {f"layer{layer}": (spec.sizes[layer], g) for layer, g in enumerate(layers)}
    for layer in range(1, c.n_layers + 1):
        groups[f"forward{layer}"] = (spec.sizes[layer - 1] * spec.sizes[layer],
                                     c.synapse_group(c.synapse_kind(layer), layers[layer - 1], layers[layer]))
        if c.has_feedback_synapses(layer):
            groups[f"feedback{layer}"] = (spec.sizes[layer] * spec.sizes[layer - 1],
                                          c.synapse_group("feedback", layers[layer], layers[layer - 1]))
    return groups


@pytest.mark.parametrize(("sizes", "feedback"), [("4-3-2", "sleep"), ("4-3-3-2", "transpose")])
def test_describe_blocks_run_as_a_plain_brian2_script(sizes, feedback, tmp_path):
    result = CliRunner().invoke(app, ["describe", "--sizes", sizes, "--feedback", feedback])
    assert result.exit_code == 0, result.output
    blocks = re.findall(r"```python\n(.*?)```", result.output, re.S)
    assert blocks[0].startswith("from brian2 import *\n")
    script = tmp_path / "pasted.py"
    script.write_text("import json\n" + "".join(blocks).replace(
        "from brian2 import *\n", "from brian2 import *\nprefs.codegen.target = 'numpy'\n", 1) + CHECK)
    run = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, cwd=tmp_path, timeout=120)
    assert run.returncode == 0, run.stderr[-3000:]
    assert "WARNING" not in run.stderr, run.stderr[-3000:]
    built = json.loads(run.stdout.splitlines()[-1])
    spec = NetworkSpec(sizes=tuple(int(n) for n in sizes.split("-")), feedback=feedback)
    expected = _expected(spec)
    assert built["t_steps"] == 2 * spec.composition.n_slot
    assert set(built["groups"]) == set(expected)
    for name, (size, group) in expected.items():
        got = built["groups"][name]
        kwargs = group.synapse_kwargs() if name[0] != "l" else group.neuron_kwargs()
        assert got["n"] == size and got["equations"] == sorted(group.equations.names), name
        if got["method"] is not None or name.startswith("layer"):
            assert got["method"] == kwargs["method"], name  # without method=, Brian2 picks its own
        assert got["slot_start"] == (["start"] if group.slot_start else []), name
    assert built["groups"]["layer1"]["method"] == "euler"
