"""Model elements: an ``.eqs`` file plus its parameter table, checked and composed into Brian2 groups.

An *element* is one piece of the model (soma, apical compartment, forward synapse, ...). A Brian2
group is composed from several elements: their equations are summed, their code sections joined.
Every name an element uses must be one of: its own variables, its parameters (table), an
``external`` declared in the table (provided by another element of the same group or by the
network builder), a ``<name>_pre``/``<name>_post`` variable (synapses), or a Brian2 built-in.

A *learning rule* is a named expression (``## rule db_sleep``) that the element's statements use by name
(``b += db_sleep``); a variant of the element (its Loihi precision) takes it from there (``## rules
SOURCE``, :mod:`biograd.models.eqsfile`) instead of repeating it, and :func:`check_variant_rules` refuses a
variant that does not. With the rule it takes the parameters of SOURCE's table that the rule reads
(eta_sleep, lambda_sleep, scale_sleep; eta): one definition, in SOURCE's table (:func:`_taken_parameters`).
The loader writes each rule into the statements that use it (``b += <expression>``,
parenthesised inside a longer expression), so Brian2 gets plain statements, as if written out.
"""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass, field
from pathlib import Path

import brian2 as b2
import numpy as np
from brian2.core.namespace import DEFAULT_CONSTANTS, DEFAULT_FUNCTIONS, DEFAULT_UNITS
from brian2.devices.device import reset_device
from brian2.equations.equations import EquationError, SingleEquation
from brian2.units.fundamentalunits import DIMENSIONLESS
from brian2.utils.stringtools import get_identifiers, word_substitute

import biograd.equations
from biograd.models.eqsfile import EqsFile, Line, Section, read_eqs, rule_references
from biograd.models.errors import ModelFileError
from biograd.models.params import RESERVED_NAMES, ParameterTable, read_table_lines
from biograd.models.units import parse_unit

EQUATIONS_DIR = Path(biograd.equations.__file__).resolve().parent  # the repository's equations/ or an installed copy

BUILTINS = (set(DEFAULT_FUNCTIONS) | set(DEFAULT_CONSTANTS) | set(DEFAULT_UNITS)
             | {"t", "dt", "i", "N", "t_in_timesteps", "True", "False", "and", "or", "not", "int", "float"})
SYNAPSE_BUILTINS = {"j", "N_incoming", "N_outgoing", "lastupdate", "delay", "N_pre", "N_post"}
_CONDITION_SECTIONS = {"threshold", "event"}
_PATHWAYS = ("on_pre", "on_post")
_APPLIES = re.compile(r"^(?P<weight>[A-Za-z_][A-Za-z0-9_]*)\s*\+=\s*(?P<rule>[A-Za-z_][A-Za-z0-9_]*)$")  # b += db_sleep


def equations_dir() -> Path:
    """The folder of the model's equation files (``equations/`` at the repository top, or the installed package's)."""
    return EQUATIONS_DIR


@dataclass(frozen=True)
class Rule:
    """A learning rule (module docstring): ``name`` stands for ``expression`` (as this element reads it) in the
    statements at ``uses`` (pathway, line); defined in ``path`` at ``line``, where a statement ``weight += name``
    applies it. A rule taken from another element names it (``source``) and the names it reads otherwise
    (``substitutions``); ``path`` and ``line`` stay the source's (the one definition), ``here`` is its line here."""

    name: str
    expression: str
    weight: str | None
    path: Path
    line: int
    here: int
    uses: tuple[tuple[str, int], ...]
    source: str | None = None
    substitutions: tuple[tuple[str, str], ...] = ()


