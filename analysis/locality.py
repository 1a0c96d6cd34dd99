"""Locality audit of the learning rules, read from the equation files (``equations/*.eqs``).

Every non-empty code line of an element is one *statement* (one row of the audit). A *learning
rule* is a statement in a synapse element's ``on_pre``/``on_post`` sections, or any statement of a
neuron element (model equations, threshold, event conditions, reset, on_event, slot_start). Synapse
model lines are audited too, so clock-driven synaptic dynamics cannot hide from the audit.

Allowed names (each used name gets a category; a statement is local when all its names are allowed
and it writes in no forbidden direction):

* synapse statement: its own variables (``synapse_variable``: the element's variables, plus
  externals ``provided_by`` another *synapse* element that defines them, e.g. ``w`` for
  transpose_relay), ``<var>_pre`` / ``<var>_post`` (``pre_variable``/``post_variable``: its pre/post
  neuron's state), ``parameter`` (constants of its table), ``model_constant`` (a non-function
  external provided by the network builder: a namespace constant, fixed during a run), ``builtin``
  (Brian2 functions such as abs/int/rand/clip, units, t, dt, i, j, N, ...), and the triggering
  event (the section's event name, implicit). Forbidden: an external of kind ``function``
  (``global_function``: a TimedArray, i.e. a global signal) and any other name (``unknown``).
* direction (weight transport): an ``on_post`` statement (triggered by the postsynaptic neuron's
  event) that WRITES a ``*_pre`` variable sends information backwards through the forward synapse
  and is non-local; so is a ``(summed)`` model variable ``*_pre``. ``on_pre`` writing ``*_pre`` or
  ``*_post`` and ``on_post`` writing ``*_post`` are fine. Writes are read from the statement's LHS
  (``x = ...``, ``x += ...``, ``x -= ...``, ``x *= ...``, ``x /= ...``) or the model line's variable.
* neuron statement: ``own_variable`` (the element's variables), ``group_variable`` (externals
  provided by other neuron elements of its group that define them), ``parameter``,
  ``model_constant``, ``builtin``, and the external functions that are inputs or the shared clock,
  classified and reported rather than failed: ``schedule`` (slot_kind), ``input`` (stimulus,
  event_counts), ``teacher`` (target; an input of the output layer by design). Any other function
  is a ``global_function`` (non-local), any other name ``unknown`` (non-local).

Trigger of a statement: ``event-driven`` (on_pre/on_post/on_event with their event, reset with the
event ``spike``), ``clock-driven`` (model equations, slot_start run_regularly code, threshold and
event conditions, evaluated every step) or ``none`` (a model parameter declaration ``x : unit``,
which has no dynamics of its own).

An element may declare itself non-local with a header line containing ``locality: non-local``
(transpose_relay.eqs). The audit detects violations independently of that line; the declaration
only sets ``declared_exception`` on the non-local rows. :func:`violations` returns the non-local
rows that are not declared.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass
from pathlib import Path

import brian2 as b2
import pandas as pd
from brian2.equations.equations import PARAMETER
from brian2.utils.stringtools import get_identifiers

from biograd.models.elements import BUILTINS, SYNAPSE_BUILTINS, Element, equations_dir, load_element
from biograd.models.errors import ModelFileError

#: external functions a neuron may read, and their role
FUNCTION_ROLES = {"slot_kind": "schedule", "stimulus": "input", "event_counts": "input", "target": "teacher"}
ALLOWED = {
    "synapse": {"synapse_variable", "pre_variable", "post_variable", "parameter", "model_constant", "builtin"},
    "neuron": {"own_variable", "group_variable", "parameter", "model_constant", "builtin",
               *FUNCTION_ROLES.values()},
}
COLUMNS = ["element", "kind", "section", "event", "line", "statement", "trigger", "names_used", "category",
           "writes", "local", "reason", "declared_exception"]
_DECLARATION = re.compile(r"locality:\s*non-local", re.IGNORECASE)
_ASSIGNMENT = re.compile(r"^\s*(?P<lhs>[A-Za-z_]\w*)\s*(?P<op>[-+*/]?=)(?!=)")
_EVENT_DRIVEN = {"on_pre", "on_post", "on_event", "reset", "rule"}  # a rule: what the statements using it apply


@dataclass
class Finding:
    """The audit of one statement."""

    element: str
    kind: str
    section: str
    event: str | None
    line: int
    statement: str
    trigger: str
    names_used: tuple[str, ...]
    category: dict[str, str]
    writes: tuple[str, ...]
    local: bool
    reason: str
    declared_exception: bool = False


def declares_nonlocal(el: Element) -> bool:
    """Whether the element's header declares it a non-local exception (``locality: non-local``)."""
    return any(_DECLARATION.search(line) for line in el.eqs.header.splitlines())


