"""Analysis pieces on hand-made inputs: alignment angles, observable ranges, energy tables."""

import numpy as np
import pandas as pd
import pytest
from support import tiny_spec

from biograd.analysis.alignment import ProbeSample, sample_alignment
from biograd.analysis.energy import energy_estimate, load_energy_table, measured_joules, per_sample_counts, totals
from biograd.analysis.plausibility import observable_checks
from biograd.models.elements import equations_dir
from biograd.models.errors import ModelFileError
from biograd.models.network import BioGradNetwork
from biograd.models.params import read_table

# A 2-2-1 network by hand: r0 = (1, 0.5), r1 = (0.5, 0.2), r2 = 0.3, y = 1, gates 1, W2 = (1, 2).
# delta2 = 0.7; backprop delta1 = W2^T delta2 = (0.7, 1.4); with B2 = (2, -1)^T feedback alignment
# gives delta1 = (1.4, -0.7), orthogonal to backprop's and of the same length.
RATES = [np.array([1.0, 0.5]), np.array([0.5, 0.2]), np.array([0.3])]
GATES = [None, np.ones(2), np.ones(1)]
W = [np.array([[0.3, -0.2], [0.1, 0.4]]), np.array([[1.0, 2.0]])]
B = {2: np.array([[2.0], [-1.0]])}
BP = [np.outer([0.7, 1.4], RATES[0]), np.outer([0.7], RATES[1])]
FA = [np.outer([1.4, -0.7], RATES[0]), BP[1]]


def _angles(dW, feedback=B):
    rows = sample_alignment(ProbeSample(0, np.array([1.0]), RATES, GATES, dW), W, feedback)
    return {(r["layer"], r["mode"]): (r["angle_deg"], r["norm_ratio"]) for r in rows}


def test_biograd_equal_to_backprop_is_orthogonal_to_misaligned_feedback():
    a = _angles(BP)
    assert a[(1, "biograd_vs_backprop")] == pytest.approx((0.0, 1.0))
    assert a[(1, "biograd_vs_feedback_alignment")] == pytest.approx((90.0, 1.0))
    assert a[(1, "feedback_alignment_vs_backprop")] == pytest.approx((90.0, 1.0))
    assert a[(2, "feedback_alignment_vs_backprop")] == pytest.approx((0.0, 1.0))  # the output layer has no B


def test_quantisation_and_misalignment_are_separated():
    a = _angles([2 * FA[0], -BP[1]])  # BioGrad follows its feedback exactly, at twice the step
    assert a[(1, "biograd_vs_feedback_alignment")] == pytest.approx((0.0, 2.0))
    assert a[(1, "biograd_vs_backprop")] == pytest.approx((90.0, 2.0))
    assert a[(2, "biograd_vs_backprop")] == pytest.approx((180.0, 1.0))


def test_transpose_runs_have_no_B_and_feedback_alignment_is_backprop():
    a = _angles(BP, feedback={})
    assert a[(1, "feedback_alignment_vs_backprop")] == pytest.approx((0.0, 1.0))


def test_the_feedback_of_a_transpose_network_is_its_scaled_W_transpose():
    """Probes compare with the feedback the network used: B in sleep mode, s W^T in transpose mode (scale_transpose),
    so that a run at s 1.4 has feedback alignment 1.4x backprop's length, not backprop itself."""
    net = BioGradNetwork(tiny_spec((6, 5, 4, 3), "transpose", transpose_relay={"scale_transpose": 1.4}), slots=1)
    W = net.initial_state.W
    feedback = net.feedback_weights(net.initial_state)
    assert sorted(feedback) == [2, 3]
    for l in (2, 3):
        np.testing.assert_allclose(feedback[l], 1.4 * W[l - 1].T)
    sleep = BioGradNetwork(tiny_spec((6, 5, 4, 3), "sleep"), slots=1)
    assert all(b is sleep.initial_state.B[l] for l, b in sleep.feedback_weights(sleep.initial_state).items())


def _table(tmp_path, observables: str):
    text = (equations_dir() / "soma.yaml").read_text().split("observables:")[0] + observables
    path = tmp_path / "soma.yaml"
    path.write_text(text)
    return path


@pytest.mark.parametrize(("observables", "message"), [
    ("observables:\n  firing:\n    range: [0 Hz, 1 Hz]\n    description: x\n    reference: y\n",
     "unknown observable 'firing'"),
    ("observables:\n  rate:\n    range: [0 ms, 10 ms]\n    description: x\n    reference: y\n",
     "observable 'rate': bound 0. s must be in units of 'Hz'"),
    ("observables:\n  rate:\n    range: [0 Hz, 1 Hz]\n    description: x\n",
     "observables.rate.reference: Field required"),
])
def test_bad_observables_name_file_and_problem(tmp_path, observables, message):
    with pytest.raises(ModelFileError, match="soma.yaml") as err:
        read_table(_table(tmp_path, observables))
    assert message in str(err.value)


