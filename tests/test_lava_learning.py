"""The exported learning rules on lava-nc 0.10's learning engine, against the project's Loihi-precision training.

A 16-8-4 network at precision loihi learns from 4 samples (runtime, numpy); per sample and layer, the weight mantissas
before it and the traces its forward rule read (x1 = x_trace x_max of the presynaptic neurons, y1 - y2 = n_error of the
postsynaptic ones) go into a LearningDense with the exported text (``loihi1/lava/learning``, the bit-approximate
fixed-point model) that applies the rule once (``scripts/lava_learning_check.py``, in the Lava environment: ``make
lava``; skipped without it). The learning rate is set so that both layers' scales are exact on the engine's 4-bit
mantissas (eta ~2.5: updates of several weight steps, so that a wrong scale or sign would show).

Lava's weights are within one weight step (2^n_drop mantissa units) of the model's, not equal: both round the same
exact update stochastically, with independent random numbers (Lava: one per epoch for all synapses; the model: one per
synapse), and to different grids (Lava's engine to 1 mantissa unit, W_WEIGHTS_U 8 bits whatever numWeightBits; the
model to its step of 2^n_drop); the engine also drops 3 low bits of each x1*y product (below 2^e of the scale, here
2^-7 of a unit). So each sample starts Lava from the model's weights: over several samples the two roundings would walk
apart.
"""

import subprocess
from pathlib import Path

import brian2 as b2
import h5py
import numpy as np
import pytest

from biograd.export import write_netx
from biograd.models.loihi import learning_rules, loihi_layers
from biograd.models.network import BioGradNetwork
from biograd.models.spec import NetworkSpec
from tests.support import TRAIN, one_hot
from tests.test_loihi_export import lava_python

SIZES, SAMPLES = (16, 8, 4), 4


def exact_spec() -> NetworkSpec:
    """The network at the learning rate whose forward1 rule has the scale C = 2^-6 per x1*(y1 - y2), in weight-mantissa
    units: C = eta eps_1 2^n_drop / (x_max w_res_1), eps_1 = 1/(n_e gain_hidden) (forward_synapse_loihi.eqs); the
    engine holds it as 4*2^-5 (it drops 3 bits of x1*y), forward2's (8 C) as 4*2^-2."""
    spec = NetworkSpec(sizes=SIZES, precision="loihi")
    chip = spec.composition
    layer = loihi_layers(spec, [np.zeros((SIZES[1], SIZES[0])), np.zeros((SIZES[2], SIZES[1]))])[0]
    eps = 1 / (float(chip.values["n_e"]) * float(chip.values["gain_hidden"]))
    x_max = float(chip.elements["eligibility_loihi"].values["x_max"])
    eta = 2.0**-6 * x_max * layer.step / (eps * 2**layer.n_drop)
    return NetworkSpec(sizes=SIZES, precision="loihi", params={"forward_synapse": {"eta": eta}})


@pytest.fixture(scope="module")
def loihi_training():
    """SAMPLES training slots of the Loihi-precision model, one chunk each: per layer l, the mantissas of W_l before and
    after every sample and the traces of its rule (x1 of layer l-1, n_error of layer l at the slot's end)."""
    b2.prefs.codegen.target = "numpy"
    b2.set_device("runtime")
    b2.device.reinit()
    b2.device.activate()
    spec = exact_spec()
    rng = np.random.default_rng(5)
    net = BioGradNetwork(spec, slots=1, seed=2)
    x_max = float(spec.composition.elements["eligibility_loihi"].values["x_max"])
    weights, x1, errors = [], [], []
    for k in range(SAMPLES):
        weights.append([layer.mantissa for layer in loihi_layers(spec, net.state.W)])
        result = net.run_chunk(np.array([TRAIN]), rng.uniform(0, 1, (1, SIZES[0])), one_hot(np.array([k % 4]), 4),
                               seed=10 + k)
        x1.append([np.rint(rates[0] * x_max).astype(int) for rates in result.rates[:-1]])
        errors.append([np.rint(result.errors[l][0]).astype(int) for l in (1, 2)])
    weights.append([layer.mantissa for layer in loihi_layers(spec, net.state.W)])
    yield spec, weights, x1, errors
    b2.device.reinit()


