"""Gated thresholds: on cpp_standalone, an event test that skips the steps where its gate is closed and fills
its event list without branches.

Brian2's ``threshold`` template tests every neuron in every step and appends a neuron to the event list
in a branch: ``if (_cond) events[count++] = i``. Most of BioGrad's events hold only in one phase of a
slot (error events in their error window, learning events at the slot's end, sleep spikes in sleep):
their condition is ``gate && test(neuron)``, with a gate that is the same for every neuron. The template
in ``templates/cpp_standalone/threshold.cpp`` (Brian2's, derived with ``Templater.derive``) tests the gate
first and visits the neurons only while it is open, and appends without a branch,
``events[count] = i; count += cond``, which costs the same for every neuron however the spikes fall (a
branch mispredicts about once per spike). The events, their order and the random numbers drawn are
Brian2's: while the gate is closed the condition draws none (``tests/test_dense_pathways.py`` compares
whole trainings with Brian2's templates, spike for spike). The gate is read from Brian2's generated vector
code (:func:`scalar_gate`), not from Brian2's loop-invariant optimisation, which hoists the phase out of
the loop in some builds and not in others.
"""

from __future__ import annotations

import re

import brian2 as b2
from brian2.devices.cpp_standalone.codeobject import CPPStandaloneCodeObject

_DEFINITION = re.compile(r"^\s*(?:const\s+)?[\w:]+\s+(\w+)\s*=\s*(.+);\s*$")  # `const double x = ...;`
_NAME = re.compile(r"\b[A-Za-z_]\w*\b")
# calls that advance a generator: Brian2's own, and any function given the neuron's _vectorisation_idx (Brian2 passes
# it to auto-vectorised functions, the stateful ones: a user's BinomialFunction too)
_RANDOM = re.compile(r"\b_(rand|randn|poisson|binomial\w*)\(|\b\w+\s*\([^()]*\b_vectorisation_idx\b")
_PER_NEURON = {"_idx", "_vectorisation_idx"}


def _top_level(expression: str, operator: str) -> list[str]:
    """``expression`` split at ``operator`` outside parentheses."""
    parts, depth, start, i = [], 0, 0, 0
    while i < len(expression):
        char = expression[i]
        depth += (char == "(") - (char == ")")
        if depth == 0 and expression.startswith(operator, i):
            parts.append(expression[start:i])
            start = i = i + len(operator)
            continue
        i += 1
    return [*parts, expression[start:]]


def _unwrapped(expression: str) -> str:
    """``expression`` without parentheses that enclose all of it."""
    expression = expression.strip()
    while expression.startswith("(") and _closing(expression) == len(expression) - 1:
        expression = expression[1:-1].strip()
    return expression


def _closing(expression: str) -> int:
    """Index of the parenthesis that closes ``expression``'s first one."""
    depth = 0
    for i, char in enumerate(expression):
        depth += (char == "(") - (char == ")")
        if depth == 0:
            return i
    return -1


def scalar_gate(vector_code: str | list[str]) -> tuple[str, str]:
    """The gate of a threshold's condition ``_cond = d_1 || d_2 || ...``, each ``d = c_1 && c_2 && ...``:
    per disjunct the conjuncts that are the same for every neuron (they use no per-neuron value, directly or
    through the vector code's definitions) and come before any random draw, and the definitions they need
    (each, like Brian2's loop-invariant ``_lio_k``, evaluated once per step). While the gate is false no
    neuron has the event, and, as C++ evaluates ``&&`` and ``||`` from the left, no neuron draws a random
    number. No gate (``("", "")``) where a disjunct has no such conjunct, where the code draws random numbers
    outside the condition, or where a line is not a definition ``[const] type name = expression;`` (Brian2 writes
    a statement that reads a boolean variable as an if/else, which this does not follow)."""
    lines = vector_code.splitlines() if isinstance(vector_code, str) else list(vector_code)
    varying, invariant, condition = set(_PER_NEURON), [], None
    for line in filter(str.strip, lines):
        if not (match := _DEFINITION.match(line)):
            return "", ""
        name, expression = match.groups()
        names = set(_NAME.findall(expression))
        if name == "_cond":
            condition = expression
        elif _RANDOM.search(expression):
            return "", ""
        elif names & varying:
            varying.add(name)
        else:
            invariant.append((name, line.strip(), names))
    if condition is None:
        return "", ""
    gates = []
    for disjunct in _top_level(_unwrapped(condition), "||"):
        gate = []
        for term in _conjuncts(disjunct):
            if _RANDOM.search(term):  # the terms after a draw count only once it has been drawn
                break
            if not set(_NAME.findall(term)) & varying:
                gate.append(term)
        if not gate:
            return "", ""
        gates.append(" && ".join(f"({term})" for term in gate))
    used = set().union(*(_NAME.findall(gate) for gate in gates))
    needed = []
    for name, line, names in reversed(invariant):  # the definitions the gate uses, directly or through others
        if name in used:
            needed.insert(0, line)
            used |= names
    return "\n".join(needed), gates[0] if len(gates) == 1 else " || ".join(f"({gate})" for gate in gates)


def _conjuncts(expression: str) -> list[str]:
    """The terms of ``expression`` = t_1 && t_2 && ..., nested conjunctions flattened; a disjunction is one term."""
    expression = _unwrapped(expression)
    if len(_top_level(expression, "||")) > 1:
        return [expression]
    terms = _top_level(expression, "&&")
    return [expression] if len(terms) == 1 else [t for term in terms for t in _conjuncts(term)]


class GatedThresholdCodeObject(CPPStandaloneCodeObject):
    """A cpp_standalone code object with the gated ``threshold`` template; every other template is Brian2's."""

    templater = CPPStandaloneCodeObject.templater.derive("biograd.models", templates_dir="templates/cpp_standalone",
                                                         env_globals={"scalar_gate": scalar_gate})


def use_gated_thresholds(group: b2.NeuronGroup) -> None:
    """Test the events of ``group`` (spikes and custom events) with the gated template (on cpp_standalone)."""
    for thresholder in group.thresholder.values():
        thresholder.codeobj_class = GatedThresholdCodeObject