def test_observable_checks_compare_with_declared_ranges():
    spec = tiny_spec((4, 3, 2))
    rows = [{"epoch": 1, "split": "train", "metric": m, "layer": l, "value": v} for m, l, v in [
        ("rate_hz", 0, 150.0), ("rate_hz", 1, 450.0), ("saturated_fraction", 1, 0.0), ("silent_fraction", 1, 0.95),
        ("error_rate_hz", 1, 20.0), ("error_saturated_fraction", 1, 0.2)]]
    checks = observable_checks(pd.DataFrame(rows), spec).set_index(["layer", "observable"])
    assert checks.loc[(0, "rate"), "within"] and not checks.loc[(1, "rate"), "within"]  # 450 Hz > 200 Hz
    assert checks.loc[(1, "saturated_fraction"), "within"] and not checks.loc[(1, "silent_fraction"), "within"]
    assert checks.loc[(1, "error_rate"), "within"] and not checks.loc[(1, "error_saturated_fraction"), "within"]
    assert checks.loc[(2, "rate"), "within"] is None  # not measured: no verdict
    assert checks.loc[(1, "rate"), "high"] == pytest.approx(200.0)


def test_energy_is_counts_times_table_energies():
    spec = tiny_spec((4, 3, 2))
    counts = {("train", "synops_forward"): 100.0, ("train", "synops_error"): 10.0, ("train", "updates_learning"): 20.0,
              ("train", "neuron_updates"): 9.0 * spec.n_slot, ("sleep", "synops"): 500.0, ("sleep", "updates"): 50.0,
              ("sleep", "neuron_updates"): 900.0}
    metrics = pd.DataFrame([{"epoch": 1, "split": s, "metric": m, "layer": None, "value": v}
                            for (s, m), v in counts.items()])
    estimate = energy_estimate(per_sample_counts(metrics, spec, sleep_every=10))
    by = totals(estimate).set_index(["phase", "operation"]).energy_uJ
    assert by[("training", "synaptic_op")] == pytest.approx((100 + 10 + 500 / 10) * 23.6e-6)
    assert by[("training", "synaptic_update")] == pytest.approx((20 + 50 / 10) * 120e-6)
    assert by[("training", "neuron_update")] == pytest.approx((9 * spec.n_slot + 900 / 10) * 52e-6)
    assert by[("inference", "neuron_update")] == pytest.approx(9 * spec.n_f * 52e-6)
    assert by[("inference", "total")] == pytest.approx((100 * 23.6 + 9 * spec.n_f * 52) * 1e-6)


def test_broken_energy_table_is_named(tmp_path):
    path = tmp_path / "energy.yaml"
    path.write_text(load_energy_table().model_dump_json().replace("23.6 pjoule", "23.6 ms"))
    with pytest.raises(ModelFileError, match=r"energy.yaml.*operations.synaptic_op.energy"):
        load_energy_table(path)


def test_unknown_counts_give_unknown_energy_not_zero():
    spec = tiny_spec((4, 3, 2), "sleep")
    metrics = pd.DataFrame(columns=["epoch", "split", "metric", "layer", "value"])
    by = totals(energy_estimate(per_sample_counts(metrics, spec, sleep_every=10))).set_index(["phase", "operation"])
    assert np.isnan(by.energy_uJ[("training", "total")]) and np.isnan(by.energy_uJ[("training", "synaptic_op")])
    assert by.energy_uJ[("inference", "neuron_update")] > 0  # known from the network's size alone


def test_measured_joules_integrates_the_power_log_over_the_window():
    """300 W until t = 10 s, then 100 W: over [5, 15] s that is 5 s x 300 W + 5 s x 100 W, up to the one
    sample interval (1 s) where the log ramps between its samples."""
    t = np.arange(0.0, 21.0)
    power = pd.DataFrame({"unix_s": t, "watts": np.where(t <= 10, 300.0, 100.0)})
    assert measured_joules(power, 5.0, 15.0) == pytest.approx(5 * 300 + 5 * 100, abs=200 * 1 / 2 + 1e-9)
    assert measured_joules(power, 2.5, 7.25) == pytest.approx(4.75 * 300)
    with pytest.raises(ValueError, match="does not cover"):
        measured_joules(power, 15.0, 25.0)
