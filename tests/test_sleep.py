"""Sleep aligns the feedback weights: angle(B, W^T) falls from ~90 degrees to below 45 (W frozen)."""

import brian2 as b2
import numpy as np
import pytest
from support import TRAIN, block, tiny_spec

from biograd.analysis.sleep import column_scales, uniform_offset
from biograd.chunks import sleep_alignment_curve
from biograd.models.network import BioGradNetwork
from biograd.models.spec import NetworkSpec

# eta_sleep is 40x the training default so the curve fits a unit test (4 x 1,000 sleep steps)
SPEC = NetworkSpec(sizes=(20, 40, 10), feedback="sleep", params={"feedback_synapse": {"eta_sleep": 0.012}})


def test_sleep_aligns_feedback_with_forward_transpose():
    net = BioGradNetwork(SPEC, slots=25, seed=2)
    curve = sleep_alignment_curve(net, n_chunks=4)
    print("\nangle(B2, W2^T) by sleep steps:\n" + curve[["sleep_steps", "angle_deg", "norm_B"]].to_string(index=False))
    angles = curve["angle_deg"].to_numpy()
    assert 80 < angles[0] < 100, "independent random B starts near 90 degrees"
    assert angles[-1] < 45
    assert np.all(np.diff(angles[:4]) < 0), "the angle falls steadily at first"
    np.testing.assert_array_equal(curve["norm_W"], curve["norm_W"].iloc[0])  # W does not change in sleep


def test_without_sleep_feedback_stays_random():
    net = BioGradNetwork(SPEC, slots=10, seed=2)
    curve = sleep_alignment_curve(net, n_chunks=2, sleep=False)
    angles = curve["angle_deg"].to_numpy()
    assert 80 < angles[-1] < 100 and np.allclose(angles, angles[0])


def test_uniform_offset_of_a_shifted_mirror():
    W_T = np.random.default_rng(1).normal(size=(30, 8))
    assert abs(uniform_offset(2 * W_T, W_T)) < 1e-12
    assert uniform_offset(2 * W_T - 1.0, W_T) == pytest.approx(-0.5 / W_T.std())


def test_column_scales_of_a_mirror_and_of_a_column_normalised_mirror():
    W_T = np.random.default_rng(1).normal(size=(30, 8)) * np.arange(1, 9)
    np.testing.assert_allclose(column_scales(0.5 * W_T, W_T), 0.5)
    lengths = np.linalg.norm(W_T, axis=0)
    np.testing.assert_allclose(column_scales(W_T / lengths, W_T) * lengths, 1.0)


def _column_scales_of_sleep_rule(scale_sleep: float) -> tuple[np.ndarray, np.ndarray]:
    """B2 learned from 0 by 4 sleep blocks of 30 slots, W2 frozen with rows (responding neurons) of lengths
    0.5 to 3 times each other; returns B2's column scales c_k and the row lengths |W_k|."""
    spec = NetworkSpec(sizes=(40, 40, 10), feedback="sleep",
                       params={"feedback_synapse": {"eta_sleep": 0.003, "scale_sleep": scale_sleep}})
    net = BioGradNetwork(spec, slots=30, seed=3)
    state = net.state
    W = np.random.default_rng(0).normal(0, 0.3, state.W[1].shape) * np.linspace(0.5, 3, 10)[:, None]
    state.W[1], state.B[2] = W, np.zeros_like(state.B[2])
    net.state = state
    sleep_alignment_curve(net, n_chunks=4)
    return column_scales(net.state.B[2], W.T), np.linalg.norm(W, axis=1)


def _cv(x: np.ndarray) -> float:
    return float(x.std() / x.mean())


