"""``biograd export --format netx`` of a run whose sleep rule has no sum-of-products form (scale_sleep not 0: the term
of sigma_sleep_pre, which no trace of Loihi's learning engine holds) writes the network and the other rules, leaves
that rule out with the reason in the file (attribute ``loihi1/learning`` ``feedback2.leftOut``) and says so in one
line. The run is made by the launcher's first step with a checkpoint of arbitrary weights (no training)."""

from pathlib import Path

import h5py
import numpy as np
import pytest
from support import untrained_run
from typer.testing import CliRunner

from biograd.cli import app
from biograd.export import left_out_line, write_netx
from biograd.models.errors import ModelFileError
from biograd.models.loihi import learning_rules, loihi_layers
from biograd.models.spec import NetworkSpec

SCALED = {"feedback_synapse": {"scale_sleep": 0.105}}  # the mnist_2h sleep study's value


def _run(root: Path, scale_sleep: float) -> Path:
    return untrained_run(root, f"{{feedback_synapse: {{scale_sleep: {scale_sleep}}}}}")[0].path


def test_the_sleep_rule_of_a_scaled_run_is_left_out_of_the_file_with_its_reason(tmp_path):
    spec = NetworkSpec(sizes=(20, 10, 10), precision="loihi", params=SCALED)
    with pytest.raises(ModelFileError, match="reads sigma_sleep_pre"):
        learning_rules(spec)  # biograd check's strict form
    rules = learning_rules(spec, left_out=True)
    assert isinstance(rules["feedback2"], ModelFileError) and "scale_sleep = 0.105" in rules["feedback2"].problem
    assert rules["forward1"] == learning_rules(NetworkSpec(sizes=(20, 10, 10), precision="loihi"))["forward1"]
    rng = np.random.default_rng(0)
    layers = loihi_layers(spec, [0.05 * rng.standard_normal((10, 20)), 0.05 * rng.standard_normal((10, 10))])
    write_netx(tmp_path / "a.net", layers, rules=rules, provenance={})
    with h5py.File(tmp_path / "a.net", "r") as f:
        assert sorted(f["layer"]) == ["0", "1"] and sorted(f["loihi1/learning"]) == ["forward1", "forward2"]
        assert dict(f["loihi1/learning"].attrs) == {"feedback2.leftOut": rules["feedback2"].problem}
    line = left_out_line("feedback2", rules["feedback2"])
    assert "\n" not in line and "scale_sleep" in line and "feedback2" in line


@pytest.mark.slow
def test_an_unmappable_sleep_rule_is_left_out_and_the_network_exported(tmp_path):
    run = _run(tmp_path, 0.105)
    result = CliRunner().invoke(app, ["export", str(run), "--format", "netx"])
    assert result.exit_code == 0, result.output
    notes = [line for line in result.output.splitlines() if line.startswith("note:")]
    assert len(notes) == 1, result.output
    assert notes[0].startswith("note: the learning rule of feedback2 is left out of loihi1/learning (attribute "
                               "feedback2.leftOut): rule db_sleep (feedback_synapse_loihi, feedback2)")
    assert "reads sigma_sleep_pre" in notes[0] and notes[0].endswith(
        "the rule has them where eta_sleep*scale_sleep is not 0 (eta_sleep = 0.0003, scale_sleep = 0.105)")
    with h5py.File(run / "export.net", "r") as f:
        assert [f[f"layer/{l}/weight"].shape for l in (0, 1)] == [(12, 64), (10, 12)]
        learning = f["loihi1/learning"]
        assert sorted(k for k in learning if k != "traces") == ["forward1", "forward2"]
        assert learning["forward1"][()].decode().startswith("dw = ")
        assert dict(learning.attrs) == {"feedback2.leftOut": notes[0].split("leftOut): ", 1)[1]}
