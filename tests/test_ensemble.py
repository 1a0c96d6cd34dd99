"""Ensembles: K networks side by side in one build; replica k computes what a network of its own computes,
and runs trained in one build equal the runs trained alone."""

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.datasets import load_digits
from support import TRAIN

from biograd.config import load_config
from biograd.launch import start_run, start_runs
from biograd.models.network import BioGradNetwork, estimated_bytes
from biograd.models.spec import NetworkSpec
from biograd.rundir import RunDirectory
from biograd.signals import Terminated
from biograd.trainer import Trainer

# deterministic input: regular rate code, deterministic error rounding, no sleep (no random numbers)
SPEC = NetworkSpec(sizes=(64, 12, 10), feedback="fixed_random", params={"error_events": {"dither_error": 0}})
SEEDS = [1, 2, 3]
KINDS = np.full(3, TRAIN)
IMAGES, LABELS = load_digits(return_X_y=True)


def sample_block(replica: int, chunk: int) -> tuple[np.ndarray, np.ndarray]:
    """Three images of replica ``replica``'s own data order (each replica sees other samples)."""
    start = 10 * replica + 3 * chunk
    targets = np.zeros((3, 10))
    targets[np.arange(3), LABELS[start : start + 3]] = 1.0
    return IMAGES[start : start + 3] / 16, targets


def ensemble_and_singles(values: list[dict], varied=()):
    """Two chunks of an ensemble of SEEDS, then each replica's seed, data and values as a network of its own."""
    ensemble = BioGradNetwork(SPEC, slots=3, seed=SEEDS, varied=varied)
    packed = []
    for chunk in range(2):
        data = [sample_block(k, chunk) for k in range(len(SEEDS))]
        packed.append(ensemble.run_replicas(KINDS, [x for x, _ in data], [t for _, t in data], values=values))
    packed_states = ensemble.states
    singles = []
    for k, seed in enumerate(SEEDS):
        net = BioGradNetwork(SPEC, slots=3, seed=seed)
        results = [net.run_chunk(KINDS, *sample_block(k, chunk), values=values[k]) for chunk in range(2)]
        singles.append((results, net.state))
    return packed, packed_states, singles, ensemble.initial_states


def assert_replicas_equal_singles(packed, packed_states, singles, initial, atol=0.0):
    """``singles[k]`` (results, state) of replica k's own network, or None where not run."""
    for k, (results, state) in ((k, single) for k, single in enumerate(singles) if single):
        for chunk, single in enumerate(results):
            for a, b in zip(packed[chunk][k].rates, single.rates, strict=True):
                np.testing.assert_array_equal(a, b, err_msg=f"replica {k}, chunk {chunk}: rates")
            for layer in single.errors:
                np.testing.assert_array_equal(packed[chunk][k].errors[layer], single.errors[layer])
        for a, b in zip(packed_states[k].W, state.W, strict=True):
            np.testing.assert_allclose(a, b, rtol=0, atol=atol, err_msg=f"replica {k}: W")
        for layer in state.B:
            np.testing.assert_array_equal(packed_states[k].B[layer], state.B[layer])
    for k, (after, before) in enumerate(zip(packed_states, initial, strict=True)):
        assert np.abs(after.W[0] - before.W[0]).max() > 1e-4, f"replica {k} learned"
    assert len({float(np.abs(s.W[0]).sum()) for s in packed_states}) == len(SEEDS), "replicas differ from each other"


def test_replicas_equal_single_networks_bit_for_bit():
    """Same settings, own seeds and data: every rate, error count and weight equal to the single runs."""
    assert_replicas_equal_singles(*ensemble_and_singles([{"eta": 0.01}] * 3))


def test_replicas_with_their_own_learning_rates():
    """A varied chunk parameter is a per-synapse constant; Brian2 multiplies a shared factor first, so the
    weights agree to rounding (1e-15), the rates and error events exactly."""
    assert_replicas_equal_singles(*ensemble_and_singles([{"eta": 0.01}, {"eta": 0.03}, {"eta": 0.002}],
                                                        varied={"eta"}), atol=1e-15)


