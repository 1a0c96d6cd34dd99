"""BioGrad computes the backprop gradient: per-sample Brian2 weight changes vs the rate network.

Two hidden layers, fine error quantisation (n_e = 100 steps per error phase, deterministic
rounding, gains <= 1 so that no neuron saturates: |gain * delta| <= 1). The weight changes are
measured by biograd.chunks.probe (learning rate 1, scaled here to ETA), the tool the
analysis package uses on real runs.
"""

import numpy as np
import pytest
from sklearn.datasets import load_digits

from biograd.analysis.backprop import angle_deg, deltas, weight_updates
from biograd.chunks import probe
from biograd.data.splits import Split
from biograd.models.network import BioGradNetwork
from biograd.models.spec import NetworkSpec

ETA = 1e-3
N_SAMPLES = 20


def fine_spec(feedback: str, init_scale: float = 1.5, soma: dict | None = None,
              gain_hidden: float = 0.5, scale_transpose: float = 1.0) -> NetworkSpec:
    network = {"n_f": 20, "n_e": 100, "gain_output": 1.0, "gain_hidden": gain_hidden, "init_scale": init_scale}
    relay = {"transpose_relay": {"scale_transpose": scale_transpose}} if feedback.startswith("transpose") else {}
    return NetworkSpec(sizes=(64, 40, 30, 10), feedback=feedback,
                       params={"network": network, "error_events": {"dither_error": 0},
                               "forward_synapse": {"eta": ETA}, "soma": soma or {}, **relay})


def per_sample_updates(feedback: str, spec: NetworkSpec | None = None):
    """(Brian2 dW, reference dW, rates, gates) per sample, each sample probed from the same initial state."""
    images, labels = load_digits(return_X_y=True)
    net = BioGradNetwork(spec or fine_spec(feedback), slots=1, seed=3)
    start = net.initial_state
    split = Split(images[:N_SAMPLES] / 16, labels[:N_SAMPLES], "digits")
    samples, _ = probe(net, split, np.arange(N_SAMPLES), start, seed=3)
    feedback_of = net.feedback_weights(start)  # B; s W^T (transpose_relay.eqs); s W^T + B (transpose_residual)
    for sample in samples:
        errors = deltas(sample.rates, sample.gates, sample.target, feedback_of)
        gain = float(net.composition.values["gain_hidden"])
        assert max(np.abs(errors[l]).max() * gain for l in (1, 2)) <= 1, "no error saturation"
        reference = weight_updates(sample.rates, sample.gates, sample.target, feedback_of, eta=ETA)
        yield [dw * ETA for dw in sample.dW], reference, sample.rates, sample.gates


@pytest.mark.parametrize("feedback, scale_transpose", [("transpose", 1.4),
                                                       pytest.param("transpose", 1.0, marks=pytest.mark.slow),
                                                       pytest.param("fixed_random", 1.0, marks=pytest.mark.slow),
                                                       pytest.param("transpose_residual", 1.4, marks=pytest.mark.slow)])
def test_weight_change_equals_reference_update(feedback, scale_transpose):
    """Direction and length: scale_transpose 1.4 lengthens layer 2's reference by 1.4 and layer 1's by 1.96, which
    an angle alone would not see (gain_hidden / 1.96 keeps the errors unsaturated); the length ratio per layer is
    within 10% over the samples."""
    worst, lengths = np.zeros(3), [[], [], []]
    for brian, reference, rates, _ in per_sample_updates(feedback, fine_spec(feedback, scale_transpose=scale_transpose,
                                                                             gain_hidden=0.5 / scale_transpose**2)):
        assert all(r.max() > 0 for r in rates), "every layer is active"
        for l, (dw, ref) in enumerate(zip(brian, reference, strict=True)):
            worst[l] = max(worst[l], angle_deg(dw, ref))
            big = np.abs(ref) > 0.05 * np.abs(ref).max()
            assert np.mean(np.sign(dw[big]) == np.sign(ref[big])) > 0.99, f"sign structure of layer {l + 1}"
            assert np.all(dw[ref == 0] == 0), "no change where the reference has none"
            lengths[l].append(np.linalg.norm(dw) / np.linalg.norm(ref))
    ratios = np.array([np.median(r) for r in lengths])
    print(f"\n{feedback}: worst angle per layer over {N_SAMPLES} samples (deg): {np.round(worst, 2)}, "
          f"median length ratio {np.round(ratios, 3)}")
    assert np.all(worst < 5.0)
    assert np.all(np.abs(ratios - 1) < 0.1)


@pytest.mark.slow
def test_saturation_gate_is_the_probes_gate_and_the_update_follows_it():
    """soma gate_saturation 1: neurons driven to a spike in every forward step get gate 0, so no
    error and no change of their input weights; the probe reads the model's gate and the update
    still equals the reference built with it."""
    spec = fine_spec("transpose", init_scale=3.0, soma={"gate_saturation": 1}, gain_hidden=0.2)
    worst, saturated_off = np.zeros(3), 0
    for brian, reference, rates, gates in per_sample_updates("transpose", spec):
        for l in (1, 2):
            assert np.all(gates[l][rates[l] >= 1] == 0), "a neuron that spikes in every forward step is gated off"
            cut = (rates[l] > 0) & (gates[l] == 0)  # fired, so A > 0: closed by the saturation cut-off
            saturated_off += int(cut.sum())
            assert np.all(brian[l - 1][cut] == 0), "its input weights do not change"
        for l, (dw, ref) in enumerate(zip(brian, reference, strict=True)):
            worst[l] = max(worst[l], angle_deg(dw, ref))
    print(f"\nsaturation gate: {saturated_off} firing hidden neurons gated off, worst angles {np.round(worst, 2)}")
    assert saturated_off >= N_SAMPLES  # the large init does saturate neurons
    assert np.all(worst < 5.0)
