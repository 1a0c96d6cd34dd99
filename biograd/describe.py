"""Markdown descriptions of elements and of whole layer groups (equations + parameter tables)."""

from __future__ import annotations

from biograd.elements import Element, load_element


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


def describe_model(spec) -> str:
    """The network of ``spec`` (a NetworkSpec) group by group, as Markdown."""
    out = [f"# BioGrad network {'-'.join(map(str, spec.sizes))}, feedback `{spec.feedback}`", "",
           f"Slot of {spec.n_slot} steps: forward {spec.n_f}, {spec.n_layers} error phases of {spec.n_e}.", ""]
    seen: set[str] = set()
    groups = [(f"layer {l}", spec.elements(l)) for l in range(spec.n_layers + 1)]
    groups += [(f"forward synapses W{l}", spec.synapse_elements(l)) for l in range(1, spec.n_layers + 1)]
    if any(spec.has_feedback_synapses(l) for l in range(2, spec.n_layers + 1)):
        groups.append(("feedback synapses B", ["feedback_synapse"]))
    for title, names in groups:
        out += [f"## {title}: " + " + ".join(f"`{n}`" for n in names), ""]
        for name in names:
            if name not in seen:
                seen.add(name)
                out.append(describe_element(load_element(name)))
    return "\n".join(out)
