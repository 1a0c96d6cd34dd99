"""Markdown descriptions of elements and of whole layer groups (equations + parameter tables)."""

from __future__ import annotations

import brian2 as b2
import numpy as np

from biograd.models.composition import TIMED_ARRAYS
from biograd.models.elements import Element


def describe_element(el: Element) -> str:
    """One element as Markdown: header text, equations and code sections, parameter table."""
    out = [f"### `{el.name}` ({el.kind})", "", el.table.description, "", "```", el.eqs.header, "```", ""]
    for section in el.eqs.sections.values():
        if not section.code:
            continue
        title = section.kind + (f" {section.name}" if section.name else "")
        out += [f"**{title}**", "", "```", section.code, "```", ""]
    if el.table.parameters:
        out += ["| parameter | value | bounds | description | reference |", "|---|---|---|---|---|"]
        for name, p in el.table.parameters.items():
            bounds = "" if p.bounds is None else f"[{p.bounds[0]}, {p.bounds[1]}]"
            mark = " *(reconstruction)*" if p.reconstruction else ""
            out.append(f"| `{name}` | {el.values[name]} | {bounds} | {p.description}{mark} | {p.reference} |")
        out.append("")
    if el.table.external:
        out += ["Uses from elsewhere: " + ", ".join(
            f"`{n}` ({e.description}; {e.provided_by})" for n, e in el.table.external.items()), ""]
    return "\n".join(out)


class _Name(str):
    """A name the printed code defines (a TimedArray): written without quotes."""

    def __repr__(self) -> str:
        return str(self)


def _literal(value) -> str:
    """A value as Python source under ``from brian2 import *``: 8, 0.03, 2. * msecond, a (triple-quoted) string."""
    if isinstance(value, _Name):
        return repr(value)
    if isinstance(value, str):
        return f"'''\n{value}\n'''" if "\n" in value else repr(value)
    if isinstance(value, dict):
        return "\n".join(["{", *(f"        {key!r}: '''{_indent(code)}'''," for key, code in value.items()), "    }"])
    if isinstance(value, b2.Quantity) and not value.is_dimensionless:
        return repr(value)
    return repr(int(value)) if isinstance(value, int | np.integer) else repr(float(value))


def _indent(code: str) -> str:
    return code if "\n" not in code else "\n" + "\n".join("        " + line for line in code.splitlines()) + "\n    "


def _call(name: str, head: str, args: str, kwargs: dict, model: str, namespace: str) -> list[str]:
    """``name = head(args, ..., name=name)`` with the group's non-empty arguments, as the network passes them."""
    lines = [f"{name} = {head}(", f"    {args},"]
    for key, value in sorted(kwargs.items(), key=lambda item: item[0] in ("method", "namespace")):
        if key == "model":
            lines.append(f"    model={_literal(model)},")
        elif key == "namespace":
            lines.append(f"    namespace={namespace},")
        elif value:
            lines.append(f"    {key}={_literal(value)},")
    return [*lines, f"    name={name!r},", ")"]


def _shared_constants(namespaces: list[dict]) -> dict:
    """The namespace entries with one value in every group that has them (the others differ per group)."""
    written: dict[str, set[str]] = {}
    for namespace in namespaces:
        for key, value in namespace.items():
            written.setdefault(key, set()).add(_literal(value))
    return {key: value for namespace in namespaces for key, value in namespace.items() if len(written[key]) == 1}


def _namespace(namespace: dict, shared: dict) -> str:
    own = "".join(f", {key!r}: {_literal(value)}" for key, value in namespace.items() if key not in shared)
    return f"{{**constants{own}}}"


def _preamble(spec, c, shared: dict) -> list[str]:
    """The clock, the TimedArrays the trainer fills before every chunk (here ``slots`` training slots of
    zeros) and the constants every group reads."""
    n_in, n_out = spec.sizes[0], spec.sizes[-1]
    slot = "dt=n_slot*defaultclock.dt"
    arrays = {"slot_kind": f"full(slots, {c.slot_train}.0), {slot})  # what each slot does (slot_train: learn)",
              "stimulus": f"zeros((slots, {n_in})), {slot})  # input intensities per slot, in [0, 1]",
              "event_counts": f"zeros((slots*n_slot, {n_in})), dt=defaultclock.dt)  # input events per step",
              "target": f"zeros((slots, {n_out})), {slot})  # one-hot label per slot"}
    lines = ["```python", "from brian2 import *", "", f"defaultclock.dt = {c.dt!r}", f"n_slot = {c.n_slot}",
             "slots = 1  # sample slots in one run (the trainer's chunk)"]
    lines += [f"{name} = TimedArray({arrays[name]}" for name in TIMED_ARRAYS if name in shared]
    lines += ["constants = {", *(f"    {key!r}: {_literal(value)}," for key, value in shared.items()), "}"]
    return [*lines, "```", ""]


