"""Parameter tables (``equations/<element>.yaml``): values with units, descriptions, references, bounds.

Schema (unknown keys are rejected)::

    element: soma                 # must equal the .eqs file's stem
    kind: neuron                  # or: synapse
    description: One line on what the element is.
    parameters:
      tau_u:
        value: 1 ms               # number and unit as a string
        description: synaptic current time constant (du = dt/tau_u)
        reference: Davies et al. 2018 (Loihi CUBA neuron); value is a reconstruction
        bounds: [1 ms, 1 s]       # inclusive; either end may be null
        reconstruction: true      # the paper's value is unknown; this is the project's choice
    external:                     # names the element uses but does not define
      n_f:
        unit: "1"
        description: forward-phase steps per sample
        provided_by: model        # 'model' (network builder) or the element that defines it
    observables:                  # optional: the range a measured quantity should stay in (see OBSERVABLES)
      rate:
        range: [0 Hz, 200 Hz]     # inclusive; either end may be null; the unit is the observable's
        description: what the range means
        reference: where it comes from
        reconstruction: true
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import brian2 as b2
import numpy as np
import yaml
from pydantic import BaseModel, ConfigDict, ValidationError, field_validator

from biograd.models.errors import ModelFileError, read_model_file
from biograd.models.units import parse_quantity, parse_unit, same_dimensions

#: names Brian2 reserves (or that silently shadow Brian2 built-ins)
RESERVED_NAMES = frozenset({"e", "i", "j", "N", "t", "dt", "xi", "pi", "inf", "lastspike", "not_refractory"})

#: per-layer quantities the analysis package measures (biograd.analysis.activity), with their units;
#: a parameter table may declare the range each should stay in for the layers that use the element
OBSERVABLES = {
    "rate": "Hz",  # mean forward-phase firing rate of the layer's neurons
    "silent_fraction": "1",  # fraction of (neuron, sample) pairs without a forward-phase spike
    "saturated_fraction": "1",  # fraction of (neuron, sample) pairs spiking in every forward step
    "error_rate": "Hz",  # error events per second of a neuron's own error window
    "error_saturated_fraction": "1",  # fraction of (neuron, sample) pairs sending an event in every window step
}


class Parameter(BaseModel):
    model_config = ConfigDict(extra="forbid")
    value: str | float | int
    description: str
    reference: str
    bounds: tuple[str | float | int | None, str | float | int | None] | None = None
    reconstruction: bool = False

    @field_validator("value")
    @classmethod
    def _parses(cls, value):
        parse_quantity(value)
        return value

    @field_validator("bounds")
    @classmethod
    def _bounds_parse(cls, bounds):
        for bound in bounds or ():
            if bound is not None:
                parse_quantity(bound)
        return bounds

    def quantity(self) -> b2.Quantity:
        return parse_quantity(self.value)


class External(BaseModel):
    model_config = ConfigDict(extra="forbid")
    unit: str = "1"
    description: str
    provided_by: str = "model"
    kind: Literal["variable", "function"] = "variable"
    args: list[Literal["t", "i"]] = ["t"]  # arguments of a function (TimedArray): [t] or [t, i]

    @field_validator("unit")
    @classmethod
    def _unit_parses(cls, unit):
        parse_unit(unit)
        return unit


class Observable(BaseModel):
    model_config = ConfigDict(extra="forbid")
    range: tuple[str | float | int | None, str | float | int | None]
    description: str
    reference: str
    reconstruction: bool = False

    def bounds(self) -> tuple[b2.Quantity | None, b2.Quantity | None]:
        return tuple(None if b is None else parse_quantity(b) for b in self.range)


class ParameterTable(BaseModel):
    model_config = ConfigDict(extra="forbid")
    element: str
    kind: Literal["neuron", "synapse"]
    description: str
    parameters: dict[str, Parameter] = {}
    external: dict[str, External] = {}
    observables: dict[str, Observable] = {}


def _key_lines(node, prefix=()) -> dict[tuple, int]:
    """Map each key path of a YAML node tree to its 1-based line."""
    lines: dict[tuple, int] = {}
    if isinstance(node, yaml.MappingNode):
        for key, value in node.value:
            path = (*prefix, key.value)
            lines[path] = key.start_mark.line + 1
            lines.update(_key_lines(value, path))
    elif isinstance(node, yaml.SequenceNode):
        for index, value in enumerate(node.value):
            lines[(*prefix, index)] = value.start_mark.line + 1
            lines.update(_key_lines(value, (*prefix, index)))
    return lines


def _line_of(lines: dict[tuple, int], loc: tuple) -> int | None:
    loc = tuple(loc)
    while loc:
        if loc in lines:
            return lines[loc]
        loc = loc[:-1]
    return None


def read_yaml_model[M: BaseModel](path: str | Path, model: type[M], what: str) -> tuple[M, dict[tuple, int]]:
    """Read a YAML file into the pydantic ``model``; returns it with the line of every key path.
    Errors name the file, the line and the problem."""
    path = Path(path)
    text = read_model_file(path, what)
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
        data = yaml.safe_load(text)
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        raise ModelFileError(path, f"invalid YAML: {getattr(err, 'problem', err)}",
                             mark.line + 1 if mark else None) from err
    if not isinstance(data, dict):
        raise ModelFileError(path, f"a {what} must be a YAML mapping", 1)
    lines = _key_lines(node)
    try:
        return model.model_validate(data), lines
    except ValidationError as err:
        first = err.errors()[0]
        loc = ".".join(str(part) for part in first["loc"])
        message = first["msg"].removeprefix("Value error, ")
        if first["type"] == "extra_forbidden":
            message = f"unknown key (the schema is {model.__name__} in {model.__module__})"
        raise ModelFileError(path, f"{loc}: {message}", _line_of(lines, first["loc"])) from err


def check_parameters(path: Path, parameters: dict[str, Parameter], lines: dict[tuple, int]) -> None:
    """Names not reserved by Brian2 and values inside their bounds."""
    for name, param in parameters.items():
        line = lines.get(("parameters", name))
        if name in RESERVED_NAMES:
            raise ModelFileError(path, f"parameter name {name!r} is reserved by Brian2", line)
        check_bounds(path, name, param, line)


def read_table(path: str | Path) -> ParameterTable:
    """Read and validate a parameter table; errors name the file, the line and the problem."""
    return read_table_lines(path)[0]


def read_table_lines(path: str | Path) -> tuple[ParameterTable, dict[tuple, int]]:
    """:func:`read_table`, with the line of every key path."""
    path = Path(path)
    table, lines = read_yaml_model(path, ParameterTable, "parameter table")
    check_parameters(path, table.parameters, lines)
    for name in table.external:
        if name in RESERVED_NAMES:
            raise ModelFileError(path, f"external name {name!r} is reserved by Brian2", lines.get(("external", name)))
    for name, observable in table.observables.items():
        line = lines.get(("observables", name))
        if name not in OBSERVABLES:
            raise ModelFileError(path, f"unknown observable {name!r} (measured: {', '.join(OBSERVABLES)})", line)
        unit = parse_unit(OBSERVABLES[name])
        for bound in observable.bounds():
            if bound is not None and not same_dimensions(bound, unit):
                raise ModelFileError(path, f"observable {name!r}: bound {bound} must be in units of "
                                     f"{OBSERVABLES[name]!r}", line)
    return table, lines


def finite(value: b2.Quantity) -> bool:
    """Whether ``value`` is a number other than NaN and +-inf (comparisons with NaN are all False)."""
    return bool(np.all(np.isfinite(np.asarray(value))))


def check_bounds(path: Path, name: str, param: Parameter, line: int | None, value: b2.Quantity | None = None):
    """Raise if ``value`` (default: the table value) is not finite, has other units than the bounds or lies
    outside them."""
    value = param.quantity() if value is None else value
    if not finite(value):
        raise ModelFileError(path, f"parameter {name!r} = {value} is not a finite number", line)
    if not same_dimensions(value, param.quantity()):
        raise ModelFileError(path, f"parameter {name!r} = {value} has other units than its table value "
                             f"{param.value!r}", line)
    if param.bounds is None:
        return
    low, high = (None if b is None else parse_quantity(b) for b in param.bounds)
    for bound in (low, high):
        if bound is not None and not same_dimensions(bound, value):
            raise ModelFileError(path, f"parameter {name!r}: value {value} and bound {bound} have different units",
                                 line)
    if (low is not None and value < low) or (high is not None and value > high):
        raise ModelFileError(path, f"parameter {name!r} = {value} is outside its bounds [{low}, {high}]", line)