@dataclass
class Element:
    """One checked element: parsed file (each rule, its own or taken, in a ``rule`` section and written out in the
    statements that use it), table, Brian2 equations, parameter quantities and learning rules."""

    name: str
    kind: str
    eqs: EqsFile
    table: ParameterTable
    table_path: Path
    equations: b2.Equations
    values: dict[str, b2.Quantity]
    rules: dict[str, Rule] = field(default_factory=dict)
    parameter_paths: dict[str, Path] = field(default_factory=dict)  # a taken parameter -> the table defining it

    def table_path_of(self, name: str) -> Path:
        """The table that defines the parameter ``name`` (a taken rule's parameter: its source's)."""
        return self.parameter_paths.get(name, self.table_path)

    @property
    def variables(self) -> set[str]:
        return set(self.equations.names)

    @property
    def namespace(self) -> dict[str, b2.Quantity]:
        """Parameters that are constants of the namespace (not initial values of model variables)."""
        return {k: v for k, v in self.values.items() if k not in self.variables}

    @property
    def initial_values(self) -> dict[str, b2.Quantity]:
        """Parameters that give the initial value of a declared variable (e.g. a learning rate)."""
        return {k: v for k, v in self.values.items() if k in self.variables}

    def code_sections(self) -> list[Section]:
        """The sections of code Brian2 gets (the rules are written out in them)."""
        return [s for s in self.eqs.sections.values() if s.kind not in ("model", "rule")]

    def identifiers(self) -> dict[str, int]:
        """Every name used in the element's code, mapped to the first line that uses it."""
        found: dict[str, int] = {}
        for section in self.eqs.sections.values():
            for line in section.lines:
                code = _rhs(line.code) if section.kind == "model" else line.code
                for name in sorted(get_identifiers(code)):
                    found.setdefault(name, line.number)
        return found


def _rhs(model_line: str) -> str:
    """The expression of an equation line (``dx/dt = EXPR : unit`` -> ``EXPR``; '' for parameters)."""
    definition = model_line.split(":", 1)[0]
    return definition.split("=", 1)[1] if "=" in definition else ""


def _model_equations(eqs: EqsFile) -> b2.Equations:
    section = eqs.section("model")
    try:
        return b2.Equations(section.code)
    except (EquationError, ValueError, SyntaxError) as err:
        for line in section.lines:  # locate the offending line
            if not line.code:
                continue
            try:
                b2.Equations(line.code)
            except (EquationError, ValueError, SyntaxError) as line_err:
                raise ModelFileError(eqs.path, f"invalid Brian2 equation {line.code!r}: {_first_line(line_err)}",
                                     line.number) from err
        raise ModelFileError(eqs.path, f"invalid Brian2 equations: {_first_line(err)}",
                             section.header_line) from err


def _first_line(err: Exception) -> str:
    text = str(err).strip()
    return " ".join(part.strip() for part in text.splitlines() if part.strip())


def load_element(name_or_path: str | Path, directory: Path | None = None) -> Element:
    """Load ``<name>.eqs`` and ``<name>.yaml`` and run every static check on them."""
    path = Path(name_or_path)
    if path.suffix != ".eqs":
        path = (directory or EQUATIONS_DIR) / f"{name_or_path}.eqs"
    if not path.exists():
        raise ModelFileError(path, "equation file not found")
    eqs, rules = _rules(read_eqs(path))
    table_path = path.with_suffix(".yaml")
    if not table_path.exists():
        raise ModelFileError(table_path, f"parameter table for {path.name} not found")
    table, lines = read_table_lines(table_path)
    if table.element != path.stem:
        raise ModelFileError(table_path, f"element: {table.element!r} does not match the file name {path.stem!r}")
    table, parameter_paths = _taken_parameters(table, table_path, lines, rules)
    equations = _model_equations(eqs)
    values = {k: p.quantity() for k, p in table.parameters.items()}
    element = Element(path.stem, table.kind, eqs, table, table_path, equations, values, rules, parameter_paths)
    _check_names(element)
    return element