def _model_text(elements: list[Element]) -> str:
    """The group's equations, element by element, with each line's comment."""
    parts = []
    for el in elements:
        code = el.eqs.section("model").code
        if code:
            parts += [f"# --- {el.name}", code]
    return "\n".join(parts)


def _value(value) -> str:
    """A parameter's value as a reader writes it: 8, 0.03, 2 ms."""
    if isinstance(value, b2.Quantity) and not value.is_dimensionless:
        return str(value)
    return f"{float(value):g}"


def _parameter_table(elements: list[Element], constants: dict) -> list[str]:
    rows = [f"| `{name}` | {_value(value)} | {el.name} | {el.table.parameters[name].description} |"
            for el in elements for name, value in el.values.items()]
    rows += [f"| `{name}` | {_value(value)} | network | {description} |"
             for name, (value, description) in constants.items()]
    if not rows:
        return []
    return ["| name | value | from | meaning |", "|---|---|---|---|", *rows, ""]


def describe_model(spec) -> str:
    """The network of ``spec`` (a NetworkSpec) as Brian2 is given it, group by group, in Markdown: a
    Python block per NeuronGroup and Synapses object (composed equations, threshold, reset, events,
    event code, slot-start code, pathways, integration method, namespace), runnable in order after the
    first block under ``from brian2 import *``, and the values and meanings of their parameters."""
    c = spec.composition
    arrays = {name: _Name(name) for name in TIMED_ARRAYS}
    groups = [c.layer_group(layer, arrays=arrays) for layer in range(c.n_layers + 1)]
    synapses = []  # (name, kind, pre, post, GroupSpec)
    for layer in range(1, c.n_layers + 1):
        pairs = [(f"forward{layer}", c.synapse_kind(layer), layer - 1, layer)]
        if c.has_feedback_synapses(layer):
            pairs.append((f"feedback{layer}", "feedback", layer, layer - 1))
        synapses += [(*pair, c.synapse_group(pair[1], groups[pair[2]], groups[pair[3]])) for pair in pairs]
    shared = _shared_constants([g.namespace for g in groups] + [s[-1].namespace for s in synapses])
    out = [f"# BioGrad network {'-'.join(map(str, spec.sizes))}, feedback `{spec.feedback}`", "",
           f"dt = {c.dt}; a slot has n_slot = {c.n_slot} steps: forward phase n_f = {c.n_f}, then "
           f"{c.n_layers} error phase(s) of n_e = {c.n_e}. Composition: `{c.path.name}`; element files: "
           f"`biograd describe ELEMENT`.", "", "| network parameter | value | meaning |", "|---|---|---|"]
    out += [f"| `{name}` | {_value(c.values[name])} | {p.description} |" for name, p in c.table.parameters.items()]
    out += ["", "The Python blocks, pasted in order into one script, build this network in plain Brian2 (weights "
            "0, every slot a training slot of an empty sample; the trainer fills the TimedArrays and weights):", ""]
    out += _preamble(spec, c, shared)
    for layer, group in enumerate(groups):
        kind, name = c.layer_kind(layer), f"layer{layer}"
        out += [f"## `{name}`: NeuronGroup({spec.sizes[layer]}), {kind} = "
                + " + ".join(f"`{el.name}`" for el in group.elements), "", "```python"]
        out += _call(name, "NeuronGroup", str(spec.sizes[layer]), group.neuron_kwargs(),
                     _model_text(group.elements), _namespace(group.namespace, shared))
        out += [f"{name}.{variable} = {_literal(value)}" for variable, value in group.initial_values.items()]
        out += [f"{name}.run_on_event({event!r}, {_literal(code)})" for event, code in group.on_event.items()]
        if group.slot_start:
            out.append(f"{name}.run_regularly({_literal(group.slot_start)}, dt=n_slot*defaultclock.dt, "
                       "when='start')  # at the start of every slot")
        constants = {"layer": (layer, "index of this layer"), "err_phase": (c.err_phase(layer), "its error phase")}
        constants |= {name: (value, "set per layer") for name, value in c.set_values(kind).items()}
        out += ["```", "", *_parameter_table(group.elements, constants)]
    for name, kind, pre, post, syn in synapses:
        out += [f"## `{name}`: Synapses(layer{pre}, layer{post}), all to all, {kind} = "
                + " + ".join(f"`{el.name}`" for el in syn.elements), "", "```python"]
        out += _call(name, "Synapses", f"layer{pre}, layer{post}", syn.synapse_kwargs(), _model_text(syn.elements),
                     _namespace(syn.namespace, shared))
        out += [f"{name}.connect()"]
        out += [f"{name}.{variable} = {_literal(value)}" for variable, value in syn.initial_values.items()]
        out += ["```", "", *_parameter_table(syn.elements, {})]
    return "\n".join(out)
