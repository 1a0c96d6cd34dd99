"""A Brian2 network (as the builder composed it from the equation files) -> the GeNN 5 model that runs it.

The result is data (:class:`GennModel`: populations, projections, code strings, variables, extra
global arrays), printable as text (:meth:`GennModel.text`, the golden-text tests' subject) and built
by :mod:`biograd.models.genn.runner`. No pygenn is needed here.

**Step order.** Brian2 runs, in every step, ``start`` (monitors, slot-start code), ``groups`` (the
Euler step), ``thresholds`` (every event's condition), ``synapses`` (the pathways of this step's
events) and ``resets`` (reset and event code). GeNN runs the synapses of step n's events in step
n+1, before the neurons. So each population's ``sim_code`` finishes Brian2's step n-1 before it
starts step n:

    apply the pathways' writes of step n-1 (u_soma += b2_in_u_soma, ...)
    reset and event code of the events flagged in step n-1 (bits of b2_events)
    if t < b2_t_end:   start, groups, thresholds of step n (the conditions set bits of b2_events)

Synapses read the neurons as they stand after the thresholds and before the resets, as in Brian2.
A chunk of n steps runs n + 1 GeNN steps; the last only finishes step n-1 (``b2_t_end``).

**Events.** Brian2's named events (spike, learn, err_pos, ...) are bits of one variable
``b2_events``; a projection runs on GeNN's presynaptic (postsynaptic) spike-like event
``b2_events_pre & mask`` and then runs each pathway whose bit is set, in Brian2's order. A pathway's
``x_post += expr`` goes through ``addToPost`` into an input variable ``b2_in_x`` of the target
(``addToPre`` for a presynaptic target), which the next step's ``sim_code`` applies.

Sums into one neuron variable are added in another order than Brian2 adds them (GeNN sums a
step's inputs first), so floats agree to rounding, not bitwise.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field

import brian2 as b2
import numpy as np
from brian2.codegen.translation import analyse_identifiers
from brian2.core.variables import ArrayVariable
from brian2.groups.group import CodeRunner
from brian2.groups.neurongroup import Resetter, StateUpdater, Thresholder
from brian2.input.timedarray import TimedArray
from brian2.synapses.synapses import SynapticPathway

from biograd.models.elements import Element
from biograd.models.errors import ModelFileError
from biograd.models.genn.code import SEED, GennRenderer, Untranslatable, c_type, constants, genn_names, render_block

PHASES = {"start": ("before_start", "start", "after_start"), "groups": ("before_groups", "groups", "after_groups"),
          "thresholds": ("before_thresholds", "thresholds", "after_thresholds"),
          "synapses": ("before_synapses", "synapses", "after_synapses"),
          "resets": ("before_resets", "resets", "after_resets")}
EVENTS = "b2_events"  # bitmask of this step's events, per neuron
T_END = "b2_t_end"  # time of the chunk's last step + dt/2: later GeNN steps only finish the last one
SYNAPSE_TIME = "(((int64_t)(t/dt + 0.5) - 1)*dt)"  # Brian2's t of the step whose events a GeNN step propagates


@dataclass
class Population:
    """A NeuronGroup: GeNN variables (Brian2's, the event bits), inputs from projections, one ``sim_code``."""

    name: str
    size: int
    body: str  # the sim_code after the inputs
    params: dict[str, float | int]
    variables: dict[str, str]  # name -> C type
    arrays: dict[str, str]  # extra global arrays: TimedArrays, recordings
    bits: dict[str, int]  # event -> its bit in b2_events
    inputs: list[str] = field(default_factory=list)  # additional input variables b2_in_<variable>

    @property
    def sim_code(self) -> str:
        applied = [f"{name.removeprefix('b2_in_')} += {name};" for name in self.inputs]
        head = ["// Brian2's step n-1, 'synapses': what the pathways added to this population", *applied]
        return "\n".join([*(head if applied else []), self.body])

    def add_input(self, variable: str) -> None:
        if f"b2_in_{variable}" not in self.inputs:
            self.inputs.append(f"b2_in_{variable}")


@dataclass
class Projection:
    """A Synapses object (all to all): its variables, the neuron variables it reads, one code per side."""

    name: str
    source: str
    target: str
    params: dict[str, float | int]
    variables: dict[str, str]  # per-synapse variables
    shared: dict[str, str]  # Brian2's shared variables: GeNN dynamic parameters, set every chunk
    pre_refs: dict[str, str] = field(default_factory=dict)  # x_trace_pre -> x_trace (source variable)
    post_refs: dict[str, str] = field(default_factory=dict)
    pre_condition: str | None = None
    pre_code: str | None = None
    post_condition: str | None = None
    post_code: str | None = None
    post_target: str | None = None  # the target's input variable that addToPost adds to
    pre_target: str | None = None
    connectivity: str = "DENSE"  # or SPARSE: an ensemble's block-diagonal synapses, (pre, post) in Brian2's order
    pre_indices: np.ndarray | None = field(default=None, repr=False)
    post_indices: np.ndarray | None = field(default=None, repr=False)


@dataclass
class Recording:
    """A StateMonitor: ``variables`` of ``population`` every ``every`` steps, into arrays b2_rec_<variable>."""

    monitor: str
    population: str
    variables: list[str]
    every: int


@dataclass
class GennModel:
    dt: float
    populations: list[Population]
    projections: list[Projection]
    recordings: list[Recording]
    timed_arrays: dict[str, list[tuple[str, str]]]  # TimedArray name -> (population, extra global array)

    def text(self) -> str:
        """Everything GeNN is given, as text: the golden-text tests compare it line by line."""
        out = [f"# GeNN model, dt = {self.dt!r} s"]
        for pop in self.populations:
            out += [f"\n## population {pop.name} ({pop.size} neurons)",
                    f"params: {_items(pop.params)}", f"variables: {_items(pop.variables)}",
                    f"inputs: {', '.join(pop.inputs)}", f"arrays: {_items(pop.arrays)}", "sim_code:", pop.sim_code]
        for proj in self.projections:
            synapses = "" if proj.pre_indices is None else f", {len(proj.pre_indices)} synapses"
            out += [f"\n## projection {proj.name}: {proj.source} -> {proj.target} ({proj.connectivity.lower()}"
                    f"{synapses})",
                    f"params: {_items(proj.params)}", f"variables: {_items(proj.variables)}",
                    f"shared (dynamic params): {_items(proj.shared)}",
                    f"pre_refs: {_items(proj.pre_refs)}", f"post_refs: {_items(proj.post_refs)}",
                    f"post_target: {proj.post_target}", f"pre_target: {proj.pre_target}"]
            for side in ("pre", "post"):
                if getattr(proj, f"{side}_code"):
                    out += [f"{side}_event_condition: {getattr(proj, f'{side}_condition')}", f"{side}_event_code:",
                            getattr(proj, f"{side}_code")]
        for rec in self.recordings:
            out.append(f"\n## recording {rec.monitor}: {', '.join(rec.variables)} of {rec.population} "
                       f"every {rec.every} steps")
        return "\n".join(out) + "\n"


def _items(mapping) -> str:
    return ", ".join(f"{k}={v!r}" if not isinstance(v, str) else f"{k}: {v}" for k, v in mapping.items())


def _indent(lines: Iterable[str], depth: int = 1) -> list[str]:
    return ["    " * depth + line if line else line for line in lines]


def _braced(lines: list[str], depth: int) -> list[str]:
    return _indent(["{", *_indent(lines), "}"], depth)


class _Translator:
    def __init__(self, network: b2.Network):
        self.network = network
        self.dt = float(b2.defaultclock.dt)
        self.objects = network.sorted_objects
        self.timed_arrays: dict[str, list[tuple[str, str]]] = {}
        self.sites: dict[str, list[str]] = {}  # per population or projection: its random-number call sites

    # ------------------------------------------------------------------ shared pieces
    def variables(self, owner, code: str, extra: dict | None = None) -> dict:
        """Brian2's variables of ``code`` run on ``owner`` (as create_runner_codeobj resolves them)."""
        known = dict(owner.variables) | (extra or {})
        _, used, unknown = analyse_identifiers(code, known, recursive=True)
        resolved = owner.resolve_all(sorted(used | unknown), run_namespace={}, user_identifiers=set())
        return known | resolved

    def renderer(self, owner, variables: dict, names: dict) -> GennRenderer:
        def array(timed: TimedArray) -> str:
            where = self.timed_arrays.setdefault(timed.name, [])
            if (owner.name, timed.name) not in where:
                where.append((owner.name, timed.name))
            return timed.name
        index = "id_pre*num_post + id_post" if isinstance(owner, b2.Synapses) else "id"
        return GennRenderer(variables, names, array, self.dt, index, self.sites.setdefault(owner.name, []))

    def every(self, obj) -> int:
        steps = float(obj.clock.dt) / self.dt
        if abs(steps - round(steps)) > 1e-9 or round(steps) < 1:
            raise Untranslatable(obj.name, f"clock dt {obj.clock.dt} is not a whole number of steps of {self.dt} s")
        return round(steps)

    # ------------------------------------------------------------------ neuron groups
    def population(self, group: b2.NeuronGroup) -> tuple[Population, list[Recording]]:
        if getattr(group, "_refractory", False):
            raise Untranslatable("refractory", f"{group.name}: refractoriness is not translated")
        own = [obj for obj in self.objects if _name(getattr(obj, "group", None)) == group.name
               or isinstance(obj, b2.StateMonitor) and obj.source.name == group.name]
        bits = {obj.event: 1 << k for k, obj in enumerate(o for o in own if isinstance(o, Thresholder))}
        names = {"i": "id", "N": "num_neurons"}
        params: dict = {}
        start, groups, thresholds, resets, recordings = [], [], [], [], []
        arrays: dict[str, str] = {}
        for obj in own:
            if isinstance(obj, b2.StateMonitor):
                rec = Recording(obj.name, group.name, list(obj.record_variables), self.every(obj))
                self._phase(obj, "start")
                lines = []
                for var in rec.variables:
                    arrays[f"b2_rec_{var}"] = "double*"
                    code = f"_recorded = {var}"  # (b2_recorded in GeNN)
                    variables = self.variables(group, code)
                    params |= constants(variables, names)
                    lines += _braced([*render_block(code, variables, self.renderer(group, variables, names), obj.name),
                                      f"b2_rec_{var}[(b2_step / {rec.every})*num_neurons + id] = b2_recorded;"], 0)
                start += [f"if (b2_step % {rec.every} == 0)", *_braced(lines, 0)]
                recordings.append(rec)
                continue
            if isinstance(obj, StateUpdater | Thresholder | Resetter):
                obj.update_abstract_code(run_namespace={})
            elif type(obj) is CodeRunner and obj.template == "stateupdate":  # run_regularly
                pass
            else:
                raise Untranslatable(obj.name, f"a {type(obj).__name__} has no GeNN translation")
            code = obj.abstract_code
            variables = self.variables(group, code)
            params |= constants(variables, names)
            deferred = isinstance(obj, Resetter)  # runs in the next GeNN step: Brian2's t is the last step's
            clock = _clock_names(variables, "b2_t_last" if deferred else "t")
            lines = render_block(code, variables, self.renderer(group, variables, names | clock), obj.name)
            if isinstance(obj, StateUpdater):
                self._phase(obj, "groups")
                groups += _braced(lines, 0)
            elif isinstance(obj, Thresholder):
                self._phase(obj, "thresholds")
                thresholds += _braced([*lines, f"if (b2_cond) {EVENTS} |= {bits[obj.event]}u;"], 0)
            elif isinstance(obj, Resetter):
                self._phase(obj, "resets")
                resets += [f"if ({EVENTS} & {bits[obj.event]}u)", *_braced(lines, 0)]
            else:
                self._phase(obj, "start")
                start += [f"if (b2_step % {self.every(obj)} == 0)", *_braced(lines, 0)]
        variables = {name: c_type(var.dtype) for name, var in group.variables.items()
                     if isinstance(var, ArrayVariable) and not name.startswith("_") and name in group.equations.names
                     and _name(var.owner) == group.name}
        variables[EVENTS] = "uint32_t"
        arrays |= {egp: "double*" for where in self.timed_arrays.values() for pop, egp in where if pop == group.name}
        sim = ["const int32_t b2_step = (int32_t)(t/dt + 0.5);",
               "// Brian2's step n-1, 'resets': reset and event code of the events flagged then",
               *(["const double b2_t_last = (b2_step - 1)*dt;"] if resets else []), *resets,
               f"{EVENTS} = 0;", f"if (t < {T_END})", "{",
               *_indent(["// 'start': recording, slot-start code", *start,
                         "// 'groups': the Euler step", *groups,
                         "// 'thresholds': every event's condition, before any reset", *thresholds]), "}"]
        params |= {T_END: 0.0} | ({SEED: 0} if self.sites.get(group.name) else {})
        return Population(group.name, len(group), "\n".join(sim), params, variables, arrays, bits), recordings

    def _phase(self, obj, phase: str) -> None:
        if obj.when not in PHASES[phase]:
            raise Untranslatable(f"when={obj.when!r}", f"{obj.name} runs in a slot the GeNN step order does not have "
                                 f"here (expected {phase})")

    # ------------------------------------------------------------------ synapses
    def projection(self, syn: b2.Synapses, populations: dict[str, Population]) -> Projection:
        source, target = syn.source, syn.target
        if isinstance(source, b2.Subgroup) or isinstance(target, b2.Subgroup):
            raise Untranslatable(syn.name, "synapses between subgroups are not translated")
        n_pre, n_post = len(source), len(target)
        i, j = np.asarray(syn.i[:]), np.asarray(syn.j[:])
        proj = Projection(syn.name, source.name, target.name, {}, {}, {})
        if len(i) != n_pre * n_post or np.any(i != np.repeat(np.arange(n_pre), n_post)) \
                or np.any(j != np.tile(np.arange(n_post), n_pre)):
            key = i.astype(np.int64) * n_post + j
            if np.any(np.diff(key) <= 0):
                raise Untranslatable(syn.name, "synapses must be created row by row (pre, then post index, each pair "
                                     "once) to be translated to GeNN's sparse connectivity")
            proj.connectivity, proj.pre_indices, proj.post_indices = "SPARSE", i, j
        own = {name: var for name, var in syn.variables.items()
               if isinstance(var, ArrayVariable) and _name(var.owner) == syn.name and name in syn.equations.names}
        for name, var in own.items():
            (proj.shared if var.scalar else proj.variables)[name] = c_type(var.dtype)
        names = {"i": "id_pre", "j": "id_post", "N_pre": "num_pre", "N_post": "num_post"}
        sides: dict[str, list[str]] = {"pre": [], "post": []}
        written: dict[str, set[str]] = {"pre": set(), "post": set()}
        read: set[str] = set()
        pathways = [obj for obj in self.objects if isinstance(obj, SynapticPathway) and obj.synapses.name == syn.name]
        for pathway in pathways:
            self._phase(pathway, "synapses")
            if np.any(np.asarray(pathway.delay[:]) != 0):
                raise Untranslatable("delay", f"{pathway.name}: delays are not translated")
            pathway.update_abstract_code(run_namespace={})
            code = pathway.abstract_code
            variables = self.variables(syn, code)
            proj.params |= constants(variables, names)
            renderer = self.renderer(syn, variables, names | _clock_names(variables, SYNAPSE_TIME))

            def writes(var: str, op: str, expr: str, variables=variables) -> str | None:
                side = _side(syn, var, variables)
                if side is None:
                    return None
                if op not in ("+=", "-="):
                    raise Untranslatable(f"{var} {op}", "a pathway may only add to (or subtract from) a neuron "
                                         "variable in GeNN (addToPost/addToPre)")
                written[side].add(var)
                return f"addTo{side.capitalize()}({expr if op == '+=' else f'-({expr})'});"

            lines = render_block(code, variables, renderer, pathway.name, writes)
            for name in sorted(variables):
                side = _side(syn, name, variables)
                if side and re.search(rf"\b{genn_names(name)}\b", "\n".join(lines)):
                    refs = proj.pre_refs if side == "pre" else proj.post_refs
                    refs[genn_names(name)] = variables[name].name
                    read.add(variables[name].name + "@" + side)
            bit = populations[(source if pathway.prepost == "pre" else target).name].bits[pathway.event]
            sides[pathway.prepost] += [f"if (b2_events_{pathway.prepost} & {bit}u)", *_braced(lines, 0)]
        for side in ("pre", "post"):
            if len(written[side]) > 1:
                raise Untranslatable(sorted(written[side])[1], f"{syn.name} writes more than one {side}synaptic "
                                     f"variable ({', '.join(sorted(written[side]))}); GeNN has one target per side")
            group = source if side == "pre" else target
            for var in written[side]:
                neuron_var = var.removesuffix(f"_{side}")
                if any(r.startswith(neuron_var + "@") for r in read):
                    raise Untranslatable(var, f"{syn.name} reads a neuron variable that a pathway writes in the "
                                         "same step (GeNN applies the writes one step later)")
                populations[group.name].add_input(neuron_var)
                setattr(proj, f"{side}_target", f"b2_in_{neuron_var}")
            if sides[side]:
                masks = [populations[group.name].bits[p.event] for p in pathways if p.prepost == side]
                setattr(proj, f"{side}_condition", f"(b2_events_{side} & {sum(set(masks))}u) != 0")
                setattr(proj, f"{side}_code", "\n".join(sides[side]))
                refs = proj.pre_refs if side == "pre" else proj.post_refs
                refs[f"b2_events_{side}"] = EVENTS
        if self.sites.get(syn.name):
            proj.params[SEED] = 0
        return proj


def _name(obj) -> str | None:
    """The Brian2 name of ``obj`` (contained objects hold their group through a weak proxy, so ``is`` fails)."""
    return getattr(obj, "name", None)


def _side(syn: b2.Synapses, name: str, variables: dict) -> str | None:
    """'pre' or 'post' if ``name`` is a neuron variable read through the synapses (``x_trace_pre``, or a
    variable Brian2 names for a subexpression, ``_n_error_total_post_layer1_q_error``), else None."""
    var = variables.get(name)
    if not isinstance(var, ArrayVariable) or isinstance(var.owner, b2.Clock):
        return None
    index, owner = syn.variables.indices.get(name), _name(var.owner)
    if index == "_presynaptic_idx" or (var.scalar and owner == syn.source.name):
        return "pre"
    if index == "_postsynaptic_idx" or (var.scalar and owner == syn.target.name):
        return "post"
    return None


def _clock_names(variables: dict, t: str) -> dict[str, str]:
    """Brian2 names of the clock's variables (``dt``, ``t``, and the copies subexpressions of other groups use)."""
    return {name: {"dt": "dt", "t": t}[var.name] for name, var in variables.items()
            if isinstance(getattr(var, "owner", None), b2.Clock) and var.name in ("dt", "t")}


def translate(network: b2.Network, sources: Iterable[Element] = ()) -> GennModel:
    """The GeNN model of ``network``; what cannot be translated raises ModelFileError naming the construct and,
    where an equation file holds it, the file and line (else Untranslatable)."""
    translator = _Translator(network)
    try:
        for obj in translator.objects:
            if not isinstance(obj, b2.NeuronGroup | b2.Synapses | b2.StateMonitor | CodeRunner):
                raise Untranslatable(obj.name, f"a {type(obj).__name__} has no GeNN translation")
        populations, recordings = {}, []
        for group in [obj for obj in translator.objects if isinstance(obj, b2.NeuronGroup)]:
            populations[group.name], recorded = translator.population(group)
            recordings += recorded
        projections = [translator.projection(syn, populations)
                       for syn in translator.objects if isinstance(syn, b2.Synapses)]
    except Untranslatable as err:
        raise _located(err, sources) from err
    return GennModel(translator.dt, list(populations.values()), projections, recordings, translator.timed_arrays)


def _located(err: Untranslatable, sources: Iterable[Element]) -> Exception:
    """The error at the first equation-file line that holds its construct (the construct's words, in order)."""
    words = re.findall(r"\w+", err.construct)
    pattern = re.compile(r"\b" + r"\W+".join(map(re.escape, words)) + r"\b") if words else None
    for element in sources:
        for section in element.eqs.sections.values():
            for line in section.lines:
                if pattern and pattern.search(line.code):
                    return ModelFileError(element.eqs.path, f"GeNN backend: cannot translate {err}", line.number)
    return err