def _taken_parameters(table: ParameterTable, table_path: Path, lines: dict[tuple, int],
                      rules: dict[str, Rule]) -> tuple[ParameterTable, dict[str, Path]]:
    """``table`` with the parameters that its element's taken rules read from their source's table (as the rule
    reads them here: a name substituted is not taken), and the table each comes from. The element's table does
    not repeat them; a repetition of the same value (a run's copy of the files from before) is read as the
    source's, another value is a ModelFileError at its line naming the source's line."""
    taken, paths = {}, {}
    for rule in rules.values():
        if rule.source is None:
            continue
        source_path = rule.path.with_suffix(".yaml")
        source, source_lines = read_table_lines(source_path)
        for name in sorted(get_identifiers(rule.expression) & set(source.parameters)):
            param, own = source.parameters[name], table.parameters.get(name)
            if own is not None and not _equal(own.quantity(), param.quantity()):
                raise ModelFileError(table_path, f"parameter {name!r} = {own.value} here, {param.value} in "
                                     f"{source_path.name}:{source_lines.get(('parameters', name))}, whose value the "
                                     f"rule {rule.name} taken from {rule.source} reads: remove it here (one "
                                     f"definition, in {source_path.name})", lines.get(("parameters", name)))
            taken[name], paths[name] = param, source_path
    parameters = taken | {k: v for k, v in table.parameters.items() if k not in taken}  # (the taken first)
    return (table.model_copy(update={"parameters": parameters}) if paths else table), paths


def _rule_definitions(eqs: EqsFile) -> dict[str, tuple[str, Line]]:
    """The rules ``eqs`` defines (``## rule NAME``): name -> (expression, its line)."""
    definitions = {}
    for name, section in eqs.named("rule").items():
        lines = [line for line in section.lines if line.code]
        if len(lines) != 1:
            raise ModelFileError(eqs.path, f"'## rule {name}' holds one expression (the rule), not {len(lines)} lines",
                                 section.header_line)
        definitions[name] = (lines[0].code, lines[0])
    return definitions


def _applied(eqs: EqsFile, name: str) -> str | None:
    """The variable that a statement ``VARIABLE += name`` of ``eqs`` changes by the rule ``name``."""
    return next((match["weight"] for section in eqs.sections.values() for line in section.lines
                 if (match := _APPLIES.match(line.code)) and match["rule"] == name), None)


def _rules(eqs: EqsFile) -> tuple[EqsFile, dict[str, Rule]]:
    """``eqs`` with its rules (``## rule NAME``, and those taken by ``## rules SOURCE`` from SOURCE in the same
    folder, names substituted) written into the statements that use them, and those rules. A taken rule must be
    one SOURCE defines; every name substituted must occur in it; every rule must be used."""
    definitions = {name: (code, line, line.number, eqs.path, None, {}) for name, (code, line)
                   in _rule_definitions(eqs).items()}
    comments = {name: line.comment for name, (_, line, *_) in definitions.items()}
    sources: dict[str, EqsFile] = {}
    for ref in rule_references(eqs):
        path = eqs.path.parent / f"{ref.source}.eqs"
        if not path.exists():
            raise ModelFileError(eqs.path, f"'## rules {ref.source}': no {path.name} in {path.parent}",
                                 eqs.section("rules", ref.source).header_line)
        source = sources.setdefault(ref.source, read_eqs(path))
        if ref.name not in _rule_definitions(source):
            raise ModelFileError(eqs.path, f"{ref.name!r} is not a rule of {path.name} (a '## rule {ref.name}' "
                                 "section)", ref.line.number)
        if ref.name in definitions:
            raise ModelFileError(eqs.path, f"rule {ref.name!r} is defined twice here", ref.line.number)
        code, line = _rule_definitions(source)[ref.name]
        absent = sorted(set(ref.substitutions) - set(get_identifiers(code)))
        if absent:
            raise ModelFileError(eqs.path, f"{', '.join(absent)} not in the rule {ref.name} of {path.name}:"
                                 f"{line.number} ({code})", ref.line.number)
        definitions[ref.name] = (word_substitute(code, ref.substitutions), line, ref.line.number, path, ref.source,
                                 ref.substitutions)
        comments[ref.name] = ref.line.comment or line.comment
    if not definitions:
        return eqs, {}
    uses: dict[str, list[tuple[str, int]]] = {name: [] for name in definitions}
    sections = {}
    for key, section in eqs.sections.items():
        if section.kind in ("rule", "rules"):  # the rules, each in a '## rule NAME' section, as this element reads it
            for name in [key[1]] if section.kind == "rule" else [ref.name for ref in rule_references(eqs)
                                                                if ref.source == section.name]:
                code, _, here = definitions[name][:3]
                sections[("rule", name)] = Section("rule", name, here, [Line(here, code, comments[name])])
            continue
        lines = section.lines
        if section.kind != "model":
            lines = [dataclasses.replace(line, code=_written_out(line.code, definitions)) for line in lines]
            for line in section.lines:
                for name in get_identifiers(line.code) & set(definitions):
                    uses[name].append((f"{section.kind} {section.name}" if section.name else section.kind,
                                       line.number))
        sections[key] = dataclasses.replace(section, lines=lines)
    rules = {}
    for name, (code, line, here, path, source, substitutions) in definitions.items():
        if not uses[name]:
            raise ModelFileError(eqs.path, f"rule {name!r} is used by no statement (a statement that writes it out "
                                 "instead diverges from it)", here)
        weight = _applied(sources[source] if source else eqs, name)
        rules[name] = Rule(name, code, weight, path, line.number, here, tuple(uses[name]), source,
                           tuple(substitutions.items()))
    return dataclasses.replace(eqs, sections=sections), rules


