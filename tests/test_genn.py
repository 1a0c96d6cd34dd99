"""The GeNN backend: the GeNN code generated from the equation files (golden text, every tier), and GeNN runs
checked against cpp_standalone (``make test-genn``; skipped where pygenn is not installed) on GeNN's CPU
backend, or on CUDA with ``BIOGRAD_GENN_BACKEND=cuda``.

Golden texts live in ``data/genn/``; after an intended change of the equations or the translator, rewrite
them with ``BIOGRAD_UPDATE_GOLDEN=1 pytest tests/test_genn.py -k golden`` and read the diff.
"""

import difflib
import os
import shutil
from pathlib import Path

import numpy as np
import pytest
from sklearn.datasets import load_digits
from support import TRAIN

from biograd.models.backend import Backend
from biograd.models.elements import equations_dir
from biograd.models.errors import ModelFileError
from biograd.models.genn.runner import PYGENN_MISSING, pygenn_available
from biograd.models.genn.translate import translate
from biograd.models.network import BioGradNetwork
from biograd.models.spec import NetworkSpec

GOLDEN = Path(__file__).parent / "data" / "genn"
DETERMINISTIC = {"error_events": {"dither_error": 0}}  # regular input, no dither, no sleep: no random numbers
CASES = {
    "fixed_random": NetworkSpec(sizes=(64, 20, 12, 10), feedback="fixed_random", params=DETERMINISTIC),
    "transpose": NetworkSpec(sizes=(64, 20, 12, 10), feedback="transpose", params=DETERMINISTIC),
    "sleep": NetworkSpec(sizes=(64, 20, 12, 10), feedback="sleep"),
}
IMAGES, LABELS = load_digits(return_X_y=True)
genn = pytest.mark.genn
GENN_BACKEND = os.environ.get("BIOGRAD_GENN_BACKEND", "single_threaded_cpu")  # cuda: scripts/gpu_check.sh
requires_pygenn = pytest.mark.skipif(not pygenn_available(), reason=PYGENN_MISSING)


def samples(start: int, n: int):
    targets = np.zeros((n, 10))
    targets[np.arange(n), LABELS[start : start + n]] = 1.0
    return np.full(n, TRAIN), IMAGES[start : start + n] / 16, targets


def generated_text(spec: NetworkSpec, inference: bool = False) -> str:
    net = BioGradNetwork(spec, slots=3, seed=1, inference=inference)
    return translate(net.network, net.composition.elements.values()).text()


@pytest.mark.parametrize(("case", "inference"), [(case, False) for case in CASES] + [("fixed_random", True)])
def test_generated_genn_code_matches_the_golden_text(case, inference):
    """Every code string, variable, parameter and array GeNN gets, as text: a change of the equations or of the
    translator shows as a diff here, in every tier (no pygenn needed)."""
    text = generated_text(CASES[case], inference)
    path = GOLDEN / f"{case}{'_inference' if inference else ''}.txt"
    if os.environ.get("BIOGRAD_UPDATE_GOLDEN") == "1":
        path.parent.mkdir(exist_ok=True)
        path.write_text(text)
    expected = path.read_text()
    diff = "".join(difflib.unified_diff(expected.splitlines(True), text.splitlines(True), str(path), "generated", n=1))
    assert text == expected, f"generated GeNN code differs from the golden text:\n{diff[:4000]}"


def test_untranslatable_construct_names_the_file_and_line(tmp_path):
    """A function GeNN's language lacks, in an equation file: the error names the function, the file and the line."""
    equations = tmp_path / "equations"
    shutil.copytree(equations_dir(), equations)
    teacher = equations / "teacher.eqs"
    teacher.write_text(teacher.read_text().replace("y_high*target(t, i) : 1", "y_high*exprel(target(t, i)) : 1"))
    line = next(n for n, code in enumerate(teacher.read_text().splitlines(), 1) if "exprel" in code)
    spec = CASES["fixed_random"].using(equations)
    with pytest.raises(ModelFileError, match=rf"teacher\.eqs:{line}: GeNN backend: cannot translate 'exprel'"):
        generated_text(spec)


