"""Sleep aligns the feedback weights: angle(B, W^T) falls from ~90 degrees to below 45 (W frozen)."""

import numpy as np

from biograd.analysis.sleep import sleep_alignment_curve
from biograd.models.network import BioGradNetwork
from biograd.models.spec import NetworkSpec

# eta_sleep is 10x the training default so the curve fits a unit test (8 x 2,000 sleep steps)
SPEC = NetworkSpec(sizes=(20, 40, 10), feedback="sleep", params={"feedback_synapse": {"eta_sleep": 0.003}})


def test_sleep_aligns_feedback_with_forward_transpose():
    net = BioGradNetwork(SPEC, n_slots=50, seed=2)
    curve = sleep_alignment_curve(net, n_chunks=8)
    print("\nangle(B2, W2^T) by sleep steps:\n" + curve[["sleep_steps", "angle_deg", "norm_B"]].to_string(index=False))
    angles = curve["angle_deg"].to_numpy()
    assert 80 < angles[0] < 100, "independent random B starts near 90 degrees"
    assert angles[-1] < 45
    assert np.all(np.diff(angles[:4]) < 0), "the angle falls steadily at first"
    np.testing.assert_array_equal(curve["norm_W"], curve["norm_W"].iloc[0])  # W does not change in sleep


def test_without_sleep_feedback_stays_random():
    net = BioGradNetwork(SPEC, n_slots=50, seed=2)
    curve = sleep_alignment_curve(net, n_chunks=2, sleep=False)
    angles = curve["angle_deg"].to_numpy()
    assert 80 < angles[-1] < 100 and np.allclose(angles, angles[0])


def test_eta_sleep_of_a_chunk_overrides_the_build_value():
    """A chunk's eta_sleep acts exactly like building with that rate (and it is used: another rate differs)."""
    built = sleep_alignment_curve(BioGradNetwork(SPEC, n_slots=50, seed=2), n_chunks=2)
    slow = SPEC.model_copy(update={"params": {"feedback_synapse": {"eta_sleep": 0.001}}})
    net = BioGradNetwork(slow, n_slots=50, seed=2)
    overridden = sleep_alignment_curve(net, n_chunks=2, eta_sleep=0.003)
    np.testing.assert_array_equal(overridden["angle_deg"], built["angle_deg"])
    assert (overridden["eta_sleep"] == 0.003).all()
    net.state = net.initial_state
    default = sleep_alignment_curve(net, n_chunks=2)
    assert default["angle_deg"].iloc[-1] > overridden["angle_deg"].iloc[-1] + 1, "eta_sleep 0.001 aligns more slowly"