def _written_out(code: str, definitions: dict) -> str:
    """The statement ``code`` with each rule it names replaced by the rule's expression (no parentheses where the
    rule is the whole right-hand side: ``b += db_sleep``)."""
    match = re.match(r"^(?P<lhs>[A-Za-z_][A-Za-z0-9_]*\s*[-+*/]?=\s*)(?P<rhs>[A-Za-z_][A-Za-z0-9_]*)$", code)
    if match and match["rhs"] in definitions:
        return match["lhs"] + definitions[match["rhs"]][0]
    return word_substitute(code, {name: f"({d[0]})" for name, d in definitions.items()})


def check_variant_rules(original: Element, variant: Element) -> None:
    """``variant`` (``original`` at another precision) takes each learning rule of ``original`` from it and runs it
    on the same events; else a ModelFileError at the variant's line that changes the rule's variable on its own."""
    for name, rule in original.rules.items():
        taken = variant.rules.get(name)
        if taken is None or taken.source != original.name:
            assigns = re.compile(rf"^{rule.weight}\s*[-+*/]?=")
            line = next((number for section in variant.eqs.sections.values() if section.kind in _PATHWAYS
                         for number in (line.number for line in section.lines if assigns.match(line.code))),
                        variant.eqs.section("model").header_line)
            raise ModelFileError(variant.eqs.path, f"changes {rule.weight} without the rule {name} of "
                                 f"{rule.path.name}:{rule.line} ({rule.weight} += {name}), so the two can diverge: "
                                 f"add '## rules {original.name}' with the line '{name}' (': old -> new' for the "
                                 "names it reads otherwise here) and use it", line)
        events = sorted({pathway for pathway, _ in rule.uses})
        if sorted({pathway for pathway, _ in taken.uses}) != events:
            raise ModelFileError(variant.eqs.path, f"the rule {name} runs on {', '.join(events)} in "
                                 f"{original.eqs.path.name}, here on "
                                 f"{', '.join(sorted({p for p, _ in taken.uses}))}", taken.uses[0][1])


def check_variant_parameters(original: Element, variant: Element) -> None:
    """A parameter that ``variant`` (``original`` at another precision) repeats from ``original``'s table has its
    value (a config's override of the original reaches the variant too, so the two tables must start equal);
    else a ModelFileError at the variant's line, naming the original's."""
    for name, own in variant.table.parameters.items():
        source = original.table.parameters.get(name)
        if source is not None and not _equal(own.quantity(), source.quantity()):
            line = read_table_lines(variant.table_path)[1].get(("parameters", name))
            source_line = read_table_lines(original.table_path)[1].get(("parameters", name))
            raise ModelFileError(variant.table_path, f"parameter {name!r} = {own.value} here, {source.value} in "
                                 f"{original.table_path.name}:{source_line}, the element this one replaces: give "
                                 "both the same value", line)