def test_replicas_equal_single_networks_on_cpp_standalone(standalone):
    """The same on cpp_standalone: one compiled ensemble against a compiled single network (replica 1: the
    one whose neurons and synapses are neither first nor last)."""
    ensemble = BioGradNetwork(SPEC, slots=3, seed=SEEDS, varied={"eta"})
    values = [{"eta": 0.01}, {"eta": 0.03}, {"eta": 0.002}]
    packed = []
    for chunk in range(2):
        data = [sample_block(k, chunk) for k in range(len(SEEDS))]
        packed.append(ensemble.run_replicas(KINDS, [x for x, _ in data], [t for _, t in data], values=values))
    packed_states = ensemble.states
    standalone("single")
    net = BioGradNetwork(SPEC, slots=3, seed=SEEDS[1])
    single = [net.run_chunk(KINDS, *sample_block(1, chunk), values=values[1]) for chunk in range(2)], net.state
    singles = [None, single, None]
    assert_replicas_equal_singles(packed, packed_states, singles, ensemble.initial_states, atol=1e-15)


def test_an_ensemble_refuses_what_would_mix_its_replicas():
    ensemble = BioGradNetwork(SPEC, slots=3, seed=SEEDS)
    data = [sample_block(k, 0) for k in range(len(SEEDS))]
    with pytest.raises(ValueError, match="eta.*shared in this build"):
        ensemble.run_replicas(KINDS, [x for x, _ in data], [t for _, t in data],
                              values=[{"eta": 0.01}, {"eta": 0.02}, {"eta": 0.01}])
    with pytest.raises(ValueError, match="needs 3 stimuli"):
        ensemble.run_replicas(KINDS, [data[0][0]], [data[0][1]])
    with pytest.raises(ValueError, match="ensemble of 3 networks"):
        _ = ensemble.state
    with pytest.raises(KeyError, match="varied: no chunk parameter lambda_sleep in this model"):
        BioGradNetwork(SPEC, slots=3, seed=SEEDS, varied={"lambda_sleep"})


def test_memory_estimate_grows_with_the_replicas():
    assert estimated_bytes(SPEC, 10, replicas=8) == 8 * estimated_bytes(SPEC, 10)


def test_loihi_weight_grids_use_one_networks_layer_sizes():
    """The Loihi weight exponent comes from the layer's fan-in in one network (n_pre), not from all replicas'."""
    spec = NetworkSpec(sizes=(64, 20, 12, 10), feedback="sleep", precision="loihi_weights", params=SPEC.params)
    single, ensemble = BioGradNetwork(spec, slots=1, seed=1), BioGradNetwork(spec, slots=1, seed=SEEDS)
    for name, group in (("w_exp", "forward"), ("b_exp", "feedback")):
        for layer in (2, 3):
            synapses = getattr(single, group)[layer], getattr(ensemble, group)[layer]
            values = [np.unique(np.asarray(getattr(s, name)[:])) for s in synapses]
            assert len(values[1]) == 1
            np.testing.assert_array_equal(values[0], values[1])


# ---------------------------------------------------------------------- runs trained in one ensemble build
DETERMINISTIC_RUN = """\
name: tiny
model: {sizes: [64, 16, 10], feedback: fixed_random, params: {error_events: {dither_error: 0}}}
data: {source: sklearn, n_train: 20, n_test: 10, validation: 10}
train: {epochs: 1, chunk: 10, backend: numpy, seed: 5}
record: {probe_samples: 0}
"""


@pytest.fixture
def tiny_run(tmp_path) -> Path:
    path = tmp_path / "tiny.yaml"
    path.write_text(DETERMINISTIC_RUN)
    return path


def single_run(config: Path, overrides: list[str], root: Path) -> RunDirectory:
    run = start_run(load_config(config, overrides), root=root)
    Trainer(run, progress=False).train()
    return run