# ---------------------------------------------------------------------------------------------------------------
# GeNN runs (GeNN's single-threaded CPU backend) against cpp_standalone
# ---------------------------------------------------------------------------------------------------------------

def activated(name: str, directory: Path) -> Backend:
    """Backend ``name`` (cpp_standalone or genn) made Brian2's device, building into ``directory``."""
    backend = Backend(name, directory, genn_backend=GENN_BACKEND)
    backend.activate()
    return backend


def two_chunks(spec: NetworkSpec, name: str, directory: Path, inference: bool = False):
    net = BioGradNetwork(spec, slots=3, seed=1, inference=inference, backend=activated(name, directory))
    first = net.run_chunk(*samples(0, 3))
    after_first = net.state
    second = net.run_chunk(*samples(3, 3), values={"eta": 0.03} if not inference else None)
    return [first, second], [after_first, net.state]


def assert_equal_runs(a, b):
    for result_a, result_b in zip(a[0], b[0], strict=True):
        for rates_a, rates_b in zip(result_a.rates, result_b.rates, strict=True):
            np.testing.assert_array_equal(rates_a, rates_b)
        for layer in result_b.errors:
            np.testing.assert_array_equal(result_a.errors[layer], result_b.errors[layer])
        for layer in result_b.spikes:
            np.testing.assert_array_equal(result_a.spikes[layer], result_b.spikes[layer])
    for state_a, state_b in zip(a[1], b[1], strict=True):
        for wa, wb in [*zip(state_a.W, state_b.W, strict=True), *((state_a.B[k], state_b.B[k]) for k in state_b.B),
                       *((state_a.bias[k], state_b.bias[k]) for k in state_b.bias)]:
            np.testing.assert_allclose(wa, wb, rtol=0, atol=1e-12)


@genn
@requires_pygenn
@pytest.mark.parametrize("case", ["fixed_random", "transpose"])
def test_genn_equals_cpp_standalone(case, standalone, tmp_path):
    """Deterministic training (two chunks, new eta in the second): identical rates, spike and error-event counts;
    weights, feedback weights and biases within 1e-12 (GeNN sums a step's synaptic inputs in another order)."""
    brian = two_chunks(CASES[case], "cpp_standalone", tmp_path / "standalone")
    gen = two_chunks(CASES[case], "genn", tmp_path / "genn")
    assert_equal_runs(gen, brian)
    assert sum(np.abs(e).sum() for e in brian[0][1].errors.values()) > 0, "error events were sent"
    assert any(np.abs(w1 - w0).max() > 1e-4 for w1, w0 in zip(brian[1][1].W, brian[1][0].W, strict=True)), "learned"


@genn
@requires_pygenn
def test_genn_inference_build_equals_cpp_standalone(standalone, tmp_path):
    """The evaluation build (forward pass only): identical rates."""
    brian = two_chunks(CASES["fixed_random"], "cpp_standalone", tmp_path / "standalone", inference=True)
    gen = two_chunks(CASES["fixed_random"], "genn", tmp_path / "genn", inference=True)
    assert_equal_runs(gen, brian)


@genn
@requires_pygenn
def test_genn_event_encoder_equals_cpp_standalone(standalone, tmp_path):
    """The events encoder (an event-count TimedArray per time step) is deterministic too: identical runs."""
    spec = NetworkSpec(sizes=(64, 20, 10), feedback="fixed_random", encoder="events", params=DETERMINISTIC)
    kinds, images, targets = samples(0, 3)
    steps = np.repeat(images, spec.n_slot, axis=0)
    events = (np.random.default_rng(0).random(steps.shape) < 0.5 * steps).astype(float)
    runs = []
    for name in ("cpp_standalone", "genn"):
        net = BioGradNetwork(spec, slots=3, seed=1, backend=activated(name, tmp_path / name))
        runs.append(([net.run_chunk(kinds, events, targets)], [net.state]))
    assert_equal_runs(runs[1], runs[0])
    assert runs[0][0][0].spikes[0].sum() == events.reshape(3, spec.n_slot, 64)[:, : spec.n_f].sum(), "inputs spiked"