def _check_names(el: Element) -> None:
    model = el.eqs.section("model")
    for line in model.lines:
        if line.code and not line.comment:
            raise ModelFileError(el.eqs.path, "every model line needs a trailing comment saying what it is",
                                 line.number)
    lines_of = {}
    for line in model.lines:
        for name in el.equations.names:
            if line.code.startswith((name, f"d{name}/dt")):
                lines_of.setdefault(name, line.number)
    for name in el.equations.names:
        if name in RESERVED_NAMES:
            raise ModelFileError(el.eqs.path, f"variable name {name!r} is reserved by Brian2", lines_of.get(name))
    for name, param in el.values.items():
        if name in el.variables:
            unit = el.equations[name].dim
            if b2.get_dimensions(param) is not unit:
                raise ModelFileError(el.table_path, f"parameter {name!r} = {param} has other units than the "
                                     f"variable it initialises ({b2.get_unit(unit)})")
    if el.kind == "neuron" and any(s.kind in ("on_pre", "on_post") for s in el.eqs.sections.values()):
        raise ModelFileError(el.eqs.path, "on_pre/on_post sections belong to synapse elements (kind: synapse)")
    if el.kind == "synapse" and any(s.kind in ("threshold", "reset", "event", "on_event", "slot_start")
                                    for s in el.eqs.sections.values()):
        raise ModelFileError(el.eqs.path, "threshold/reset/event/slot_start sections belong to neuron elements")
    used = el.identifiers()
    known = el.variables | set(el.values) | set(el.table.external) | BUILTINS
    if el.kind == "synapse":
        known |= SYNAPSE_BUILTINS
    for name, line in used.items():
        if name in known or name.startswith("xi"):
            continue
        raise ModelFileError(el.eqs.path, f"undefined name {name!r}: declare it in the model, the parameter "
                             f"table ({el.table_path.name}: parameters) or as an external", line)
    for name in el.values:
        if name not in used:
            raise ModelFileError(el.table_path, f"parameter {name!r} is not used by {el.eqs.path.name}")
    for name in el.table.external:
        if name not in used:
            raise ModelFileError(el.table_path, f"external {name!r} is not used by {el.eqs.path.name}")


# ---------------------------------------------------------------------------------------------
# Composition into Brian2 group arguments
# ---------------------------------------------------------------------------------------------

@dataclass
class GroupSpec:
    """Everything needed to create one Brian2 group from a list of elements."""

    elements: list[Element]
    equations: b2.Equations
    namespace: dict
    initial_values: dict[str, b2.Quantity]
    threshold: str | None = None
    reset: str | None = None
    events: dict[str, str] = field(default_factory=dict)
    on_event: dict[str, str] = field(default_factory=dict)
    slot_start: str | None = None
    on_pre: dict[str, str] = field(default_factory=dict)
    on_post: dict[str, str] = field(default_factory=dict)
    pathway_events: dict[str, str] = field(default_factory=dict)

    def neuron_kwargs(self) -> dict:
        kwargs = {"model": self.equations, "namespace": self.namespace, "method": "euler",
                  "threshold": self.threshold, "reset": self.reset}
        if self.events:
            kwargs["events"] = self.events
        return kwargs

    def unshared(self, names) -> GroupSpec:
        """The same group with its shared constants among ``names`` made per-neuron (per-synapse) constants:
        ``eta : 1 (shared, constant)`` becomes ``eta : 1 (constant)``, so that the networks of an ensemble,
        side by side in one group, can each have their own value."""
        names = set(names)
        rewritten = [SingleEquation(eq.type, eq.varname, eq.dim, var_type=eq.var_type, expr=eq.expr,
                                    flags=[flag for flag in eq.flags if flag != "shared"])
                     if eq.varname in names and {"shared", "constant"} <= set(eq.flags) else eq
                     for eq in self.equations.values()]
        return dataclasses.replace(self, equations=b2.Equations(rewritten))

    def synapse_kwargs(self) -> dict:
        return {"model": self.equations, "namespace": self.namespace, "method": "euler",
                "on_pre": self.on_pre or None, "on_post": self.on_post or None,
                "on_event": self.pathway_events or None}


def pathway_name(direction: str, event: str) -> str:
    """Brian2 pathway name for code run on ``event`` of the pre/post group: 'pre', 'post', 'pre_err_pos'."""
    return direction if event == "spike" else f"{direction}_{event}"


