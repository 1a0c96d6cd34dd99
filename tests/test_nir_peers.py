"""The NIR export in other simulators: snnTorch 1.0 and norse 1.1 (the peer environment, ``make peer``; skipped
without it), each reading the file as the export's docstring tells a reader (scripts/nir_peer_check.py), against
the project's own inference (Brian2, numpy runtime) of the exported network on the same sklearn digits."""

import os
import subprocess
from pathlib import Path

import brian2 as b2
import numpy as np
import pytest

from biograd.data.embedded import load_sklearn_digits
from biograd.export import export_run
from biograd.models.loihi import loihi_layers
from biograd.models.network import BioGradNetwork, PlasticState

N_DIGITS = 100
ROOT = Path(__file__).parents[1]


def peer_python() -> str | None:
    """The peer environment's interpreter (``make peer``; or $BIOGRAD_PEER_PYTHON), if it exists."""
    candidate = os.environ.get("BIOGRAD_PEER_PYTHON") or str(ROOT / ".venv-peer/bin/python")
    return candidate if Path(candidate).is_file() else None


def seeded_run(root: Path, seed: int = 5):
    """A 64-32-10 run at precision loihi on sklearn digits with a checkpoint of seeded He-scaled random weights on
    Loihi's grid (active enough that most digits make output spikes), made without training."""
    from biograd.config import load_config
    from biograd.launch import start_run
    from biograd.rundir import Progress

    config = root / "c.yaml"
    config.write_text("name: c\nmodel: {sizes: [64, 32, 10], feedback: sleep, precision: loihi}\ndata: {source: "
                      "sklearn, n_train: 40, n_test: 20, validation: 0}\ntrain: {backend: numpy}\n")
    run = start_run(load_config(config), root=root / "out")
    spec = run.config.model.using(run.build_equations())
    rng = np.random.default_rng(seed)
    sizes = spec.sizes
    W = [rng.normal(0, 1.5 * np.sqrt(2 / n_in), (n_out, n_in)) for n_in, n_out in zip(sizes, sizes[1:], strict=False)]
    state = PlasticState([layer.weight for layer in loihi_layers(spec, W)], B={2: rng.normal(0, 0.1, (32, 10))},
                         bias={l: np.zeros(n) for l, n in enumerate(sizes) if l})
    run.save_checkpoint(state, Progress())
    return run


def project_inference(run, images: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The run's inference build (Brian2, numpy runtime) on ``images``: input spikes (steps x digits x inputs),
    output spike counts (digits x outputs) and predicted classes."""
    b2.prefs.codegen.target = "numpy"
    b2.set_device("runtime")
    b2.device.reinit()
    b2.device.activate()
    spec = run.config.model.using(run.build_equations())
    state, _ = run.load_checkpoint()
    n = len(images)
    net = BioGradNetwork(spec, slots=n, inference=True)
    monitors = [b2.SpikeMonitor(net.layers[l], name=f"spikes{l % len(net.layers)}") for l in (0, -1)]
    net.network.add(*monitors)
    net.runner.prepare(net.network)
    result = net.run_chunk(np.full(n, net.composition.slot_infer), images, np.zeros((n, spec.sizes[-1])), state)
    n_f = net.composition.n_f
    found = []
    for monitor, size in zip(monitors, (spec.sizes[0], spec.sizes[-1]), strict=True):
        steps = np.rint(monitor.t / net.composition.dt).astype(int)
        spikes = np.zeros((n_f, n, size))
        np.add.at(spikes, (steps % n_f, steps // n_f, np.asarray(monitor.i)), 1)
        found.append(spikes)
    b2.device.reinit()
    return found[0], found[1].sum(0), result.predictions()


@pytest.mark.slow
@pytest.mark.skipif(peer_python() is None, reason="no peer environment (make peer: Python 3.11, torch, snnTorch 1.0, "
                                                  "norse 1.1, nir, nirtorch)")
def test_snntorch_and_norse_classify_the_nir_export_as_the_project(tmp_path):
    """Both readers, reading the file as the export's docstring says, get the project's input spikes from the
    metadata's input encoding and give its output spike counts and classes exactly: the weights lie on Loihi's
    grid (multiples of 2^-9 threshold units here), their sums are exact in float32, and the no-leak compartment's
    2^-30 per step lies below float32's resolution. Neither reader loads the graph with its Delay nodes left in.
    Measured: the same on 500 digits of three seeds and of a run trained for one epoch."""
    python = peer_python()
    if subprocess.run([python, "-c", "import nir, nirtorch, norse, snntorch"], capture_output=True).returncode:
        pytest.skip(f"{python} lacks nir, nirtorch, norse or snntorch: rm .venv-peer/.installed; make peer")
    run = seeded_run(tmp_path)
    net = export_run(run.path, "nir")
    images = load_sklearn_digits().images[-N_DIGITS:].reshape(N_DIGITS, -1)
    input_spikes, counts, predictions = project_inference(run, images)
    pixels, out = tmp_path / "pixels.npz", tmp_path / "out.npz"
    np.savez(pixels, pixels=images)
    subprocess.run([python, str(ROOT / "scripts/nir_peer_check.py"), str(net), str(pixels), str(out)], check=True,
                   timeout=600)
    peers = np.load(out)
    assert counts.sum() > 10 * N_DIGITS and (counts.sum(1) > 0).mean() > 0.9  # the output layer is active
    np.testing.assert_array_equal(peers["input"], input_spikes)
    assert "KeyError" in str(peers["norse_delays"])  # nirtorch maps Delay to nothing for norse
    assert "Unknown node type" in str(peers["snntorch_delays"])
    for reader in ("snntorch", "norse"):
        np.testing.assert_array_equal(peers[reader], counts, err_msg=reader)
        np.testing.assert_array_equal(peers[f"{reader}_classes"], predictions, err_msg=reader)