@genn
@requires_pygenn
def test_genn_sleep_aligns_feedback_like_cpp_standalone(standalone, tmp_path):
    """Sleep draws random numbers (hashed, not Brian2's): the alignment curve angle(B, W^T), from the
    same start, stays within 5 degrees of cpp_standalone's at every point (they differ by about 1) and falls
    from about 88 to below 30 degrees on both."""
    from test_sleep import SPEC

    from biograd.chunks import sleep_alignment_curve

    curves = []
    for name in ("cpp_standalone", "genn"):
        net = BioGradNetwork(SPEC, slots=50, seed=2, backend=activated(name, tmp_path / name))
        curves.append(sleep_alignment_curve(net, n_chunks=4)["angle_deg"].to_numpy())
    brian, gen = curves
    assert brian[0] == gen[0] and brian[0] > 80, "the same random start"
    np.testing.assert_allclose(gen, brian, atol=5)
    assert gen[-1] < 30 and brian[-1] < 30


@genn
@requires_pygenn
def test_genn_poisson_encoder_rates_match_cpp_standalone(standalone, tmp_path):
    """Poisson input (rand() < p*r_max*dt each forward step): the input spike counts of 20 samples agree with
    cpp_standalone's within 5 standard deviations of their difference, and with their expectation."""
    spec = NetworkSpec(sizes=(64, 20, 10), feedback="fixed_random", encoder="poisson", params=DETERMINISTIC)
    kinds, images, targets = samples(0, 20)
    counts = []
    for name in ("cpp_standalone", "genn"):
        net = BioGradNetwork(spec, slots=20, seed=1, backend=activated(name, tmp_path / name))
        counts.append(net.run_chunk(kinds, images, targets).spikes[0].sum())
    p = np.clip(images, 0, 1)  # r_max*dt = 1 (input_poisson.yaml: 1 kHz, dt 1 ms)
    expected, variance = spec.n_f * p.sum(), spec.n_f * (p * (1 - p)).sum()
    assert abs(counts[1] - counts[0]) < 5 * np.sqrt(2 * variance)
    assert abs(counts[1] - expected) < 5 * np.sqrt(variance)


@genn
@requires_pygenn
def test_genn_ensemble_equals_cpp_standalone_ensemble(standalone, tmp_path):
    """An ensemble of three networks with their own learning rates (block-diagonal synapses: GeNN's sparse
    connectivity): identical rates and error events, weights within 1e-12 of cpp_standalone's ensemble."""
    from test_ensemble import KINDS, SEEDS, sample_block

    values = [{"eta": 0.01}, {"eta": 0.03}, {"eta": 0.002}]
    runs = []
    for name in ("cpp_standalone", "genn"):
        ensemble = BioGradNetwork(CASES["fixed_random"], slots=3, seed=SEEDS, varied={"eta"},
                                  backend=activated(name, tmp_path / name))
        results = []
        for chunk in range(2):
            data = [sample_block(k, chunk) for k in range(len(SEEDS))]
            results.append(ensemble.run_replicas(KINDS, [x for x, _ in data], [t for _, t in data], values=values))
        runs.append((results, ensemble.states))
    (brian, brian_states), (gen, gen_states) = runs
    for k in range(len(SEEDS)):
        assert_equal_runs(([chunk[k] for chunk in gen], [gen_states[k]]),
                          ([chunk[k] for chunk in brian], [brian_states[k]]))
    assert len({float(np.abs(state.W[0]).sum()) for state in gen_states}) == len(SEEDS), "replicas differ"


