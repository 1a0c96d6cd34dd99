"""Reader for ``.eqs`` element files: a comment header, then sections of pure Brian2 syntax.

File layout::

    # Title line
    # ... description, references, reconstruction notes (comment lines) ...

    ## model
    dv_soma/dt = -v_soma/tau_v + u_soma/dt : 1  # membrane potential
    ## threshold
    v_soma > v_th
    ## reset
    v_soma = 0
    ## event err_pos
    <condition of the custom event>
    ## on_event err_pos
    <statements run in the neuron when the event occurs>
    ## slot_start
    <statements run at the start of every sample slot>
    ## on_pre spike        (synapses: code run on the presynaptic group's event)
    ## on_post err_pos     (synapses: code run on the postsynaptic group's event)
    ## rule db_sleep
    <a learning rule: an expression that statements use by its name, b += db_sleep>
    ## rules feedback_synapse
    db_sleep: b -> b_loihi  # <the rule's meaning here>

Each section holds Brian2 equations (``model``), a condition (``threshold``, ``event``) or
abstract code statements (the others). Comments (``# ...``) are allowed everywhere; every line
of ``model`` must carry one (the variable's meaning). Line numbers are kept for error messages.

``## rules SOURCE`` takes learning rules from the element ``SOURCE`` (a file in the same folder)
instead of repeating them: each line names a ``## rule`` of SOURCE (``db_sleep``), with the names
it reads otherwise here (``b -> b_loihi``, comma-separated). So a variant (e.g. at Loihi precision)
holds one definition of each rule: the one in SOURCE. The loader
(:func:`biograd.models.elements.load_element`) writes each rule into the statements that name it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

from biograd.models.errors import ModelFileError, read_model_file

#: section kind -> whether it takes a name (the event name)
SECTION_KINDS = {
    "model": False,
    "threshold": False,
    "reset": False,
    "slot_start": False,
    "event": True,
    "on_event": True,
    "on_pre": True,
    "on_post": True,
    "rule": True,  # the name: the rule's
    "rules": True,  # the name: the element whose rules these are
}
_RULE = re.compile(r"^(?P<name>[A-Za-z_][A-Za-z0-9_]*)\s*(?::\s*(?P<substitutions>.*))?$")
_SUBSTITUTION = re.compile(r"^(?P<old>[A-Za-z_][A-Za-z0-9_]*)\s*->\s*(?P<new>[A-Za-z_][A-Za-z0-9_]*)$")
_SECTION = re.compile(r"^##\s*(?P<kind>[A-Za-z_]+)(?:\s+(?P<name>[A-Za-z_][A-Za-z0-9_]*))?\s*$")


@dataclass(frozen=True)
class Line:
    """One source line: its 1-based number, the code without comment, and the comment."""

    number: int
    code: str
    comment: str


@dataclass
class Section:
    kind: str
    name: str | None
    header_line: int
    lines: list[Line] = field(default_factory=list)

    @property
    def key(self) -> tuple[str, str | None]:
        return (self.kind, self.name)

    @property
    def code(self) -> str:
        """The section as Brian2 source (comments kept on model lines for Brian2's docs)."""
        parts = []
        for line in self.lines:
            if not line.code:
                continue
            parts.append(f"{line.code}  # {line.comment}" if self.kind == "model" and line.comment else line.code)
        return "\n".join(parts)


@dataclass
class EqsFile:
    path: Path
    title: str
    header: str
    sections: dict[tuple[str, str | None], Section]

    def section(self, kind: str, name: str | None = None) -> Section | None:
        return self.sections.get((kind, name))

    def named(self, kind: str) -> dict[str, Section]:
        return {name: s for (k, name), s in self.sections.items() if k == kind}


@dataclass(frozen=True)
class RuleReference:
    """One line of ``## rules SOURCE``: the rule ``name`` of element ``source``, read with ``substitutions``."""

    source: str
    name: str
    substitutions: dict[str, str]  # a name in SOURCE's expression -> the name it reads here
    line: Line


def rule_references(eqs: EqsFile) -> list[RuleReference]:
    """The rules ``eqs`` takes from other elements (its ``## rules SOURCE`` sections), in file order."""
    references = []
    for source, section in eqs.named("rules").items():
        for line in section.lines:
            if not line.code:
                continue
            match = _RULE.match(line.code)
            pairs = [_SUBSTITUTION.match(part.strip()) for part in (match["substitutions"] or "").split(",")
                     if part.strip()] if match else [None]
            if not match or not all(pairs):
                raise ModelFileError(eqs.path, f"'## rules {source}' line {line.code!r}: expected NAME or "
                                     "NAME: old -> new, ... (a rule of the source element and the names it reads "
                                     "otherwise here)", line.number)
            references.append(RuleReference(source, match["name"], {p["old"]: p["new"] for p in pairs}, line))
    return references


def rule_sources(path: Path) -> list[str]:
    """The elements whose rules the file ``path`` takes (its ``## rules SOURCE`` headers), without parsing it."""
    return re.findall(r"^\s*##\s*rules\s+([A-Za-z_][A-Za-z0-9_]*)\s*$", path.read_text(), flags=re.MULTILINE)


def _split_comment(text: str) -> tuple[str, str]:
    code, _, comment = text.partition("#")
    return code.strip(), comment.strip()


def read_eqs(path: str | Path) -> EqsFile:
    """Parse an ``.eqs`` file into its header and sections (no Brian2 checks yet)."""
    path = Path(path)
    text = read_model_file(path, "equation file")
    header: list[str] = []
    sections: dict[tuple[str, str | None], Section] = {}
    current: Section | None = None
    for number, raw in enumerate(text.splitlines(), start=1):
        stripped = raw.strip()
        if stripped.startswith("##"):
            match = _SECTION.match(stripped)
            if not match or match["kind"] not in SECTION_KINDS:
                raise ModelFileError(
                    path, f"unknown section header {stripped!r}; expected one of "
                    f"{', '.join('## ' + k + (' NAME' if n else '') for k, n in SECTION_KINDS.items())}",
                    number)
            kind, name = match["kind"], match["name"]
            if SECTION_KINDS[kind] != (name is not None):
                raise ModelFileError(path, f"section '## {kind}' {'needs' if SECTION_KINDS[kind] else 'takes no'}"
                                     " event name", number)
            if (kind, name) in sections:
                raise ModelFileError(path, f"section '{stripped}' appears twice", number)
            current = sections[(kind, name)] = Section(kind, name, number)
            continue
        if current is None:
            if stripped and not stripped.startswith("#"):
                raise ModelFileError(path, "code before the first '## section' header", number)
            text = stripped[1:] if stripped.startswith("#") else stripped
            header.append(text[1:] if text.startswith(" ") else text)
            continue
        code, comment = _split_comment(raw)
        if code or comment:
            current.lines.append(Line(number, code, comment))
    if not any(line for line in header):
        raise ModelFileError(path, "missing header: start the file with '# <title>' and a description", 1)
    if ("model", None) not in sections:
        raise ModelFileError(path, "no '## model' section")
    title = next(line for line in header if line)
    return EqsFile(path, title, "\n".join(header).strip(), sections)