def _join(*codes: str | None) -> str | None:
    parts = [c for c in codes if c]
    return "\n".join(parts) if parts else None


def compose(elements: list[Element], provided: dict | None = None, declared: set[str] = frozenset()) -> GroupSpec:
    """Combine elements into one group's arguments; ``provided`` holds what the builder supplies.

    Model equations are summed; threshold conditions are joined with ``or``; resets, slot-start
    code and the code of one event or pathway are concatenated in element order.

    Raises ModelFileError when two elements define the same thing differently, or when an external
    name is neither defined by another element of the group, nor provided, nor in ``declared``
    (variables the caller adds to the group's equations itself).
    """
    provided = dict(provided or {})
    kinds = {el.kind for el in elements}
    if len(kinds) != 1:
        raise ModelFileError(elements[0].eqs.path, f"cannot compose neuron and synapse elements: "
                             f"{[el.name for el in elements]}")
    kind = kinds.pop()
    equations = b2.Equations("")
    namespace: dict = {}
    initial: dict[str, b2.Quantity] = {}
    owner: dict[str, str] = {}
    spec = GroupSpec(elements, equations, namespace, initial)
    for el in elements:
        for name in el.variables:
            if name in owner:
                raise ModelFileError(el.eqs.path, f"variable {name!r} is also defined by element {owner[name]!r}")
            owner[name] = el.name
        spec.equations = spec.equations + el.equations
        for name, value in el.namespace.items():
            if name in namespace and not _equal(namespace[name], value):
                raise ModelFileError(el.table_path, f"parameter {name!r} = {value} conflicts with "
                                     f"{namespace[name]} from another element of the same group")
            namespace[name] = value
        initial.update(el.initial_values)
        for section in el.code_sections():
            code = section.code
            if section.kind == "threshold":  # a neuron spikes if any element's condition holds
                spec.threshold = f"({code})" if spec.threshold is None else f"{spec.threshold} or ({code})"
            elif section.kind == "reset":
                spec.reset = _join(spec.reset, code)
            elif section.kind == "slot_start":
                spec.slot_start = _join(spec.slot_start, code)
            elif section.kind == "event":
                if section.name in spec.events:
                    raise ModelFileError(el.eqs.path, f"event {section.name!r} defined twice", section.header_line)
                spec.events[section.name] = code
            elif section.kind == "on_event":
                spec.on_event[section.name] = _join(spec.on_event.get(section.name), code)
            else:
                direction = "pre" if section.kind == "on_pre" else "post"
                pathway = pathway_name(direction, section.name)
                target = spec.on_pre if direction == "pre" else spec.on_post
                target[pathway] = _join(target.get(pathway), code)
                spec.pathway_events[pathway] = section.name
    for el in elements:
        for name, ext in el.table.external.items():
            if name in owner or name in provided or name in declared:
                continue
            if kind == "synapse" and (name.endswith("_pre") or name.endswith("_post")):
                continue
            raise ModelFileError(el.table_path, f"external {name!r} ({ext.description}) is neither defined by "
                                 f"another element of this group ({', '.join(e.name for e in elements)}) "
                                 "nor provided by the network builder")
    namespace.update({k: v for k, v in provided.items() if k not in owner})
    return spec


def _equal(a, b) -> bool:
    try:
        return bool(a == b)
    except Exception:  # noqa: BLE001 - incomparable values (e.g. TimedArrays) are different
        return a is b


# ---------------------------------------------------------------------------------------------
# Unit check: build the element alone, with dummies for its externals, on the numpy target
# ---------------------------------------------------------------------------------------------