@pytest.mark.slow
def test_plain_sleep_rule_learns_columns_of_one_length_and_scale_sleep_learns_the_mirror():
    """The plain rule (scale_sleep 0) learns B[:, k] ~ W_k / |W_k|, a column length independent of
    |W_k| (the responding neuron's spike is a threshold on an input of spread ~|W_k|); weighting each
    update by the measured spread sigma_sleep (scale_sleep 1) learns B ~ c W^T, one c for all k."""
    c_plain, lengths = _column_scales_of_sleep_rule(0)
    c_scaled, _ = _column_scales_of_sleep_rule(1)
    print(f"\nplain: cv(c) {_cv(c_plain):.2f}, cv(c |W_k|) {_cv(c_plain * lengths):.2f};"
          f" scale_sleep 1: cv(c) {_cv(c_scaled):.2f}, cv(c |W_k|) {_cv(c_scaled * lengths):.2f}")
    assert _cv(c_plain * lengths) < 0.25 and _cv(c_plain) > 0.5  # measured 0.13 and 0.69
    assert _cv(c_scaled) < 0.25 and _cv(c_scaled * lengths) > 0.35  # measured 0.13 and 0.45


def test_eta_sleep_of_a_chunk_overrides_the_build_value():
    """A chunk's eta_sleep acts exactly like building with that rate (and it is used: another rate differs)."""
    built = sleep_alignment_curve(BioGradNetwork(SPEC, slots=10, seed=2), n_chunks=2)
    slow = SPEC.model_copy(update={"params": {"feedback_synapse": {"eta_sleep": 0.004}}})
    net = BioGradNetwork(slow, slots=10, seed=2)
    overridden = sleep_alignment_curve(net, n_chunks=2, eta_sleep=0.012)
    np.testing.assert_array_equal(overridden["angle_deg"], built["angle_deg"])
    assert (overridden["eta_sleep"] == 0.012).all()
    net.state = net.initial_state
    default = sleep_alignment_curve(net, n_chunks=2)
    assert default["angle_deg"].iloc[-1] > overridden["angle_deg"].iloc[-1] + 1, "eta_sleep 0.004 aligns more slowly"


def _uniform_offset_of_sleep_rule(n_settle: int) -> float:
    """B2 learned from 0 by 12 sleep blocks of 500 steps, W2 frozen with a negative mean (as trained
    output weights have) and the homeostatic bias adapted to it; returns B2's uniform offset
    d / (c std W2) of the fit B2 = c W2^T + d (``analysis.sleep.uniform_offset``)."""
    spec = NetworkSpec(sizes=(40, 40, 10), feedback="sleep",
                       params={"feedback_synapse": {"eta_sleep": 0.003}, "schedule": {"n_settle": n_settle}})
    net = BioGradNetwork(spec, slots=10, seed=3)
    state = net.state
    state.W[1] = np.random.default_rng(0).normal(-0.15, 0.15, state.W[1].shape)
    state.B[2] = np.zeros_like(state.B[2])
    state.bias[2] = np.full_like(state.bias[2], 3.3)  # what homeostasis settles to for this W2 (measured)
    net.state = state
    return sleep_alignment_curve(net, n_chunks=12)["offset"].iloc[-1]


@pytest.mark.slow
def test_settling_time_removes_the_onset_offset_of_the_sleep_rule():
    """Learning from a block's onset (traces still 0, the responding layer bursting on its bias) pulls
    every b down by the same amount; the settling time (schedule.yaml: n_settle) removes that offset."""
    without, default = _uniform_offset_of_sleep_rule(0), _uniform_offset_of_sleep_rule(10)
    print(f"\nuniform offset d/(c std W): n_settle 0: {without:.3f}, n_settle 10: {default:.3f}")
    assert without < -0.1
    assert abs(default) < 0.05


def test_settling_steps_open_every_sleep_block_and_only_those():
    """sleep_settling is 1 in the first n_settle steps of each block (after a training slot, or after
    another layer's block), and 0 in a block's later slots and in training slots."""
    spec = tiny_spec((6, 5, 5, 3), "sleep")
    net = BioGradNetwork(spec, slots=6, seed=0)
    monitor = b2.StateMonitor(net.layers[3], "sleep_settling", record=[0], name="settling_monitor")
    net.network.add(monitor)
    net.network.store("initial")
    kinds = np.array([TRAIN, *block(spec, 2), TRAIN])  # train, W2 x2, W3 x2, train
    net.run_chunk(kinds, np.zeros((len(kinds), 6)), np.zeros((len(kinds), 3)))
    per_slot = monitor.sleep_settling[0].reshape(len(kinds), net.n_slot)
    settle = np.zeros_like(per_slot)
    settle[[1, 3], :10] = 1
    np.testing.assert_array_equal(per_slot, settle)