@pytest.fixture(scope="module")
def trained_alone(tmp_path_factory):
    """The run of DETERMINISTIC_RUN with an override, trained alone once per module (the tests only read it)."""
    runs: dict[str, RunDirectory] = {}

    def run_of(override: str) -> RunDirectory:
        if override not in runs:
            folder = tmp_path_factory.mktemp("alone")
            (folder / "tiny.yaml").write_text(DETERMINISTIC_RUN)
            runs[override] = single_run(folder / "tiny.yaml", [override], folder)
        return runs[override]

    return run_of


def assert_same_run(packed: RunDirectory, single: RunDirectory, atol: float = 0.0) -> None:
    """Same weights (to ``atol``), same metrics but the speed rows, same final accuracies."""
    a, b = packed.load_checkpoint()[0], single.load_checkpoint()[0]
    for name, values in a.named().items():
        np.testing.assert_allclose(values, b.named()[name], rtol=0, atol=atol, err_msg=f"{packed.path.name}: {name}")
    rows = [run.metrics().query("metric not in ['samples_per_s', 'angle_B_WT', 'norm_B', 'norm_W']")
            .drop(columns=["run"], errors="ignore").reset_index(drop=True) for run in (packed, single)]
    pd.testing.assert_frame_equal(*rows)
    assert packed.final_accuracies() == single.final_accuracies()


def test_model_replicas_trains_runs_that_equal_single_runs(tiny_run, tmp_path, trained_alone):
    """model.replicas: 2 makes two ordinary run directories (seeds 5 and 6), trained in one build; each equals
    the run of its seed trained alone, bit for bit on this deterministic path."""
    runs = start_runs(load_config(tiny_run, ["model.replicas=2"]), root=tmp_path / "ensemble")
    assert [run.config.train.seed for run in runs] == [5, 6]
    assert all("replicas" not in (run.path / "config.yaml").read_text() for run in runs)
    Trainer(runs, progress=False).train()
    for run, seed in zip(runs, (5, 6), strict=True):
        assert run.finished
        assert_same_run(run, trained_alone(f"train.seed={seed}"))
    assert "ensemble" in runs[0].read_json("timings.json")["sessions"][-1]


def test_runs_with_other_learning_rates_share_a_build_and_one_ahead_waits(tiny_run, tmp_path, monkeypatch,
                                                                          trained_alone):
    """Runs that differ in eta train in one build (eta per replica); a run stopped after 3 tasks, packed with a
    fresh one, sits out until the fresh one catches up. Each ends as when trained alone."""
    fast = start_run(load_config(tiny_run, ["model.params.forward_synapse.eta=0.06"]), root=tmp_path / "ensemble")
    checkpoint = Trainer._checkpoint

    def stop_after_three_tasks(self, session, index, task, rows):
        if index == 2:
            self.stop_requested.append("SIGTERM")
        checkpoint(self, session, index, task, rows)
    monkeypatch.setattr(Trainer, "_checkpoint", stop_after_three_tasks)
    with pytest.raises(Terminated):
        Trainer(fast, progress=False).train()
    monkeypatch.undo()
    fresh = start_run(load_config(tiny_run, ["train.seed=6"]), root=tmp_path / "ensemble")
    assert Trainer([fast, fresh], progress=False).varied == {"eta"}
    Trainer([fast, fresh], progress=False).train()
    assert_same_run(fast, trained_alone("model.params.forward_synapse.eta=0.06"), atol=1e-15)
    assert_same_run(fresh, trained_alone("train.seed=6"), atol=1e-15)


def test_runs_that_need_builds_of_their_own_are_refused(tiny_run, tmp_path):
    runs = [start_run(load_config(tiny_run, overrides), root=tmp_path)
            for overrides in ([], ["model.params.feedback_synapse.lambda_sleep=0.3"])]
    with pytest.raises(ValueError, match="model.params.feedback_synapse.lambda_sleep differs"):
        Trainer(runs, progress=False)
    probed = [start_run(load_config(tiny_run, [f"train.seed={s}", "record.probe_samples=2"]), root=tmp_path)
              for s in (1, 2)]
    with pytest.raises(ValueError, match="record.probe_samples"):
        Trainer(probed, progress=False)