def _defined_by(provided_by: str, name: str, kind: str, directory: Path) -> bool:
    """Whether every element named in ``provided_by`` ('a or b') is a ``kind`` element defining ``name``."""
    providers = [p.strip() for p in provided_by.split(" or ")]
    for provider in providers:
        if not (directory / f"{provider}.eqs").exists():
            return False
        other = load_element(provider, directory)
        if other.kind != kind or name not in other.variables:
            return False
    return bool(providers)


def _categorise(el: Element, name: str) -> str:
    ext = el.table.external.get(name)
    if ext is not None and ext.kind == "function":
        return FUNCTION_ROLES.get(name, "global_function") if el.kind == "neuron" else "global_function"
    if name in el.variables:
        return "synapse_variable" if el.kind == "synapse" else "own_variable"
    if name in el.values:
        return "parameter"
    if ext is not None:
        if el.kind == "synapse" and name.endswith("_pre"):
            return "pre_variable"
        if el.kind == "synapse" and name.endswith("_post"):
            return "post_variable"
        if ext.provided_by == "model":
            return "model_constant"
        if _defined_by(ext.provided_by, name, el.kind, el.eqs.path.parent):
            return "synapse_variable" if el.kind == "synapse" else "group_variable"
        return "unknown"
    if name in BUILTINS or name.startswith("xi") or (el.kind == "synapse" and name in SYNAPSE_BUILTINS):
        return "builtin"
    return "unknown"


def _parse(section: str, code: str) -> tuple[str, tuple[str, ...], set[str]]:
    """(trigger, written names, names used) of one code line of ``section``."""
    if section == "model":
        eq = next(iter(b2.Equations(code).values()))
        used = get_identifiers(str(eq.expr)) if eq.expr is not None else set()
        trigger = "none" if eq.type == PARAMETER else "clock-driven"
        return trigger, (eq.varname,), used | {eq.varname}
    used = get_identifiers(code)
    if section in ("threshold", "event"):
        return "clock-driven", (), used
    match = _ASSIGNMENT.match(code)
    writes = (match["lhs"],) if match else ()
    return ("event-driven" if section in _EVENT_DRIVEN else "clock-driven"), writes, used


def audit_element(el: Element) -> list[Finding]:
    """One Finding per statement (non-empty code line) of ``el``, in file order."""
    declared = declares_nonlocal(el)
    findings = []
    for section in el.eqs.sections.values():
        event = "spike" if section.kind == "reset" else section.name
        for line in section.lines:
            if not line.code:
                continue
            try:
                trigger, writes, used = _parse(section.kind, line.code)
            except (ValueError, SyntaxError) as err:
                raise ModelFileError(el.eqs.path, f"cannot parse statement: {err}", line.number) from err
            category = {name: _categorise(el, name) for name in sorted(used)}
            problems = [f"{name!r} is {cat}" for name, cat in category.items() if cat not in ALLOWED[el.kind]]
            backwards = [n for n in writes if el.kind == "synapse" and n.endswith("_pre") and (
                section.kind == "on_post" or (section.kind == "model" and "summed" in el.equations[n].flags))]
            if backwards:
                problems.append(f"writes presynaptic {', '.join(backwards)} from {section.kind} "
                                "(weight transport: information flows backwards through the synapse)")
            roles = sorted({c for c in category.values() if c in FUNCTION_ROLES.values()})
            reason = "; ".join(problems) if problems else "local" + (f" (reads {', '.join(roles)} signal)"
                                                                     if roles else "")
            findings.append(Finding(
                el.name, el.kind, section.kind, event, line.number, line.code, trigger, tuple(sorted(used)),
                category, writes, not problems, reason, declared and bool(problems)))
    return findings


def audit(directory: str | Path | None = None) -> pd.DataFrame:
    """Audit every element file of ``directory`` (default equations/): one row per statement."""
    directory = Path(directory) if directory is not None else equations_dir()
    rows = [asdict(f) for path in sorted(directory.glob("*.eqs")) for f in audit_element(load_element(path))]
    return pd.DataFrame(rows, columns=COLUMNS)


def violations(df: pd.DataFrame) -> pd.DataFrame:
    """The non-local statements that their element does not declare as an exception."""
    return df[~df["local"] & ~df["declared_exception"]]