@pytest.mark.slow
@pytest.mark.skipif(lava_python() is None, reason="no Lava environment (make lava: Python 3.10, lava-nc 0.10)")
def test_lava_learning_engine_learns_the_models_weights_within_one_step(loihi_training, tmp_path):
    spec, weights, x1, errors = loihi_training
    rules = learning_rules(spec)
    inputs = {}
    for r, name in enumerate(("forward1", "forward2")):
        assert rules[name].lava_error == 0  # the scales are exact on the engine
        inputs |= {f"text{r}": rules[name].lava, f"epoch{r}": rules[name].epoch,
                   f"weights{r}": np.array([w[r] for w in weights[:-1]]),
                   f"x1_{r}": np.array([x[r] for x in x1]),
                   f"y1_{r}": np.array([np.maximum(e[r], 0) for e in errors]),
                   f"y2_{r}": np.array([np.maximum(-e[r], 0) for e in errors])}
    np.savez(tmp_path / "in.npz", **inputs)
    script = Path(__file__).parents[1] / "scripts/lava_learning_check.py"
    subprocess.run([lava_python(), str(script), str(tmp_path / "in.npz"), str(tmp_path / "out.npz")], check=True,
                   timeout=600)
    out = np.load(tmp_path / "out.npz")
    for r, scale in ((0, 2.0**-6), (1, 2.0**-3)):
        before = inputs[f"weights{r}"]
        model = np.array([w[r] for w in weights[1:]])
        exact = before + scale * inputs[f"x1_{r}"][:, None, :] * (inputs[f"y1_{r}"] - inputs[f"y2_{r}"])[:, :, None]
        step = 2 ** (9 - int(spec.composition.elements["forward_synapse_loihi"].values["num_weight_bits"]))
        lava = out[f"after{r}"]
        print(f"forward{r + 1}: largest update {np.abs(exact - before).max():.1f} mantissa units, "
              f"model - Lava: {np.unique(model - lava, return_counts=True)}")
        assert np.abs(exact - before).max() > 2 * step  # updates of several steps: a wrong scale or sign would show
        assert np.all(np.abs(model - exact) < step)  # the model: the exact update, stochastically rounded to its step
        assert np.all(np.abs(lava - exact) < 1 + 2.0**-7 * 2)  # Lava: to 1 unit, less the 3 dropped bits per product
        assert np.all(np.abs(model - lava) <= step)  # within one weight step


def test_the_lava_text_has_the_engines_form_or_the_reason(tmp_path):
    """Lava's grammar (a dependency per product, 4-bit scale mantissas, exponents -7..8) at an exact learning rate;
    at the default one, forward1's scale (about 3.8e-4 per x1*y) and the sleep rule's are below the engine's smallest
    and the file says so."""
    rules = learning_rules(exact_spec())
    assert rules["forward1"].lava == "dw = u0*4*2^-5*x1*y1 - u0*4*2^-5*x1*y2"  # 2^-6 after the 3 dropped bits
    assert rules["forward2"].lava == "dw = u0*4*2^-2*x1*y1 - u0*4*2^-2*x1*y2"
    default = learning_rules(NetworkSpec(sizes=SIZES, precision="loihi"))
    assert default["forward1"].lava == "" and "the product u0*x1*y1 needs the scale" in default["forward1"].lava_problem
    layers = loihi_layers(exact_spec(), [np.zeros((SIZES[1], SIZES[0])), np.zeros((SIZES[2], SIZES[1]))])
    write_netx(tmp_path / "net.net", layers, rules=default, provenance={})
    with h5py.File(tmp_path / "net.net") as f:
        lava = f["loihi1/lava/learning"]
        assert lava.attrs["forward1.leftOut"] == default["forward1"].lava_problem
        # the sleep rule's Hebbian term (x0*y1: 3e-4 over the 7-bit noise trace's impulse 63) and decay (x0*w, 1.5e-4)
        assert "x0*y1 needs the scale" in lava.attrs["feedback2.leftOut"]
        assert lava["forward2"][()].decode() == default["forward2"].lava and lava["forward2"].attrs["tEpoch"] == \
            default["forward2"].epoch
