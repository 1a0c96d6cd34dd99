"""Brian2 abstract code -> GeNN 5 code strings (GeNN's C-like language), statement by statement.

Brian2 turns every piece of model code (Euler step, threshold, reset, pathway) into statements with
:func:`brian2.codegen.translation.make_statements` (subexpressions inlined, loop invariants hoisted);
cpp_standalone renders them as C++. This module renders the same statements for GeNN, expression by
expression as Brian2's C++ renderer does (``1.0f*a/b`` divisions, Python's ``%``, ``int`` casts), so
that deterministic models compute the same numbers on both. What GeNN's language lacks is rewritten:

- functions: ``int(x)`` -> ``(int)(x)``, ``abs`` -> ``fabs``, ``sign(x)`` -> ``(x > 0 ? 1 : (x < 0 ? -1 : 0))``,
  ``clip(x, a, b)`` -> ``fmin(fmax(x, a), b)``;
- ``rand()`` -> a counter-based uniform number: a 32-bit integer hash (Wellons' lowbias32) of the chunk's seed
  (parameter ``b2_seed``), the call site, the time step and the neuron (synapse) index, times 2^-32. It needs
  no generator state, works in synaptic code (where GeNN offers none) and makes every chunk reproducible
  from its seed, as Brian2's chunks are; its numbers are not Brian2's (compare statistically);
- a TimedArray call becomes a read of an extra global array, indexed as Brian2's C++ implementation
  indexes it: ``values[clamp((int)((t/eps + 0.5)/K), 0, rows-1)*cols + i]`` with ``eps = dt_array/K``;
- ``i`` is GeNN's ``id`` (``id_pre`` and ``j`` -> ``id_post`` in synapses).

Anything else raises :class:`Untranslatable` naming the construct; the caller adds the file and line.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping

import numpy as np
from brian2.codegen.translation import make_statements
from brian2.core.preferences import prefs
from brian2.core.variables import AuxiliaryVariable, Constant
from brian2.input.timedarray import TimedArray
from brian2.parsing.bast import brian_ast
from brian2.parsing.rendering import CPPNodeRenderer

C_TYPES = {"float64": "double", "float32": "float", "int32": "int32_t", "int64": "int64_t", "bool": "bool",
           "uint32": "uint32_t", "int8": "int8_t", "uint8": "uint8_t"}
ELEMENTWISE = {"sqrt", "exp", "log", "log10", "sin", "cos", "tan", "sinh", "cosh", "tanh", "floor", "ceil",
               "arcsin", "arccos", "arctan", "expm1", "log1p"}
RENAMED = {"arcsin": "asin", "arccos": "acos", "arctan": "atan"}


class Untranslatable(ValueError):
    """A construct of Brian2 code that has no GeNN rendering; ``construct`` is what to look for in the files."""

    def __init__(self, construct: str, why: str):
        self.construct = construct
        super().__init__(f"{construct!r}: {why}")


_HIDDEN = re.compile(r"(?<![\w.])_(?=[A-Za-z_])")


def genn_names(code: str) -> str:
    """Brian2's internal names (``_cond``, ``_lio_1``, ``_v``) with GeNN-legal names: GeNN's scanner rejects a
    leading underscore, so ``_x`` becomes ``b2_x``."""
    return _HIDDEN.sub("b2_", code)


def c_type(dtype) -> str:
    name = np.dtype(dtype).name
    if name not in C_TYPES:
        raise Untranslatable(name, "no GeNN type for this Brian2 data type")
    return C_TYPES[name]


def timed_array_read(array: TimedArray, egp: str, clock_dt: float, args: list[str]) -> str:
    """The value ``array(t[, i])`` as an expression on the extra global array ``egp`` (Brian2's C++ indexing)."""
    from brian2.input.timedarray import _find_K

    values = np.asarray(array.values)
    K = _find_K(clock_dt, float(array.dt))
    eps = repr(float(f"{float(array.dt):.18f}") / K)  # Brian2 prints the array's dt with 18 decimals
    rows = values.shape[0]
    step = f"(int)fmin(fmax((({args[0]})/{eps} + 0.5)/{K}, 0.0), {rows - 1}.0)"
    if values.ndim == 1:
        return f"{egp}[{step}]"
    if values.ndim == 2:
        return f"{egp}[{step}*{values.shape[1]} + ({args[1]})]"
    raise Untranslatable(array.name, "TimedArrays of more than two dimensions")


SEED = "b2_seed"  # the chunk's seed, a GeNN dynamic parameter of every population and projection that draws
# lowbias32; x >> k written x / 2^k (unsigned: the same), as GeNN 5.4.0's scanner reads '>>' as two '>'
_MIX = ("{v} ^= {v} / 65536U;", "{v} *= 0x7feb352dU;", "{v} ^= {v} / 32768U;", "{v} *= 0x846ca68bU;",
        "{v} ^= {v} / 65536U;")


def hashed_uniform(name: str, site: int, index: str) -> list[str]:
    """Statements that leave a uniform number in [0, 1) in ``name`` (see the module docstring): the seed, the
    call ``site``, the time step and ``index`` (the neuron or synapse) hashed in turn."""
    lines = [f"uint32_t {name} = {SEED} ^ {(site + 1) * 0x9E3779B9 % 2**32:#x}U;"]
    for part in ("(uint32_t)((int32_t)(t/dt + 0.5))", f"(uint32_t)({index})"):
        lines += [line.format(v=name) for line in _MIX] + [f"{name} ^= {part};"]
    return lines + [line.format(v=name) for line in _MIX]


class GennRenderer(CPPNodeRenderer):
    """Brian2's C++ expression renderer with GeNN's names for functions, indices and extra global arrays.
    Statements that an expression needs first (random numbers) collect in ``preamble``."""

    def __init__(self, variables: Mapping, names: Mapping[str, str], arrays: Callable[[TimedArray], str],
                 clock_dt: float, index: str = "id", sites: list | None = None):
        super().__init__()
        self.variables, self.names, self.arrays, self.clock_dt = variables, names, arrays, clock_dt
        self.index, self.preamble = index, []
        self.sites = sites if sites is not None else []  # random-number call sites of one population's code

    def uniform(self) -> str:
        name = f"b2_rand_{len(self.sites)}"
        self.preamble += hashed_uniform(name, len(self.sites), self.index)
        self.sites.append(name)
        return f"({name}*2.3283064365386963e-10)"

    def render_expr(self, expr: str, strip: bool = True) -> str:
        return self.render_node(brian_ast(expr.strip(), self.variables))

    def render_Name(self, node) -> str:
        return self.names.get(node.id, super().render_Name(node))

    def render_BinOp(self, node) -> str:
        op = node.op.__class__.__name__
        left, right = self.render_node(node.left), self.render_node(node.right)
        if op == "Pow":
            return f"pow({left}, {right})"
        if op == "Mod":
            if node.left.dtype == "integer" and node.right.dtype == "integer":  # Python's sign convention
                return f"((({left}) % ({right}) + ({right})) % ({right}))"
            return f"(({left}) - ({right})*floor(1.0*({left})/({right})))"
        if op == "FloorDiv":
            raise Untranslatable("//", "floor division is not translated to GeNN")
        return super().render_BinOp(node)

    def render_Call(self, node) -> str:
        name = node.func.id
        args = [self.render_node(arg) for arg in node.args]
        function = self.variables.get(name)
        if isinstance(function, TimedArray):
            return timed_array_read(function, self.arrays(function), self.clock_dt, args)
        if name == "int":
            return f"((int)({args[0]}))"
        if name == "abs":
            return f"fabs({args[0]})" if node.args[0].dtype == "float" else f"abs({args[0]})"
        if name == "sign":
            return f"(({args[0]}) > 0 ? 1 : (({args[0]}) < 0 ? -1 : 0))"
        if name == "clip":
            return f"fmin(fmax({args[0]}, {args[1]}), {args[2]})"
        if name == "rand" and not args:
            return self.uniform()
        if name == "randn" and not args:  # Box-Muller
            return f"(sqrt(-2.0*log(1.0 - {self.uniform()}))*cos(6.283185307179586*{self.uniform()}))"
        if name in ELEMENTWISE:
            return f"{RENAMED.get(name, name)}({', '.join(args)})"
        raise Untranslatable(name, "this function has no GeNN translation")


def constants(variables: Mapping, renamed: Mapping = {}) -> dict[str, float | int]:  # noqa: B006 - read only
    """The Brian2 constants among ``variables`` (namespace values): GeNN parameters of the same name (except those
    that are GeNN built-ins under another name, such as N -> num_neurons)."""
    return {name: var.value.item() if isinstance(var.value, np.generic) else var.value
            for name, var in sorted(variables.items())
            if isinstance(var, Constant) and not name.startswith("_") and name not in renamed}


def render_block(code: str, variables: Mapping, renderer: GennRenderer, blockname: str,
                 writes: Callable[[str, str, str], str | None] = lambda var, op, expr: None) -> list[str]:
    """``code`` (Brian2 abstract code) as GeNN statements, loop invariants first, as Brian2's C++ computes it.
    ``writes(var, op, expr)`` may render an assignment itself (a synapse's write to a neuron: ``addToPost``)."""
    scalar, vector = make_statements(code, variables, np.float64,
                                     optimise=prefs.codegen.loop_invariant_optimisations, blockname=blockname)
    lines = []
    renderer.variables = dict(variables)  # and the block's local names, as they are declared (for their types)
    for statement in [*scalar, *vector]:
        expr = renderer.render_expr(statement.expr)
        lines += renderer.preamble
        renderer.preamble = []
        if statement.op == ":=":
            renderer.variables[statement.var] = AuxiliaryVariable(statement.var, dtype=statement.dtype,
                                                                  scalar=statement.scalar)
            declaration = ("const " if statement.constant else "") + c_type(statement.dtype) + " "
            lines.append(f"{declaration}{statement.var} = {expr};")
        else:
            lines.append(writes(statement.var, statement.op, expr)
                         or f"{renderer.names.get(statement.var, statement.var)} {statement.op} {expr};")
    return [genn_names(line) for line in lines]
