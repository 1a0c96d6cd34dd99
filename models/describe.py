"""Markdown descriptions of elements and of whole layer groups (equations + parameter tables)."""

from __future__ import annotations

import brian2 as b2

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


def _code_block(assignments: list[tuple[str, object]]) -> list[str]:
    """Brian2-style assignments (``model = \'\'\'...\'\'\'``) of the non-empty group arguments."""
    lines = ["```python"]
    for name, value in assignments:
        if not value:
            continue
        if isinstance(value, dict):
            lines.append(f"{name} = {{")
            lines += [f"    {key!r}: \'\'\'{_indent(code)}\'\'\'," for key, code in value.items()]
            lines.append("}")
        elif "\n" in str(value):
            lines.append(f"{name} = \'\'\'\n{value}\n\'\'\'")
        else:
            lines.append(f"{name} = {str(value)!r}")
    return [*lines, "```", ""]


def _indent(code: str) -> str:
    return code if "\n" not in code else "\n" + "\n".join("        " + line for line in code.splitlines()) + "\n    "


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
    """The network of ``spec`` (a NetworkSpec) as Brian2 would be given it, group by group, in Markdown:
    the composed equations, threshold, reset, events, event code, slot-start code and synaptic
    pathways of every NeuronGroup and Synapses object, with the values of their parameters."""
    c = spec.composition
    out = [f"# BioGrad network {'-'.join(map(str, spec.sizes))}, feedback `{spec.feedback}`", "",
           f"dt = {c.dt}; a slot has n_slot = {c.n_slot} steps: forward phase n_f = {c.n_f}, then "
           f"{c.n_layers} error phase(s) of n_e = {c.n_e}. Composition: `{c.path.name}`; element files: "
           f"`biograd describe ELEMENT`.", "", "| network parameter | value | meaning |", "|---|---|---|"]
    out += [f"| `{name}` | {_value(c.values[name])} | {p.description} |" for name, p in c.table.parameters.items()]
    out.append("")
    groups = []
    for layer in range(c.n_layers + 1):
        kind = c.layer_kind(layer)
        group = c.layer_group(layer)
        groups.append(group)
        out += [f"## `layer{layer}`: NeuronGroup({spec.sizes[layer]}), {kind} = "
                + " + ".join(f"`{el.name}`" for el in group.elements), ""]
        out += _code_block([("model", _model_text(group.elements)), ("threshold", group.threshold),
                            ("reset", group.reset), ("events", group.events),
                            ("run_on_event", group.on_event), ("run_regularly (at the start of every slot)",
                                                               group.slot_start)])
        constants = {"layer": (layer, "index of this layer"), "err_phase": (c.err_phase(layer), "its error phase")}
        constants |= {name: (value, "set per layer") for name, value in c.set_values(kind).items()}
        out += _parameter_table(group.elements, constants)
    for layer in range(1, c.n_layers + 1):
        pairs = [(f"forward{layer}", c.synapse_kind(layer), layer - 1, layer)]
        if c.has_feedback_synapses(layer):
            pairs.append((f"feedback{layer}", "feedback", layer, layer - 1))
        for name, kind, pre, post in pairs:
            syn = c.synapse_group(kind, groups[pre], groups[post])
            out += [f"## `{name}`: Synapses(layer{pre}, layer{post}), all to all, {kind} = "
                    + " + ".join(f"`{el.name}`" for el in syn.elements), ""]
            out += _code_block([("model", _model_text(syn.elements)), ("on_pre", syn.on_pre),
                                ("on_post", syn.on_post), ("on_event", syn.pathway_events)])
            out += _parameter_table(syn.elements, {})
    return "\n".join(out)