@genn
@requires_pygenn
def test_genn_chunks_are_reproducible_from_their_seed(tmp_path):
    """Random numbers are hashes of (chunk seed, call site, step, neuron or synapse): a chunk run again with its
    seed repeats exactly; another seed gives other spikes."""
    spec = NetworkSpec(sizes=(64, 20, 10), feedback="sleep", encoder="poisson")
    net = BioGradNetwork(spec, slots=3, seed=1, backend=activated("genn", tmp_path / "genn"))
    start = net.state
    runs = [net.run_chunk(*samples(0, 3), start, seed=seed) for seed in (7, 7, 8)]
    np.testing.assert_array_equal(runs[0].spikes[0], runs[1].spikes[0])
    assert np.any(runs[0].spikes[0] != runs[2].spikes[0])


@genn
@requires_pygenn
def test_genn_loihi_precision_keeps_the_weight_grid_and_learns_like_cpp_standalone(standalone, tmp_path):
    """Loihi precision (stochastic rounding of weight updates in synaptic code): every weight that learning
    changed lies on its layer's grid (Loihi's quantisation of it is itself, nothing clipped), and the weights
    move about as much as on cpp_standalone (total |dW| per layer within 35%: the random streams differ)."""
    from biograd.models.loihi import loihi_layers

    spec = NetworkSpec(sizes=(64, 20, 12, 10), feedback="sleep", precision="loihi")
    moved = []
    for name in ("cpp_standalone", "genn"):
        net = BioGradNetwork(spec, slots=3, seed=1, backend=activated(name, tmp_path / name))
        for chunk in range(2):
            net.run_chunk(*samples(3 * chunk, 3))
        moved.append([np.abs(w - w0).sum() for w, w0 in zip(net.state.W, net.initial_state.W, strict=True)])
    for w, w0, layer in zip(net.state.W, net.initial_state.W, loihi_layers(spec, net.state.W), strict=True):
        changed = w != w0
        assert changed.sum() > 0.1 * w.size, "learning changed the weights"
        np.testing.assert_allclose(layer.weight[changed], w[changed], rtol=0, atol=1e-12)
        assert layer.clipped == 0
    np.testing.assert_allclose(moved[1], moved[0], rtol=0.35)


@genn
@requires_pygenn
def test_a_run_on_genn_trains_evaluates_and_probes(tmp_path):
    """The application on GeNN: training, the evaluation build and the probe build (each in its own worker
    process, as on cpp_standalone) give a finished run with validation and test accuracy and probe rows."""
    from biograd.config import load_config
    from biograd.launch import start_run
    from biograd.trainer import Trainer

    config = tmp_path / "tiny.yaml"
    config.write_text("name: tiny\nmodel: {sizes: [64, 16, 10], feedback: sleep}\n"
                      "data: {source: sklearn, n_train: 200, n_test: 100, validation: 40}\n"
                      "train: {epochs: 1, sleep_every: 20, chunk: 40, sleep_duration: 100 ms, warmup_sleep_blocks: 3,"
                      " backend: genn, seed: 5}\nrecord: {probe_samples: 2}\n")
    run = start_run(load_config(config, [f"train.genn_backend={GENN_BACKEND}"]), root=tmp_path / "out")
    Trainer(run, progress=False).train()
    assert run.read_json("status.json")["status"] == "finished"
    validation = run.accuracy("validation")
    # it learned: 0.075 -> 0.25 here, as on cpp_standalone (0.075 -> 0.225; 200 samples, one epoch, 40 validation
    # digits); accuracy after a demo epoch against cpp_standalone: runs/sweeps/demo_genn.yaml
    assert validation[1] - validation[0] >= 0.1
    assert 0 <= run.final_accuracies()["test accuracy"] <= 1
    assert (run.path / "alignment.parquet").stat().st_size > 0
