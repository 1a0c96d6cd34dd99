"""A network's inference path as Loihi 1 holds it: integer weight mantissas, exponents, compartment constants.

The equation files are the one definition: ``forward_synapse_loihi.eqs`` defines each layer's weight
exponent, step and range as subexpressions of ``n_pre`` and its parameters, and :func:`loihi_layers`
evaluates exactly those expressions. Weights in threshold units map to Loihi's integers as

    w = m * 2^w_exp / v_th_mant,   m = 2^n_drop * round(w / w_res)  in [-256, 256 - 2^n_drop],
    w_eff = m * 2^(6 + w_exp)      (the integer added to the current per spike),
    vth = v_th_mant * 2^6.

A float network is quantised on the same grid (post-training quantisation); a Loihi-precision
network is on it already (the learned weights) or rounded to it as the chip would (untouched ones).

The learning rules are exported from their one definition too: each rule of a Loihi synapse element
(``dw`` and ``db_sleep``, taken from the float elements' ``## rule`` sections) is expanded with sympy
into NxSDK's sum of products, its quantities renamed by the one table :data:`NXSDK_TRACES` and its
event by :data:`NXSDK_EVENTS` (:func:`learning_rules`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import sympy
from brian2.equations.equations import SUBEXPRESSION
from brian2.parsing.sympytools import str_to_sympy

from biograd.models.composition import Composition, load_composition
from biograd.models.elements import Element, Rule
from biograd.models.errors import ModelFileError
from biograd.models.spec import NetworkSpec

LOIHI = "loihi"  # the precision whose elements describe the chip (network.yaml's precisions table)
_FUNCTIONS = {"clip": np.clip, "ceil": np.ceil, "floor": np.floor, "log": np.log, "sqrt": np.sqrt, "abs": np.abs}
#: The model's quantities that Loihi's learning engine holds, in NxSDK's sum-of-products names (a rule is a sum of
#: products of the presynaptic spike x0 and traces x1, x2, the postsynaptic traces y1-y3, the weight w and
#: constants; Davies et al. 2018); ``_pre``/``_post`` name the pre- and postsynaptic neuron's, as in the equation
#: files. The rule's own weight v is the mantissa w: v = w * v_res / 2^n_drop (forward_synapse_loihi.eqs).
NXSDK_TRACES = {"x_trace_pre": "x1/x_max_pre",  # the 7-bit eligibility trace (eligibility_loihi.eqs)
                "n_error_total_post": "y1 - y2",  # err_pos minus err_neg events of the sample (error_events.eqs)
                "x_sleep_post": "y1/x_unit_post"}  # the 7-bit noise trace (sleep_noise_loihi.eqs)
#: The pathway a rule runs on -> NxSDK's dependency factor, and its learning epoch tEpoch in steps (or the name of
#: the number). The model sums a sleep epoch's per-spike updates (feedback_synapse_loihi.eqs); NxSDK evaluates the
#: rule once per epoch: the same where t_epoch_sleep is 1.
NXSDK_EVENTS = {"on_pre learn": ("1", "n_slot"),  # once per sample, at the end of its slot
                "on_pre sleep_spike": ("x0", "t_epoch_sleep")}  # on each sleep spike of the presynaptic neuron
NXSDK_VARIABLES = ("x0", "x1", "x2", "y1", "y2", "y3", "w")  # in the order a product is written
#: Loihi's learning engine as lava-nc 0.10 models it (lava/magma/core/learning: product_series.py, constants.py,
#: learning_rule_applier.py): a product's scale is m * 2^e with a 4-bit signed mantissa m in [-8, 7] and e in [-7, 8];
#: every product names its dependency (x0, y0, or u0: once per epoch); the bit-approximate engine multiplies the
#: factors (widths in bits below; the scale's mantissa 4) and drops max(0, widths + 4 - 15) low bits of the product to
#: fit its 15-bit accumulator before the scale's 2^e: x1*y1 (7 + 7 + 4 = 18 bits) loses 3.
ENGINE_MANTISSA, ENGINE_EXPONENT, ENGINE_ACCUMULATOR_BITS = (-8, 7), (-7, 8), 15
ENGINE_WIDTHS = {"x0": 1, "y0": 1, "x1": 7, "x2": 7, "y1": 7, "y2": 7, "y3": 7, "w": 9}


@dataclass(frozen=True)
class LoihiRule:
    """A learning rule in NxSDK's sum-of-products syntax (``dw = ...``, scales in weight-mantissa units) and its
    learning epoch (NxSDK's tEpoch, in steps); ``lava``: the same rule as lava-nc 0.10's LearningDense parses and its
    bit-approximate engine applies it (:func:`lava_text`), with ``lava_error`` the largest relative rounding of a
    product's scale, or '' and ``lava_problem`` where a scale has no such form."""

    text: str
    epoch: int
    lava: str = ""
    lava_error: float = 0.0
    lava_problem: str = ""


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


@dataclass(frozen=True)
class ErrorRegister:
    """Layer l's error path (apical compartment and error accumulator) as integer registers.

    Its error is an integer D times ``unit``: a hidden layer sums feedback weights on B_{l+1}'s grid, each times
    the sending layer's eps, so D = sum of +-b / b_res and unit = b_res eps_{l+1} = b_res / (n_e gain_{l+1});
    the output layer's delta = y_high target - count / n_f is a count over n_f (D integer where y_high n_f is).
    The accumulator adds |gain_l delta| per step and sends an event at 1/2, less one: in units of D, it adds |D|
    and fires at ``threshold`` = 1 / (2 gain_l unit), less 2 threshold. An integral threshold makes the
    float model's error events exactly those of integer registers (with the dither's start value on the
    same grid), but for exact ties, where the float sum can fall an ulp short and send one event fewer;
    otherwise integer registers round the threshold, i.e. the gain, by up to 1/(2 threshold).
    """

    unit: float
    threshold: float

    @property
    def integral(self) -> bool:
        """Whether the threshold is a whole number (to 1e-9), so that integer registers lose nothing."""
        return abs(self.threshold - round(self.threshold)) < 1e-9 * max(1.0, self.threshold)


def error_registers(spec: NetworkSpec) -> dict[int, ErrorRegister]:
    """Per layer l >= 1 of ``spec`` (at Loihi precision): its error path as integer registers (ErrorRegister).
    The relaying weights' step comes from feedback_synapse_loihi.eqs (b_exp, b_res; transpose mode: W's w_exp,
    w_res times transpose_relay.eqs' scale_transpose), the error events' size from error_events.eqs (eps_error):
    the files stay the one definition."""
    if spec.feedback == "transpose_residual":
        raise ValueError("feedback mode transpose_residual relays errors through W and B at once: no single register "
                         "unit (an ablation of the float model, not a Loihi network)")
    chip = loihi_spec(spec).composition
    events, L = chip.elements["error_events"], chip.n_layers
    # the weights that relay error events: B_{l+1} (its fan-out, n_post), or W_{l+1} itself, times s, in transpose mode
    relay, exp, res, fan, scale = (
        ("forward_synapse_loihi", "w_exp", "w_res", "n_pre",
         float(chip.elements["transpose_relay"].values["scale_transpose"])) if chip.relays_through_w
        else ("feedback_synapse_loihi", "b_exp", "b_res", "n_post", 1.0))
    gain = {l: float(chip.set_values(chip.layer_kind(l))["gain_error"]) for l in range(1, L + 1)}
    registers = {L: ErrorRegister(1 / chip.n_f, chip.n_f / (2 * gain[L]))}
    for l in range(1, L):
        grid = _grid_constants(chip) | {fan: chip.sizes[l]}
        step = _evaluate(chip.elements[relay], res, grid | {exp: int(_evaluate(chip.elements[relay], exp, grid))})
        unit = scale * step * _evaluate(events, "eps_error", {"n_e": chip.n_e, "gain_error": gain[l + 1]})
        registers[l] = ErrorRegister(unit, 1 / (2 * gain[l] * unit))
    return dict(sorted(registers.items()))


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


def learning_rules(spec: NetworkSpec, left_out: bool = False) -> dict[str, LoihiRule | ModelFileError]:
    """The learning rules of ``spec`` at Loihi precision, per synapse group (``forward1``, ``feedback2``, ...):
    :func:`composition_rules` of its Loihi composition."""
    return composition_rules(loihi_spec(spec).composition, left_out)


def composition_rules(chip: Composition, left_out: bool = False) -> dict[str, LoihiRule | ModelFileError]:
    """Every learning rule of the synapse groups of ``chip`` in NxSDK's sum-of-products syntax, derived from its
    definition (its ``## rule``): in weight-mantissa units, rule * 2^n_drop / step, times the event's
    dependency factor, with the traces of :data:`NXSDK_TRACES` and every other name a constant of the network,
    expanded into products. Today's rules give, per layer l,
        forward:  dw = C x1 y1 - C x1 y2,              C = eta eps_l 2^n_drop / (x_max w_res_l)
        feedback: dw = C1 x0 y1/x_unit - C1 m x0 - C2 x0 w,
                  C1 = eta_sleep 2^n_drop / b_res_l,  C2 = eta_sleep lambda_sleep
    (m: the noise trace's stationary mean, x_unit its impulse, sleep_noise_loihi.eqs; the term of scale_sleep
    vanishes at 0). Scales are rounded to 8-bit mantissas. A term that is no such product (a name without a
    trace, e.g. sigma_sleep_pre where scale_sleep is not 0, or a function of a trace) is a ModelFileError at the
    rule's definition: raised, or with ``left_out`` the group's entry (the rule left out of an export, the rest
    kept)."""
    rules = {}
    for l in range(1, chip.n_layers + 1):
        groups = [("forward", chip.synapse_kind(l), l - 1, l)]
        groups += [("feedback", "feedback", l, l - 1)] if chip.has_feedback_synapses(l) else []
        for prefix, kind, pre, post in groups:
            found = [(el, rule) for el in chip.group_elements(kind) for rule in el.rules.values()]
            for el, rule in found:
                key = f"{prefix}{l}" if len(found) == 1 else f"{prefix}{l}.{rule.name}"
                try:
                    rules[key] = _sum_of_products(chip, el, rule, (kind, pre, post), f"{prefix}{l}")
                except ModelFileError as err:
                    if not left_out:
                        raise
                    rules[key] = err
    return rules


def check_rules(directory) -> None:
    """Every learning rule of the equation files in ``directory`` has a sum-of-products form at Loihi precision
    (:func:`composition_rules` of a network with every synapse kind); a ModelFileError at the rule's line if not."""
    chip = load_composition((2, 2, 2, 2), "sleep", "regular", {}, directory)
    if LOIHI in chip.table.precisions:
        composition_rules(load_composition((2, 2, 2, 2), "sleep", "regular", {}, directory, LOIHI))


def _group_constants(chip: Composition, layer: int) -> dict[str, float]:
    kind = chip.layer_kind(layer)
    return chip.constants() | {"dt": float(chip.dt), "n_neurons": chip.sizes[layer]} | \
        {k: float(v) for k, v in chip.set_values(kind).items()}


def _constant(elements: list[Element], name: str, known: dict[str, float]) -> float | None:
    """``name`` as a number: in ``known``, a parameter of ``elements`` or a subexpression of them that only reads
    such numbers (evaluated as :func:`_evaluate` does); None for a state variable."""
    if name in known:
        return known[name]
    for el in elements:
        if name in el.values:
            return float(el.values[name])
        if name in el.equations.names and el.equations[name].type == SUBEXPRESSION:
            values = dict(known)
            for _ in range(len(el.equations.names) + len(known) + 1):
                try:
                    return float(eval(el.equations[name].expr.code, {"__builtins__": {}},  # noqa: S307 - our files
                                      _FUNCTIONS | values))
                except NameError as err:
                    value = _constant(elements, err.name, known)
                    if value is None:
                        return None
                    values[err.name] = value
    return None


def _sum_of_products(chip: Composition, el: Element, rule: Rule, synapse_group: tuple[str, int, int],
                     group: str) -> LoihiRule:
    """The rule ``rule`` of ``el``, in ``synapse_group`` (its kind, pre- and postsynaptic layer), as NxSDK's sum of
    products."""
    def fail(problem: str) -> ModelFileError:
        return ModelFileError(rule.path, f"rule {rule.name} ({el.name}, {group}) at Loihi precision: {problem}",
                              rule.line)

    pathways = sorted({pathway for pathway, _ in rule.uses})
    if rule.weight is None:
        raise fail("no statement 'VARIABLE += " + rule.name + "' applies it to a weight")
    if len(pathways) != 1 or pathways[0] not in NXSDK_EVENTS:
        raise fail(f"runs on {', '.join(pathways) or 'no pathway'}; Loihi's learning engine runs a rule on one "
                   f"of {', '.join(NXSDK_EVENTS)} (biograd.models.loihi.NXSDK_EVENTS)")
    dependency, epoch = NXSDK_EVENTS[pathways[0]]
    kind, pre, post = synapse_group
    synapse = chip.constants() | {"dt": float(chip.dt), "n_pre": chip.sizes[pre], "n_post": chip.sizes[post]}
    sides = {"": (chip.group_elements(kind), synapse),
             "_pre": (chip.group_elements(chip.layer_kind(pre)), _group_constants(chip, pre)),
             "_post": (chip.group_elements(chip.layer_kind(post)), _group_constants(chip, post))}
    n_drop = 9 - int(_constant(sides[""][0], "num_weight_bits", synapse))
    step = sympy.Symbol("_step")
    weight = sympy.Symbol("w") * step / 2**n_drop
    expression = str_to_sympy(rule.expression)
    held = dict(rule.substitutions).get(rule.weight, rule.weight)  # the weight as the rule reads it here: b_loihi
    names = {symbol: NXSDK_TRACES.get(symbol.name) for symbol in expression.free_symbols}
    expression = expression.subs({symbol: weight if symbol.name == held else sympy.sympify(trace)
                                  for symbol, trace in names.items() if trace or symbol.name == held})
    expanded = sympy.expand(expression * sympy.sympify(dependency) * 2**n_drop / step)  # the step cancels exactly
    numbers = {step: _constant(sides[""][0], f"{rule.weight}_res", synapse)}
    for symbol in expanded.free_symbols - {step}:
        side = next((s for s in ("_pre", "_post") if symbol.name.endswith(s)), "")
        value = _constant(sides[side][0], symbol.name.removesuffix(side) if side else symbol.name, sides[side][1])
        if value is not None and symbol.name not in NXSDK_VARIABLES:
            numbers[symbol] = value
    terms: dict[tuple[str, ...], float] = {}
    for term in sympy.Add.make_args(sympy.expand(expanded.subs(numbers))):
        coefficient, product = term.as_coeff_Mul()
        factors = sympy.Mul.make_args(product)
        traces = tuple(sorted((str(f) for f in factors if str(f) in NXSDK_VARIABLES), key=NXSDK_VARIABLES.index))
        unknown = sorted({str(s) for f in factors if str(f) not in NXSDK_VARIABLES for s in f.free_symbols}
                         - set(NXSDK_VARIABLES))
        if unknown:
            raise fail(f"the term {term} reads {', '.join(unknown)}, which Loihi's learning engine holds in no trace "
                       f"(biograd.models.loihi.NXSDK_TRACES: {', '.join(NXSDK_TRACES)})"
                       + _brought_in(el, rule, unknown))
        if len(traces) != len(factors) or not coefficient.is_number:
            raise fail(f"the term {term} is no product of {', '.join(NXSDK_VARIABLES)} and constants")
        terms[traces] = terms.get(traces, 0.0) + float(coefficient)
    text = ""
    for traces in sorted(terms, key=lambda t: ("w" in t, -len(t), [NXSDK_VARIABLES.index(v) for v in t])):
        if terms[traces] != 0:
            product = "*".join([_scaled(abs(terms[traces])), *traces])
            text = _added(text, product, terms[traces] < 0)
    epoch_steps = epoch if epoch.isdigit() else _constant(sides[""][0], epoch, synapse)
    try:
        lava, error, problem = *lava_text(terms), ""
    except ValueError as err:
        lava, error, problem = "", 0.0, str(err)
    return LoihiRule(f"dw = {text or '0'}", int(epoch_steps), lava, error, problem)


def _added(text: str, product: str, negative: bool) -> str:
    """``text`` (a sum of products so far) with ``product`` added, or subtracted where ``negative``."""
    return text + ((" - " if text else "-") if negative else (" + " if text else "")) + product


def lava_text(terms: dict[tuple[str, ...], float]) -> tuple[str, float]:
    """The sum of products ``terms`` (factors -> scale, weight-mantissa units) as lava-nc 0.10's LearningDense parses
    it and its bit-approximate engine (the chip's arithmetic, :data:`ENGINE_WIDTHS`) applies it: each product with its
    dependency (u0 where it has no x0 or y0: the rule runs once per epoch) and the scale S 2^k, k the low bits the
    engine drops of that product, rounded to m 2^e (:data:`ENGINE_MANTISSA`, :data:`ENGINE_EXPONENT`). Returns the
    text and the largest relative rounding |m 2^e - S 2^k| / (S 2^k); ValueError where a scale rounds to 0 or lies
    above the range. (Lava's float engine reads the same text without the dropped bits: 2^k times the rule.)"""
    text, worst = "", 0.0
    for factors in sorted(terms, key=lambda t: ("w" in t, -len(t), [NXSDK_VARIABLES.index(v) for v in t])):
        if terms[factors] == 0:
            continue
        dependency = next((f for f in factors if f in ("x0", "y0")), "u0")
        rest = [f for f in factors if f != dependency] if dependency != "u0" else list(factors)
        dropped = max(0, sum(ENGINE_WIDTHS[f] for f in rest) + 4 - ENGINE_ACCUMULATOR_BITS)
        wanted = abs(terms[factors]) * 2.0**dropped
        exponent = max(ENGINE_EXPONENT[0], int(np.floor(np.log2(wanted))) - 2)  # mantissa in [4, 8) where it can
        mantissa = int(round(wanted / 2.0**exponent))
        if mantissa == 8:
            mantissa, exponent = 4, exponent + 1
        if mantissa == 0 or exponent > ENGINE_EXPONENT[1]:
            smallest, largest = 2.0**ENGINE_EXPONENT[0], ENGINE_MANTISSA[1] * 2.0**ENGINE_EXPONENT[1]
            raise ValueError(f"the product {'*'.join([dependency, *rest])} needs the scale {abs(terms[factors]):.4g} "
                             f"(weight-mantissa units; times 2^{dropped} for the low bits the engine drops of it: "
                             f"{wanted:.4g}), outside Loihi's "
                             f"learning engine's {smallest:g} to {largest:g} (lava-nc 0.10: m*2^e, m in "
                             f"[{ENGINE_MANTISSA[0]}, {ENGINE_MANTISSA[1]}], e in [{ENGINE_EXPONENT[0]}, "
                             f"{ENGINE_EXPONENT[1]}])")
        worst = max(worst, abs(mantissa * 2.0**exponent - wanted) / wanted)
        term = "*".join([dependency, f"{mantissa}*2^{exponent}", *rest])
        text = _added(text, term, terms[factors] < 0)
    return f"dw = {text or '0'}", worst


def _brought_in(el: Element, rule: Rule, names: list[str]) -> str:
    """Where ``rule`` has its terms reading ``names``: '; the rule has them where eta_sleep*scale_sleep is not 0
    (eta_sleep = 0.0003, scale_sleep = 0.105)', from the parameters of ``el`` that multiply them ('' if none)."""
    terms = [t for t in sympy.Add.make_args(sympy.expand(str_to_sympy(rule.expression)))
             if {str(s) for s in t.free_symbols} & set(names)]
    factors = sorted({str(s) for t in terms for s in t.free_symbols} & set(el.table.parameters))
    if not factors:
        return ""
    values = ", ".join(f"{name} = {float(el.values[name]):g}" for name in factors)
    return f"; the rule has them where {'*'.join(factors)} is not 0 ({values})"


def trace_parameters(spec: NetworkSpec) -> dict[str, dict[str, float]]:
    """The learning rules' traces at Loihi precision (NxSDK's impulse and decay time constant, tau 0 = no decay
    within a learning epoch): x1, the presynaptic 7-bit forward trace; y1/y2, the postsynaptic err_pos/err_neg
    counts; y1 of the sleep rule, the postsynaptic noise trace x_sleep (sleep_noise_loihi.eqs: impulse x_unit, decay
    1 - dt/tau_sleep per step)."""
    chip = loihi_spec(spec).composition
    x_max = float(chip.elements["eligibility_loihi"].values["x_max"])
    traces = {"forward.x1": {"impulse": x_max / chip.n_f, "tau": 0, "bits": 7, "stochastic_rounding": 1},
              "forward.y1": {"impulse": 1, "tau": 0, "bits": 7, "stochastic_rounding": 0},
              "forward.y2": {"impulse": 1, "tau": 0, "bits": 7, "stochastic_rounding": 0}}
    if "sleep_noise_loihi" in chip.elements and spec.feedback == "sleep":
        noise = chip.elements["sleep_noise_loihi"]
        impulse = _evaluate(noise, "x_unit", {"dt": float(chip.dt)})
        tau = float(noise.values["tau_sleep"] / chip.dt)
        traces["feedback.y1"] = {"impulse": impulse, "tau": tau, "bits": 7, "stochastic_rounding": 1}
    return traces
