"""A network's inference path as Loihi 1 holds it: integer weight mantissas, exponents, compartment constants.

The equation files are the one definition: ``forward_synapse_loihi.eqs`` defines each layer's weight
exponent, step and range as subexpressions of ``n_pre`` and its parameters, and :func:`loihi_layers`
evaluates exactly those expressions. Weights in threshold units map to Loihi's integers as

    w = m * 2^w_exp / v_th_mant,   m = 2^n_drop * round(w / w_res)  in [-256, 256 - 2^n_drop],
    w_eff = m * 2^(6 + w_exp)      (the integer added to the current per spike),
    vth = v_th_mant * 2^6.

A float network is quantised on the same grid (post-training quantisation); a Loihi-precision
network is on it already (the learned weights) or rounded to it as the chip would (untouched ones).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from biograd.models.spec import NetworkSpec

LOIHI = "loihi"  # the precision whose elements describe the chip (network.yaml's precisions table)
_FUNCTIONS = {"clip": np.clip, "ceil": np.ceil, "floor": np.floor, "log": np.log, "sqrt": np.sqrt, "abs": np.abs}


@dataclass(frozen=True)
class LoihiLayer:
    """One dense layer on Loihi: W_l (N_l x N_{l-1}) as mantissas, and the postsynaptic compartments' constants."""

    mantissa: np.ndarray  # int, N_l x N_{l-1}, in [-256, 256 - 2^n_drop], multiples of 2^n_drop
    weight_exponent: int
    num_weight_bits: int
    step: float  # the weight's step in threshold units (forward_synapse_loihi.eqs: w_res)
    v_th_mant: int
    d_u: int  # current decay in 1/4096 (Loihi's effective du; lava-dl netx iDecay)
    d_v: int  # voltage decay in 1/4096 (vDecay)
    clipped: int  # weights outside the range, clipped to it
    rms_rounding: float  # root mean square of (quantised - given) weight, in threshold units

    @property
    def n_drop(self) -> int:
        """Dropped low bits of the mantissa (MIXED sign mode): 9 - num_weight_bits."""
        return 9 - self.num_weight_bits

    @property
    def weight(self) -> np.ndarray:
        """The weights in threshold units, as the chip holds them (the model's w_loihi): steps times the step."""
        return (self.mantissa // 2**self.n_drop) * self.step


def loihi_spec(spec: NetworkSpec) -> NetworkSpec:
    """``spec`` itself at precision loihi; a float spec becomes the same network at precision loihi, its
    overrides applied to the Loihi elements (to quantise a float network on the chip's grid)."""
    return spec if spec.precision == LOIHI else spec.model_copy(update={"precision": LOIHI})


def _evaluate(element, name: str, namespace: dict) -> float:
    """The subexpression ``name`` of ``element``'s equation file, with its parameters and ``namespace`` (numbers in
    SI units) and numpy for Brian2's functions: the file stays the one definition."""
    values = {k: float(v) for k, v in element.values.items()} | namespace
    expression = element.equations[name].expr.code
    return float(eval(expression, {"__builtins__": {}}, _FUNCTIONS | values))  # noqa: S307 - our own files


def loihi_layers(spec: NetworkSpec, W: list[np.ndarray]) -> list[LoihiLayer]:
    """The forward weights ``W`` (threshold units) of the network ``spec``, on Loihi's grid."""
    chip = loihi_spec(spec).composition
    synapse, soma = chip.elements["forward_synapse_loihi"], chip.elements["soma_loihi"]
    bits = int(synapse.values["num_weight_bits"])
    if bits == 7:
        raise ValueError("num_weight_bits 7 is not a Loihi setting (0..6 or 8): forward_synapse_loihi.yaml or "
                         "model.params.forward_synapse.num_weight_bits")
    n_drop = 9 - bits
    low, high = -256 // 2**n_drop, (256 - 2**n_drop) // 2**n_drop  # in steps
    layers = []
    for weights in W:
        grid = _grid_constants(chip) | {"n_pre": weights.shape[1]}
        exponent = int(_evaluate(synapse, "w_exp", grid))
        step = _evaluate(synapse, "w_res", grid | {"w_exp": exponent})
        steps = np.floor(weights / step + 0.5)
        kept = np.clip(steps, low, high)
        rms = float(np.sqrt(np.mean((kept * step - weights) ** 2)))
        layers.append(LoihiLayer((kept * 2**n_drop).astype(np.int32), exponent, bits, step, chip.whole("v_th_mant"),
                                 int(soma.values["d_u"]), int(soma.values["d_v"]), int(np.sum(steps != kept)), rms))
    return layers


def _grid_constants(chip) -> dict[str, float]:
    """The network constants the Loihi weight grids read (network.yaml: v_th_mant, init_scale)."""
    return {"v_th_mant": chip.whole("v_th_mant"), "init_scale": float(chip.values["init_scale"])}


def _scaled(value: float) -> str:
    """``value`` as NxSDK writes a rule's scale: an integer mantissa (up to 8 bits) times a power of two."""
    if value == 0:
        return "0"
    exponent = int(np.floor(np.log2(abs(value)))) - 7
    mantissa = int(round(value / 2.0**exponent))
    if abs(mantissa) == 256:  # rounded up to 9 bits
        mantissa, exponent = mantissa // 2, exponent + 1
    return f"{mantissa}*2^{exponent}"


def learning_rules(spec: NetworkSpec) -> dict[str, str]:
    """The learning rules of ``spec`` at Loihi precision in NxSDK's sum-of-products syntax, per synapse group,
    with scales in weight-mantissa units: forward W_l, once per sample (learning epoch),
        dw = C x1 y1 - C x1 y2,   C = eta eps_l 2^n_drop / (x_max w_res_l)
    (x1: the 7-bit presynaptic trace; y1, y2: the postsynaptic neuron's err_pos, err_neg events of the
    sample; eps_l = 1/(n_e gain_l)); feedback B_l, on each spike of its presynaptic (upper) neuron in sleep,
        dw = C1 x0 y1 - C1 m x0 - C2 x0 w,   C1 = eta_sleep 2^n_drop / b_res_l,  C2 = eta_sleep lambda_sleep
    (y1: the postsynaptic noise trace x_sleep, m its stationary mean). Scales are rounded to 8-bit mantissas."""
    chip = loihi_spec(spec).composition
    layers = loihi_layers(spec, [np.zeros((n, m)) for m, n in zip(spec.sizes[:-1], spec.sizes[1:], strict=True)])
    forward, feedback = chip.elements["forward_synapse_loihi"], chip.elements.get("feedback_synapse_loihi")
    x_max = float(chip.elements["eligibility_loihi"].values["x_max"])
    rules = {}
    for l, layer in enumerate(layers, start=1):
        post = {"n_e": chip.n_e} | {k: float(v) for k, v in chip.set_values(chip.layer_kind(l)).items()}
        eps = _evaluate(chip.elements["error_events"], "eps_error", post)  # 1/(n_e gain_l)
        c = _scaled(float(forward.values["eta"]) * eps * 2**layer.n_drop / (x_max * layer.step))
        rules[f"forward{l}"] = f"dw = {c}*x1*y1 - {c}*x1*y2"
        if feedback is not None and chip.has_feedback_synapses(l):
            grid = _grid_constants(chip) | {"n_post": spec.sizes[l - 1]}
            b_step = _evaluate(feedback, "b_res", grid | {"b_exp": int(_evaluate(feedback, "b_exp", grid))})
            eta_sleep = float(feedback.values["eta_sleep"])
            c1 = eta_sleep * 2**layer.n_drop / b_step
            mean = _evaluate(chip.elements["sleep_noise"], "x_mean", {"dt": float(chip.dt)})
            rules[f"feedback{l}"] = (f"dw = {_scaled(c1)}*x0*y1 - {_scaled(c1 * mean)}*x0 - "
                                     f"{_scaled(eta_sleep * float(feedback.values['lambda_sleep']))}*x0*w")
    return rules


def trace_parameters(spec: NetworkSpec) -> dict[str, dict[str, float]]:
    """The learning rules' traces at Loihi precision (NxSDK's impulse and decay time constant, tau 0 = no decay
    within a learning epoch): x1, the presynaptic 7-bit forward trace; y1/y2, the postsynaptic err_pos/err_neg
    counts; y1 of the sleep rule, the postsynaptic noise trace x_sleep (decay 1 - dt/tau_sleep per step)."""
    chip = loihi_spec(spec).composition
    x_max = float(chip.elements["eligibility_loihi"].values["x_max"])
    traces = {"forward.x1": {"impulse": x_max / chip.n_f, "tau": 0, "bits": 7, "stochastic_rounding": 1},
              "forward.y1": {"impulse": 1, "tau": 0, "bits": 7, "stochastic_rounding": 0},
              "forward.y2": {"impulse": 1, "tau": 0, "bits": 7, "stochastic_rounding": 0}}
    if "sleep_noise" in chip.elements and spec.feedback == "sleep":
        tau = float(chip.elements["sleep_noise"].values["tau_sleep"] / chip.dt)
        traces["feedback.y1"] = {"impulse": 1, "tau": tau, "bits": 7, "stochastic_rounding": 1}
    return traces
