"""The Loihi-precision elements (``*_loihi.eqs``) against Loihi 1's integer arithmetic, step by step.

The reference is written here with Python integers, from Davies et al. 2018, lava-nc's bit-accurate
models and brian2-loihi (docs/model.md, "Loihi precision"): 12-bit decays rounded toward zero, a
24-bit current that wraps, a 24-bit potential that saturates, a strict threshold at v_th_mant * 2^6;
weights as 8-bit mantissas times 2^(6 + exponent); 7-bit traces; updates rounded stochastically to the
weight step (checked in distribution).
"""

import math

import brian2 as b2
import numpy as np
import pytest
from pydantic import ValidationError
from support import CODES, N_F, N_SLOT, make_group
from test_backends import samples

from biograd.models.elements import compose, load_element
from biograd.models.loihi import error_registers, loihi_layers
from biograd.models.network import BioGradNetwork
from biograd.models.spec import NetworkSpec

V_TH_MANT = CODES.whole("v_th_mant")
V_INT = V_TH_MANT * 2**6  # integer units per threshold


def decay(x: int, d: int) -> int:
    """x * (4096 - d) / 4096, rounded toward zero (Loihi's 12-bit decay)."""
    return int(math.copysign(abs(x) * (4096 - d) // 4096, x))


def wrap24(x: int) -> int:
    return (x + 2**23) % 2**24 - 2**23


def reference_soma(inputs: dict[int, np.ndarray], n: int, n_steps: int, d_u: int, d_v: int):
    """U, V after each step, spikes and overflow counts; ``inputs[step]`` is the integer input sent at step."""
    U, V, Q, overflow = [0] * n, [0] * n, [0] * n, [0] * n  # Q: the input that arrived in the step before
    trace, spikes = [], []
    for step in range(n_steps):
        k = step % N_SLOT
        if k == 0:
            U, V, Q = [0] * n, [0] * n, [0] * n
        forward = k < N_F
        for i in range(n):
            u_in = wrap24(U[i])
            overflow[i] += (u_in != U[i]) + (abs(Q[i]) > 2**21 - 1)
            v_next = decay(V[i], d_v) + u_in
            overflow[i] += abs(v_next) > 2**23 - 1
            U[i], V[i] = decay(u_in, d_u), max(1 - 2**23, min(2**23 - 1, v_next))
            if V[i] > V_INT and forward:
                spikes.append((step, i))
                V[i] = 0
            Q[i] = int(inputs.get(step, np.zeros(n, int))[i])
            U[i] += Q[i]
        trace.append((list(U), list(V)))
    return trace, spikes, overflow


def run_soma(weights_int: np.ndarray, in_steps: list[np.ndarray], n_steps: int, d_u: int, d_v: int, build=None):
    """The integer soma driven by sources that each send ``weights_int`` at their ``in_steps`` (on the active
    device; a standalone device is built in ``build``)."""
    b2.defaultclock.dt = 1 * b2.ms
    n = len(weights_int)
    group, objects = make_group(["schedule", "soma_loihi", "eligibility"], n,
                                overrides={"soma_loihi": {"d_u": d_u, "d_v": d_v}})
    indices = np.concatenate([np.full(len(steps), k) for k, steps in enumerate(in_steps)])
    source = b2.SpikeGeneratorGroup(len(in_steps), indices, np.concatenate(in_steps) * b2.ms, name="src")
    syn = b2.Synapses(source, group, "w : 1", on_pre="u_soma_post += w", name="s")
    syn.connect()
    syn.w = np.tile(weights_int, len(in_steps)) / V_INT
    state = b2.StateMonitor(group, ["u_soma", "v_soma"], record=True, when="end", name="st")
    spikes = b2.SpikeMonitor(group, name="sp")
    b2.Network(*objects, source, syn, state, spikes).run(n_steps * b2.ms, namespace={})
    if build is not None:
        b2.device.build(directory=str(build), compile=True, run=True)
    got_spikes = sorted(zip(np.rint(spikes.t / b2.ms).astype(int), spikes.i, strict=True))
    return state, got_spikes, group.n_overflow[:]


def test_integer_soma_matches_hand_computed_steps():
    d_u, d_v = 1000, 300
    weights_int = np.array([21_001, -9_003, 40_007])  # not multiples of anything: every rounding shows
    in_steps = np.array([0, 1, 2, 4, 5, 6, 7, 9, 12, 14, 15, 17, 18])
    n_steps = 2 * N_SLOT
    state, got_spikes, overflow = run_soma(weights_int, [in_steps], n_steps, d_u, d_v)
    inputs = {int(s): weights_int for s in in_steps}
    trace, spikes, expected_overflow = reference_soma(inputs, len(weights_int), n_steps, d_u, d_v)
    U = np.array([u for u, _ in trace])
    V = np.array([v for _, v in trace])
    np.testing.assert_array_equal(np.rint(state.u_soma.T * V_INT), U)  # integers, exactly
    np.testing.assert_array_equal(np.rint(state.v_soma.T * V_INT), V)
    np.testing.assert_allclose(state.v_soma.T * V_INT, V, atol=1e-6)  # and stored as integer / v_int
    assert got_spikes == sorted(spikes) and len(spikes) >= 3
    np.testing.assert_array_equal(overflow, expected_overflow)
    assert not any(expected_overflow)


def test_integer_soma_wraps_the_current_saturates_the_potential_and_counts_both(build=None):
    """24-bit current wraps, 24-bit potential saturates, 21-bit dendritic input overflows: each counted per step."""
    big = 2**23 - 100  # two inputs in one step overflow the 24-bit current
    weights_int = np.array([big, 2**22, -(2**22)])
    in_steps = [np.array([0, 1, 3, 4]), np.array([0, 3])]
    n_steps = N_F
    state, got_spikes, overflow = run_soma(weights_int, in_steps, n_steps, 4096, 0, build)
    inputs = {}
    for s in np.concatenate(in_steps):
        inputs[int(s)] = inputs.get(int(s), 0) + weights_int
    trace, spikes, expected_overflow = reference_soma(inputs, len(weights_int), n_steps, 4096, 0)
    np.testing.assert_array_equal(np.rint(state.v_soma.T * V_INT), np.array([v for _, v in trace]))
    assert got_spikes == sorted(spikes)
    np.testing.assert_array_equal(overflow, expected_overflow)
    assert all(count > 0 for count in expected_overflow)  # every neuron's input exceeds 21 bits; 0 wraps, 2 saturates


def test_integer_soma_wraps_and_saturates_alike_in_standalone(standalone, tmp_path):
    """C++ evaluates the wrap's % and the decays' floor as numpy does (Python's floored modulo)."""
    test_integer_soma_wraps_the_current_saturates_the_potential_and_counts_both(tmp_path / "build")


def learning_synapses(n_pre: int, n_post: int, *, eta: float, eps: float, n_error: float, x: float, bits: int = 8):
    """forward_synapse_loihi between dummy groups; the pre group sends one ``learn`` event at t = 0."""
    el = load_element("forward_synapse_loihi")
    el.values["eta"], el.values["num_weight_bits"] = eta, bits
    spec = compose([el], {"v_th_mant": V_TH_MANT, "init_scale": 1.0, "n_pre": n_pre})
    pre = b2.NeuronGroup(n_pre, "x_trace : 1", threshold="False", events={"learn": "t < dt/2"}, name="pre")
    post = b2.NeuronGroup(n_post, "u_soma : 1\neps_error : 1\nn_error_total : 1", name="post")
    pre.x_trace, post.eps_error, post.n_error_total = x, eps, n_error
    syn = b2.Synapses(pre, post, **spec.synapse_kwargs(), name="fw")
    syn.connect()
    syn.eta = eta
    return pre, post, syn


@pytest.mark.parametrize("bits", [8, 6, 3])
def test_export_quantises_as_the_model_holds_weights(bits):
    """loihi_layers (the export) and forward_synapse_loihi's w_loihi (the model) give the same weights, for every
    numWeightBits: mantissas multiples of 2^(9 - bits) in [-256, 256 - 2^(9 - bits)], clipped where beyond."""
    n_pre, n_post = 100, 30
    W = np.random.default_rng(5).normal(0, 5 * math.sqrt(2 / n_pre), (n_post, n_pre))  # 5x He init: some clipped
    _, _, syn = learning_synapses(n_pre, n_post, eta=0.0, eps=0.0, n_error=0.0, x=0.0, bits=bits)
    syn.w = W.T.ravel()  # Brian2's all-to-all order: (pre, post)
    params = {"forward_synapse": {"num_weight_bits": bits}}
    spec = NetworkSpec(sizes=(n_pre, n_post), precision="loihi", params=params)
    (layer,) = loihi_layers(spec, [W])
    np.testing.assert_allclose(layer.weight.T.ravel(), syn.w_loihi[:], rtol=0, atol=1e-12)
    n_drop = 9 - bits
    assert (layer.mantissa % 2**n_drop == 0).all() and layer.clipped > 0
    assert layer.mantissa.min() >= -256 and layer.mantissa.max() <= 256 - 2**n_drop


@pytest.mark.parametrize(("n_pre", "exponent"), [(784, 0), (500, 1), (100, 2), (10, 3)])
def test_weight_exponent_from_fan_in_and_the_grid(n_pre, exponent):
    """w_exp = ceil(log2(w_range sqrt(2/n_pre) v_th_mant / 256)); w_loihi is w rounded to the step 2^(w_exp+1)/v_th_mant
    (8-bit MIXED mantissa) and clipped to [-256, 254] * 2^w_exp / v_th_mant."""
    w_range = float(load_element("forward_synapse_loihi").values["w_range"])
    assert exponent == math.ceil(math.log2(w_range * math.sqrt(2 / n_pre) * V_TH_MANT / 256))
    _, _, syn = learning_synapses(n_pre, 3, eta=0.0, eps=0.0, n_error=0.0, x=0.0)
    rng = np.random.default_rng(1)
    w = rng.normal(0, 3 * math.sqrt(2 / n_pre), size=len(syn))  # wide: some beyond the range
    syn.w = w
    step = 2 ** (exponent + 1) / V_TH_MANT
    np.testing.assert_array_equal(syn.w_exp[:], exponent)
    mantissa = np.clip(np.floor(w / step + 0.5) * 2, -256, 254)
    np.testing.assert_allclose(syn.w_loihi[:], mantissa * 2**exponent / V_TH_MANT, rtol=0, atol=1e-15)
    np.testing.assert_allclose(syn.w_loihi[:] / step, np.rint(syn.w_loihi[:] / step), atol=1e-9)


@pytest.mark.parametrize("steps", [0.3, -1.7])
def test_weight_update_is_rounded_stochastically_without_bias(steps):
    """One learn event: w moves by floor(r) or floor(r)+1 weight steps, the latter with probability r - floor(r)."""
    b2.defaultclock.dt = 1 * b2.ms
    n_pre, n_post = 784, 40
    step = 2 / V_TH_MANT  # exponent 0 at n_pre = 784
    eps, n_error, x = 0.05, 2.0, 0.5
    pre, post, syn = learning_synapses(n_pre, n_post, eta=steps * step / (eps * n_error * x),
                                       eps=eps, n_error=n_error, x=x)
    syn.w = np.random.default_rng(2).integers(-100, 100, size=len(syn)) * step  # on the grid, inside the range
    before = syn.w[:].copy()
    b2.Network(pre, post, syn).run(1 * b2.ms, namespace={})
    moved = (syn.w[:] - before) / step
    np.testing.assert_allclose(moved, np.rint(moved), atol=1e-9)
    assert set(np.rint(moved).astype(int)) == {math.floor(steps), math.floor(steps) + 1}
    frac = steps - math.floor(steps)
    assert abs(moved.mean() - steps) < 5 * math.sqrt(frac * (1 - frac) / len(moved))


def test_seven_bit_trace_counts_spikes_with_stochastic_impulses():
    """x1 = x_trace * x_max gains floor(x_max/n_f + U) per forward spike and stops at x_max (127)."""
    b2.defaultclock.dt = 1 * b2.ms
    x_max = int(load_element("eligibility_loihi").values["x_max"])
    counts = np.repeat([0, 3, N_F], 400)  # silent, 3 spikes, a spike in every forward step
    group, objects = make_group(["schedule", "eligibility_loihi"], len(counts), slot_kinds=(1,),
                                declared="n_wanted : 1", threshold="t_in_timesteps < n_wanted")
    group.n_wanted = counts
    b2.Network(*objects).run(N_F * b2.ms, namespace={})
    x1 = group.x_trace[:] * x_max
    np.testing.assert_allclose(x1, np.rint(x1), atol=1e-9)  # whole numbers
    x1 = np.rint(x1)
    impulse = x_max / N_F
    assert (x1[counts == 0] == 0).all()
    three = x1[counts == 3]
    assert three.min() >= 3 * math.floor(impulse) and three.max() <= 3 * math.ceil(impulse)
    frac = impulse - math.floor(impulse)
    assert abs(three.mean() - 3 * impulse) < 5 * math.sqrt(3 * frac * (1 - frac) / len(three))
    assert x1[counts == N_F].max() == x_max  # saturates at 7 bits


def test_seven_bit_sleep_trace_is_unbiased_and_fits_seven_bits():
    """sleep_noise_loihi's trace y1 = x_sleep * x_unit: whole numbers in [0, 127], impulse 63 (tau_sleep 2 ms),
    and as the feedback synapses read it (after the step's decay, before its spike) its mean is the float
    trace's x_mean = p_noise (tau_sleep/dt - 1) and its lag-1 autocorrelation the decay 1 - dt/tau_sleep."""
    b2.defaultclock.dt = 1 * b2.ms
    group, objects = make_group(["schedule", "eligibility_loihi", "sleep_noise_loihi"], 2000, slot_kinds=(3,))
    read = b2.StateMonitor(group, "x_sleep", record=True, when="synapses")  # where the feedback synapses read it
    b2.Network(*objects, read).run(100 * b2.ms, namespace={})
    element = load_element("sleep_noise_loihi")
    x_unit, x_mean = 63, float(element.values["p_noise"]) * (2 - 1)
    y1 = read.x_sleep[:, 10:] * x_unit  # after the trace's start-up (10 steps: 2^-10 of the impulse left)
    np.testing.assert_allclose(y1, np.rint(y1), atol=1e-9)
    assert 0 <= y1.min() and 50 < y1.max() <= 63  # read after the decay: at most half of 126 (63 + the impulse 63)
    x = y1 / x_unit
    assert abs(x.mean() - x_mean) < 5 * x.std() / np.sqrt(x.size / 2)  # samples a step apart correlate by 1/2
    lag1 = np.corrcoef(x[:, :-1].ravel(), x[:, 1:].ravel())[0, 1]
    assert abs(lag1 - 0.5) < 0.02


@pytest.mark.parametrize(("precision", "loihi_elements"), [
    ("loihi_weights", {"forward_synapse_loihi", "feedback_synapse_loihi"}),
    ("loihi_traces", {"forward_synapse_loihi", "feedback_synapse_loihi", "eligibility_loihi", "sleep_noise_loihi"}),
    ("loihi", {"forward_synapse_loihi", "feedback_synapse_loihi", "eligibility_loihi", "sleep_noise_loihi",
               "soma_loihi"}),
])
def test_precision_replaces_the_float_elements_and_their_overrides_follow(precision, loihi_elements):
    """model.precision picks the ablation level of network.yaml's precisions table; an override written for a float
    element (model.params.forward_synapse.eta) reaches its replacement."""
    spec = NetworkSpec(sizes=(6, 5, 4), precision=precision, params={"forward_synapse": {"eta": "0.01"}})
    composition = spec.composition
    names = set(composition.elements)
    assert {n for n in names if n.endswith("_loihi")} == loihi_elements
    assert not {n.removesuffix("_loihi") for n in loihi_elements} - {"eligibility"} & names
    assert float(composition.elements["forward_synapse_loihi"].values["eta"]) == 0.01
    if "eligibility_loihi" in loihi_elements:  # the learning trace is 7-bit; the output's and inference's rates count
        assert "eligibility_loihi" in composition.element_names("input")
        assert "eligibility_loihi" in composition.element_names("hidden")
        for kind in ("output", "inference_input", "inference"):
            assert "eligibility" in composition.element_names(kind)


def test_unknown_precision_or_parameter_is_named():
    with pytest.raises(ValidationError, match=r"model.precision: 'loihi2' is not one of float, loihi_weights"):
        NetworkSpec(sizes=(6, 5, 4), precision="loihi2")
    with pytest.raises(ValidationError, match=r"model.params.soma.delta_u: unknown parameter of soma_loihi"):
        NetworkSpec(sizes=(6, 5, 4), precision="loihi", params={"soma": {"delta_u": "0.5"}})


def test_feedback_weights_grid_from_fan_out_and_unbiased_sleep_updates():
    """B_l's exponent comes from n_post (B_l ~ N(0, 2/N_{l-1})); a sleep spike's update r = eta_sleep (x_sleep - x_mean
    - lambda_sleep b) / b_res is applied at the next spike (t_epoch_sleep 1) as floor(r) or floor(r)+1 steps, the
    latter with probability r - floor(r)."""
    b2.defaultclock.dt = 1 * b2.ms
    el = load_element("feedback_synapse_loihi")
    eta_sleep = float(el.values["eta_sleep"])
    n_pre, n_post = 40, 500  # an upper layer of 40 neurons feeding back to 500 (exponent from n_post = 500: 1)
    spec = compose([el], {"v_th_mant": V_TH_MANT, "init_scale": 1.0, "n_post": n_post})
    pre = b2.NeuronGroup(n_pre, "eps_error : 1\nsigma_sleep : 1", threshold="False",
                         events={"err_pos": "False", "err_neg": "False", "sleep_spike": "t < 3*dt/2"}, name="pre")
    post = b2.NeuronGroup(n_post, "d_apical : 1\nx_sleep : 1\nx_mean : 1", name="post")
    step = 2 ** (1 + 1) / V_TH_MANT
    target = 0.3  # steps per update, before the decay term
    post.x_sleep, post.x_mean = target * step / eta_sleep, 0.0
    syn = b2.Synapses(pre, post, **spec.synapse_kwargs(), name="fb")
    syn.connect()
    syn.eta_sleep = eta_sleep
    syn.b = 0.0  # b = 0: the decay term lambda_sleep*b vanishes and r = target exactly
    np.testing.assert_array_equal(syn.b_exp[:], 1)
    b2.Network(pre, post, syn).run(2 * b2.ms, namespace={})  # two spikes: the second applies the first's update
    moved = syn.b[:] / step
    np.testing.assert_allclose(moved, np.rint(moved), atol=1e-9)
    assert set(np.rint(moved).astype(int)) == {0, 1}
    assert abs(moved.mean() - target) < 5 * math.sqrt(target * (1 - target) / len(moved))


def test_the_error_path_is_integer_registers_at_loihi_precision():
    """At Loihi precision the apical compartment holds an integer D times its register's unit (feedback weights on
    B's grid times eps), the output's error a count over n_f, and the error events are an integer accumulator's:
    |D| per step against the integral threshold of models/loihi.py's ErrorRegister (one event at most per step),
    for every neuron and slot of a chunk (runtime; deterministic rounding: dither_error 0). Where n_e |D| lands on
    a half exactly (a tie), the float sum of n_e steps may fall an ulp short and send one event fewer: integer
    registers round ties up, as the rule says."""
    spec = NetworkSpec(sizes=(64, 12, 10), feedback="sleep", precision="loihi",
                       params={"error_events": {"dither_error": 0}, "network": {"gain_hidden": 4}})
    registers = error_registers(spec)
    assert [r.threshold for r in registers.values()] == [40, 10] and all(r.integral for r in registers.values())
    net = BioGradNetwork(spec, slots=8, seed=1)
    kinds, images, targets = samples(0, 8)
    result = net.run_chunk(kinds, images, targets)
    n_e, n_f = net.composition.n_e, net.composition.n_f
    y_high = float(net.composition.elements["teacher"].values["y_high"])
    errors = {1: result.apical[1] / registers[1].unit * result.gates[1], 2: (y_high * targets - result.rates[2]) * n_f}
    for l, D in errors.items():
        assert np.abs(D - np.round(D)).max() < 1e-6, f"layer {l}: an integer number of units"
        D, theta = np.round(D), registers[l].threshold
        assert 2 ** 23 > np.abs(D).max() > 2 * theta / n_e, f"layer {l}: fits 24 bits, sends events"
        events = np.sign(D) * np.minimum(n_e, np.floor((theta + n_e * np.abs(D)) / (2 * theta)))
        tie = (np.mod(theta + n_e * np.abs(D), 2 * theta) == 0) & (np.abs(D) <= 2 * theta)  # lands on 1/2 exactly
        short = np.abs(events) - np.abs(result.errors[l])  # float sums may fall an ulp short of a tie
        assert np.all(np.sign(result.errors[l]) * np.sign(D) >= 0)
        assert np.all(short[~tie] == 0) and set(np.unique(short[tie])) <= {0, 1}, f"layer {l}: the accumulator's events"
    assert not error_registers(spec.model_copy(update={"params": {"network": {"gain_hidden": 5.89}}}))[1].integral
    transpose = spec.model_copy(update={"feedback": "transpose", "params": {}})  # relays s*w (transpose_relay.eqs)
    scaled = transpose.model_copy(update={"params": {"transpose_relay": {"scale_transpose": 1.4}}})
    assert error_registers(scaled)[1].unit == pytest.approx(1.4 * error_registers(transpose)[1].unit)