def check_units(el: Element) -> None:
    """Let Brian2 check every equation and statement of ``el`` for consistent units.

    Externals become dummy variables (or TimedArrays for functions) of their declared unit; a
    synapse element gets dummy pre/post groups holding its ``*_pre``/``*_post`` variables.
    """
    dummies, declared = {}, {"": [], "pre": [], "post": []}
    for name, ext in el.table.external.items():
        unit = parse_unit(ext.unit)
        unit_text = repr(b2.get_unit(b2.get_dimensions(unit))) if b2.get_dimensions(unit) is not DIMENSIONLESS \
            else "1"
        if ext.kind == "function":
            shape = (2,) if ext.args == ["t"] else (2, 2)
            dummies[name] = b2.TimedArray(np.zeros(shape) * unit, dt=1 * b2.ms)
            continue
        side = "pre" if el.kind == "synapse" and name.endswith("_pre") else \
            "post" if el.kind == "synapse" and name.endswith("_post") else ""
        base = name.removesuffix(f"_{side}") if side else name
        declared[side].append(f"{base} : {unit_text}")
    spec = compose([el], provided=dummies, declared=set(el.table.external))
    model = spec.equations + b2.Equations("\n".join(declared[""]))
    namespace = dict(spec.namespace)
    b2.set_device("runtime")  # a numpy network, never part of an active standalone project (a sweep worker's)
    try:
        _run_check(el, spec, model, namespace, declared)
    finally:
        reset_device()  # the device before, with its build options


def _run_check(el: Element, spec: GroupSpec, model: b2.Equations, namespace: dict, declared: dict) -> None:
    with _brian_errors(el):
        if el.kind == "neuron":
            kwargs = spec.neuron_kwargs() | {"model": model, "namespace": namespace}
            if kwargs["threshold"] is None and kwargs["reset"]:  # a reset-only element: any spike resets
                kwargs["threshold"] = "False"
            if kwargs["threshold"] is not None and not kwargs["reset"]:
                kwargs["reset"] = ""  # a threshold-only element resets nothing (said, so that Brian2 does not warn)
            other_events = {e: "False" for e in spec.on_event if e != "spike" and e not in spec.events}
            if other_events:  # code on an event that another element of the group defines
                kwargs["events"] = spec.events | other_events
            group = b2.NeuronGroup(2, **kwargs, codeobj_class=b2.NumpyCodeObject, name="check_units_group")
            objects = [group]
            for event, code in spec.on_event.items():
                group.run_on_event(event, code)
            if spec.slot_start:
                objects.append(group.run_regularly(spec.slot_start, dt=10 * b2.ms, when="start"))
        else:
            pre_events = {spec.pathway_events[p]: "False" for p in spec.on_pre if p != "pre"}
            post_events = {spec.pathway_events[p]: "False" for p in spec.on_post if p != "post"}
            pre = b2.NeuronGroup(2, "\n".join(declared["pre"]) or "", threshold="False", reset="",
                                 events=pre_events or None, codeobj_class=b2.NumpyCodeObject,
                                 name="check_units_pre")
            post = b2.NeuronGroup(2, "\n".join(declared["post"]) or "", threshold="False", reset="",
                                  events=post_events or None, codeobj_class=b2.NumpyCodeObject,
                                  name="check_units_post")
            syn = b2.Synapses(pre, post, **(spec.synapse_kwargs() | {"model": model, "namespace": namespace}),
                              codeobj_class=b2.NumpyCodeObject, name="check_units_synapses")
            syn.connect()
            objects = [pre, post, syn]
        b2.Network(*objects).run(0 * b2.ms, namespace={})


class _brian_errors:
    """Context manager turning Brian2's unit and syntax errors into ModelFileError for ``el``."""

    def __init__(self, el: Element):
        self.el = el

    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc, tb):
        if not isinstance(exc, Exception) or isinstance(exc, ModelFileError):  # Ctrl-C and stop signals pass
            return False
        root = exc
        while root.__cause__ is not None or (root.__context__ is not None and not root.__suppress_context__):
            root = root.__cause__ or root.__context__
        message = _first_line(root)
        line = _line_mentioning(self.el, message)
        raise ModelFileError(self.el.eqs.path, f"Brian2 rejects the element: {message}", line) from exc


def _line_mentioning(el: Element, message: str) -> int | None:
    """Best guess of the source line an error message is about: the first code line quoted in it."""
    for section in el.eqs.sections.values():
        for line in section.lines:
            if line.code and (line.code in message or line.code.replace(" ", "") in message.replace(" ", "")):
                return line.number
    identifiers = el.identifiers()
    for word in sorted(get_identifiers(message), key=len, reverse=True):
        if word in identifiers and word in el.variables:
            return identifiers[word]
    return None
