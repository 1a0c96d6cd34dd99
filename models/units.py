"""Quantities written as strings ("20 ms", "0.5", "1/ms", "-2 mV") turned into Brian2 quantities."""

from __future__ import annotations

import ast
import re

import brian2 as b2
from brian2.core.namespace import DEFAULT_UNITS

_NUMBER = re.compile(r"^\s*(?P<num>[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?)\s*(?P<unit>.*?)\s*$")
_ALLOWED_NODES = (ast.Expression, ast.BinOp, ast.Name, ast.Load, ast.Mult, ast.Div, ast.Pow, ast.Constant,
                  ast.UnaryOp, ast.USub)


def parse_unit(text: str) -> b2.Quantity:
    """Parse a unit expression ("ms", "mV/ms", "1", "Hz**2") into a Brian2 unit quantity."""
    text = text.strip()
    if text in ("", "1"):
        return b2.Quantity(1.0)
    try:
        tree = ast.parse(text, mode="eval")
    except SyntaxError as err:
        raise ValueError(f"cannot read unit {text!r}") from err
    for node in ast.walk(tree):
        if not isinstance(node, _ALLOWED_NODES):
            raise ValueError(f"cannot read unit {text!r}: only unit names, *, / and ** are allowed")
        if isinstance(node, ast.Name) and node.id not in DEFAULT_UNITS:
            raise ValueError(f"unknown unit {node.id!r} in {text!r}")
    return eval(compile(tree, "<unit>", "eval"), {"__builtins__": {}}, dict(DEFAULT_UNITS))  # noqa: S307


def parse_quantity(text: str | int | float) -> b2.Quantity:
    """Parse "<number> <unit>" (unit optional) into a Brian2 quantity; plain numbers are dimensionless."""
    if isinstance(text, bool):
        raise ValueError(f"expected a number with unit, got {text!r}")
    if isinstance(text, int | float):
        return b2.Quantity(float(text))
    match = _NUMBER.match(str(text))
    if not match:
        raise ValueError(f"expected '<number> <unit>' (e.g. '20 ms'), got {text!r}")
    unit = match["unit"]
    return float(match["num"]) * parse_unit("1" + unit if unit.startswith("/") else unit)


def same_dimensions(a: b2.Quantity, b: b2.Quantity) -> bool:
    return b2.get_dimensions(a) is b2.get_dimensions(b)


def parse_as(text: str | int | float, unit: b2.Quantity, expected: str) -> b2.Quantity:
    """Parse ``text`` and insist on the dimensions of ``unit``; else ValueError "<expected>, got '<text>'"."""
    value = parse_quantity(text)
    if not same_dimensions(value, unit):
        raise ValueError(f"{expected}, got {text!r}")
    return value
