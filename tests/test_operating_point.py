"""The gradient claim at the trained error code: n_e = 10 steps per error window, dithered (stochastic)
rounding, gain_output 1, on a small network (64-40-30-10, B = W^T).

Each sample's weight change is measured DRAWS times from the same initial state, with other dither
draws (chunk seeds). Against the backprop update ``ref`` of the same rates and gates:

    bias  = |mean(dW) - ref|          noise = sqrt(sum var(dW) / DRAWS)  (standard error of the mean)

Unbiased means bias ~ noise (their ratio is about 1 whatever the number of draws). Below saturation
(every |gain * delta| <= 1, here at gain_hidden 0.5) the ratio stays under 3 in every layer. At
gain_hidden 16 (the transpose baselines' chosen gain), where hidden neurons saturate (at most one
error event per step), the ratio in the hidden layers is far above 3 and the update is shorter than
backprop's: the test measures it.
"""

import numpy as np
import pytest
from sklearn.datasets import load_digits

from biograd.analysis.backprop import angle_deg, deltas, weight_updates
from biograd.chunks import probe
from biograd.data.splits import Split
from biograd.models.network import BioGradNetwork
from biograd.models.spec import NetworkSpec

pytestmark = [pytest.mark.slow, pytest.mark.standalone]

DRAWS = 32
SAMPLES = 6


def measure(gain_hidden: float) -> dict:
    """Per layer: bias/noise ratio, relative bias |mean - ref|/|ref|, norm ratio |mean|/|ref|, angle of one
    draw and of the mean (averaged over samples), and the fraction of neurons with |gain * delta| > 1."""
    spec = NetworkSpec(sizes=(64, 40, 30, 10), feedback="transpose",
                       params={"network": {"n_e": 10, "gain_hidden": gain_hidden, "init_scale": 1.5},
                               "error_events": {"dither_error": 1}})
    images, labels = load_digits(return_X_y=True)
    net = BioGradNetwork(spec, slots=1, seed=3)
    start = net.initial_state
    split = Split(images[:SAMPLES] / 16, labels[:SAMPLES], "digits")
    draws = [probe(net, split, np.arange(SAMPLES), start, seed=seed)[0] for seed in range(DRAWS)]
    feedback = {l: start.W[l - 1].T for l in (2, 3)}
    gains = [gain_hidden, gain_hidden, 1.0]
    found = {key: np.zeros((SAMPLES, 3)) for key in ("ratio", "bias", "norm", "angle_one", "angle_mean", "saturated")}
    for i in range(SAMPLES):
        first = draws[0][i]
        assert all(np.array_equal(d[i].rates[l], first.rates[l]) for d in draws for l in range(4)), \
            "the forward pass has no random numbers: the draws differ in the error code only"
        ref = weight_updates(first.rates, first.gates, first.target, feedback)
        delta = deltas(first.rates, first.gates, first.target, feedback)
        for l in range(3):
            dw = np.stack([d[i].dW[l] for d in draws])
            mean = dw.mean(axis=0)
            noise = np.sqrt(dw.var(axis=0, ddof=1).sum() / DRAWS)
            found["ratio"][i, l] = np.linalg.norm(mean - ref[l]) / noise
            found["bias"][i, l] = np.linalg.norm(mean - ref[l]) / np.linalg.norm(ref[l])
            found["norm"][i, l] = np.linalg.norm(mean) / np.linalg.norm(ref[l])
            found["angle_one"][i, l] = angle_deg(dw[0], ref[l])
            found["angle_mean"][i, l] = angle_deg(mean, ref[l])
            found["saturated"][i, l] = np.mean(np.abs(gains[l] * delta[l + 1]) > 1)
    summary = {key: values.mean(axis=0) for key, values in found.items()} | {"worst_ratio": found["ratio"].max(axis=0)}
    print(f"\ngain_hidden {gain_hidden}, {DRAWS} draws x {SAMPLES} samples, per layer W1/W2/W3:")
    for key, values in summary.items():
        print(f"  {key:12s} {np.round(values, 3)}")
    return summary


def test_below_saturation_the_dithered_code_is_unbiased(standalone):
    found = measure(gain_hidden=0.5)
    assert np.all(found["saturated"] == 0), "no neuron saturates at this gain"
    assert np.all(found["worst_ratio"] < 3), "the mean of the draws is backprop's update within its noise"
    assert np.all(np.abs(found["norm"] - 1) < 0.1)


def test_at_a_large_gain_saturation_biases_the_hidden_updates(standalone):
    found = measure(gain_hidden=16)
    assert np.all(found["saturated"][:2] > 0.1), "hidden neurons saturate at this gain"
    assert np.all(found["ratio"][:2] > 3), "the hidden layers' bias stands out of the noise"
    assert np.all(found["norm"][:2] < 0.8), "saturation shortens the hidden updates"
