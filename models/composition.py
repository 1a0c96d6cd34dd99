"""The composition file ``equations/network.yaml`` with a config's overrides applied.

It names the elements of every group (per layer kind, and per synapse kind) and holds the
network's own numbers (dt, n_f, n_e, error gains, initial weight scale, Loihi threshold mantissa,
slot codes), the defaults and bounds of the training loop's sleep schedule (``training:``) and, per
precision (``model.precision``), the elements that replace the float ones: the Loihi-precision
variant and its ablation levels. A :class:`Composition` is what a network
build reads: every element with the overrides of ``model.params`` applied, each override checked
first (unknown element, unknown parameter, not a finite number, other units, outside the bounds: an
error naming ``model.params.<element>.<name>``).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Literal

import brian2 as b2
import numpy as np
from pydantic import BaseModel, ConfigDict

from biograd.models.elements import (
    Element,
    GroupSpec,
    check_units,
    check_variant_parameters,
    check_variant_rules,
    compose,
    equations_dir,
    load_element,
)
from biograd.models.eqsfile import rule_sources
from biograd.models.errors import ModelFileError
from biograd.models.params import Parameter, check_bounds, finite, read_yaml_model
from biograd.models.units import parse_quantity

COMPOSITION = "network"  # the composition file's stem, and its key in model.params
LayerKind = Literal["input", "hidden", "output", "inference_input", "inference"]
SynapseKind = Literal["forward", "forward_transpose", "feedback"]
WHOLE_NUMBERS = ("n_f", "n_e", "slot_infer", "slot_train", "slot_sleep")
LOIHI_NUMBERS = ("v_th_mant",)  # whole numbers of the Loihi precisions (run copies older than them lack them)
FLOAT = "float"  # the precision whose elements are the composition's own (no replacements)
TIMED_ARRAYS = ("slot_kind", "stimulus", "event_counts", "target")  # what the builder gives the elements


class GroupRecipe(BaseModel):
    model_config = ConfigDict(extra="forbid")
    elements: list[str]
    set: dict[str, str] = {}  # element variable -> network parameter that gives its value in this group


class CompositionTable(BaseModel):
    model_config = ConfigDict(extra="forbid")
    description: str
    parameters: dict[str, Parameter]
    training: dict[str, Parameter] = {}  # the training loop's sleep schedule (defaults and bounds of train.*)
    precisions: dict[str, dict[str, str | dict[LayerKind, str]]] = {}  # precision -> {float element: replacement,
    # everywhere or per layer kind}
    layers: dict[LayerKind, GroupRecipe]
    synapses: dict[SynapseKind, GroupRecipe]


@dataclass(frozen=True)
class Composition:
    """What a network of ``sizes``, ``feedback``, ``encoder`` and ``precision`` is made of (module docstring)."""

    path: Path
    table: CompositionTable
    values: dict[str, b2.Quantity]  # the network's parameters, overrides applied
    elements: dict[str, Element]  # every element of the network, overrides applied
    sizes: tuple[int, ...]
    feedback: str
    encoder: str
    precision: str = FLOAT

    # ------------------------------------------------------------------ numbers
    def whole(self, name: str) -> int:
        return int(self.values[name])

    @property
    def n_f(self) -> int:
        return self.whole("n_f")

    @property
    def n_e(self) -> int:
        return self.whole("n_e")

    @property
    def dt(self) -> b2.Quantity:
        return self.values["dt"]

    @property
    def n_layers(self) -> int:
        return len(self.sizes) - 1

    @property
    def n_slot(self) -> int:
        """Time steps per sample slot: forward phase + one error phase per weight layer."""
        return self.n_f + self.n_layers * self.n_e

    @property
    def slot_infer(self) -> int:
        return self.whole("slot_infer")

    @property
    def slot_train(self) -> int:
        return self.whole("slot_train")

    def slot_sleep(self, layer: int) -> int:
        """slot_kind code of a sleep slot for the forward weights W_layer."""
        return self.whole("slot_sleep") + layer

    def constants(self) -> dict[str, int]:
        """Numbers every group may read: the schedule's (whole numbers, as the equations compare them with
        integers), the Loihi threshold mantissa and the initial weights' scale (the Loihi weights' range)."""
        return {"n_f": self.n_f, "n_e": self.n_e, "n_slot": self.n_slot} | \
            {name: self.whole(name) for name in ("slot_infer", "slot_train", "slot_sleep")} | \
            {name: self.whole(name) for name in LOIHI_NUMBERS if name in self.values} | \
            {"init_scale": float(self.values["init_scale"])}

    def err_phase(self, layer: int) -> int:
        """Error phase in which ``layer`` emits: output 1, the layer below 2, ..., input never (0)."""
        return 0 if layer == 0 else self.n_layers - layer + 1

    def chunk_parameters(self) -> dict[str, float]:
        """Table values of the element variables declared ``(shared, constant)`` (e.g. the learning rates
        eta, eta_sleep): they reach every chunk through run_args, so they can change between chunks."""
        return {name: float(value) for el in self.elements.values() for name, value in el.initial_values.items()
                if {"shared", "constant"} <= set(el.equations[name].flags)}

    # ------------------------------------------------------------------ groups
    def layer_kind(self, layer: int, inference: bool = False) -> LayerKind:
        if inference:
            return "inference_input" if layer == 0 else "inference"
        return "input" if layer == 0 else "output" if layer == self.n_layers else "hidden"

    @property
    def relays_through_w(self) -> bool:
        """Whether errors travel back through W itself (transpose_relay.eqs: modes transpose and transpose_residual)."""
        return self.feedback in ("transpose", "transpose_residual")

    def synapse_kind(self, layer: int, inference: bool = False) -> SynapseKind:
        """Kind of the forward synapse W_layer (the transpose relay exists only for training builds)."""
        return "forward_transpose" if self.relays_through_w and layer >= 2 and not inference else "forward"

    def has_feedback_synapses(self, layer: int) -> bool:
        """Separate feedback synapses B_layer exist for layer >= 2 unless errors use W^T alone (transpose_residual:
        W^T and a fixed B, the residual)."""
        return layer >= 2 and self.feedback != "transpose"

    def recipe(self, kind: str) -> GroupRecipe:
        return self.table.layers.get(kind) or self.table.synapses[kind]

    def element_names(self, kind: str) -> list[str]:
        """The elements of ``kind``'s groups: the recipe's, encoder filled in, the precision's replacements made."""
        replace = self.table.precisions.get(self.precision, {})
        names = [name.format(encoder=self.encoder) for name in self.recipe(kind).elements]
        return [_replacement(replace.get(name, name), kind, name) for name in names]

    def group_elements(self, kind: str) -> list[Element]:
        return [self.elements[name] for name in self.element_names(kind)]

    def set_values(self, kind: str) -> dict[str, b2.Quantity]:
        """Values of element variables that this kind of group takes from the network's parameters."""
        return {variable: self.values[parameter] for variable, parameter in self.recipe(kind).set.items()}

    def kinds_in_use(self) -> list[str]:
        """The layer and synapse kinds a network of these sizes and feedback mode builds (training and inference)."""
        layers = range(len(self.sizes))
        kinds = [self.layer_kind(l, inference) for inference in (False, True) for l in layers]
        kinds += [self.synapse_kind(l, inference) for inference in (False, True) for l in layers[1:]]
        kinds += ["feedback" for l in layers if self.has_feedback_synapses(l)]
        return list(dict.fromkeys(kinds))

    def files(self) -> list[Path]:
        """The files this network is made of (sorted): the composition file, each element's ``.eqs`` and table, and
        the ``.eqs`` and table of each element a rule is taken from (``## rules SOURCE``). Other files of the folder
        (another precision's variants, another encoder's input) do not change it."""
        files = {self.path}
        for el in self.elements.values():
            files |= {el.eqs.path, el.table_path, *(p for rule in el.rules.values()
                                                     for p in (rule.path, rule.path.with_suffix(".yaml")))}
        return sorted(files)

    # ------------------------------------------------------------------ composed groups
    def layer_group(self, layer: int, inference: bool = False, arrays: dict | None = None) -> GroupSpec:
        """The composed arguments of layer ``layer``'s NeuronGroup; ``arrays`` gives the TimedArrays
        (:data:`TIMED_ARRAYS`) the elements may use (default: named placeholders, to describe or check)."""
        arrays = arrays or {name: f"<TimedArray {name}>" for name in TIMED_ARRAYS}
        kind = self.layer_kind(layer, inference)
        elements = self.group_elements(kind)
        used = set().union(*(el.table.external for el in elements))
        provided = self.constants() | {"n_slot": self.n_f if inference else self.n_slot, "layer": layer,
                                       "err_phase": self.err_phase(layer), "n_neurons": self.sizes[layer]}
        group = compose(elements, provided | {k: v for k, v in (arrays or {}).items() if k in used})
        group.initial_values |= self.set_values(kind)
        return group

    def synapse_group(self, kind: str, pre: GroupSpec, post: GroupSpec, inference: bool = False) -> GroupSpec:
        """The composed arguments of a Synapses object of ``kind`` from group ``pre`` to group ``post``.

        Brian2 resolves a synapse's pre/post subexpressions (e.g. eps_error_post) in the synapse's
        namespace: it gets the constants on which both groups agree; per-group constants that differ
        (layer, err_phase) are left out. It also gets the sizes of its two layers in one network, ``n_pre``
        and ``n_post`` (Brian2's N_pre and N_post count an ensemble's replicas too). An inference build keeps
        forward transmission only.
        """
        a, b = pre.namespace, post.namespace
        shared = {k: v for k, v in a.items() if k not in b or b[k] is v or _same(b[k], v)}
        shared |= {k: v for k, v in b.items() if k not in a}
        shared |= {"n_pre": a["n_neurons"], "n_post": b["n_neurons"]}
        group = compose(self.group_elements(kind), shared)
        group.initial_values |= self.set_values(kind)
        if inference:  # the learning pathways' events do not exist
            group.on_pre, group.on_post = {"pre": group.on_pre["pre"]}, {}
            group.pathway_events = {"pre": "spike"}
        return group


def _replacement(target: str | dict[str, str], kind: str, name: str) -> str:
    """The element that stands for ``name`` in a group of ``kind`` (a per-kind replacement keeps ``name`` elsewhere)."""
    return target if isinstance(target, str) else target.get(kind, name)


def _same(a, b) -> bool:
    try:
        return bool(np.all(a == b))
    except (TypeError, ValueError, b2.DimensionMismatchError):
        return False


@cache
def _read_table(path: Path, mtime_ns: int) -> tuple[CompositionTable, dict]:
    table, lines = read_yaml_model(path, CompositionTable, "composition file")
    for name, param in table.parameters.items():  # (dt is a Brian2 name, but these never reach a namespace)
        check_bounds(path, name, param, lines.get(("parameters", name)))
    for name, param in table.training.items():
        check_bounds(path, name, param, lines.get(("training", name)))
    for name in WHOLE_NUMBERS:
        if name not in table.parameters:
            raise ModelFileError(path, f"parameters: {name!r} is missing")
    for kind, recipe in {**table.layers, **table.synapses}.items():
        for variable, parameter in recipe.set.items():
            if parameter not in table.parameters:
                raise ModelFileError(path, f"{kind}.set.{variable}: {parameter!r} is not one of the parameters",
                                     lines.get(("layers", kind, "set", variable)))
    return table, lines


def _version(path: Path) -> int:
    """A key that changes when ``<element>.eqs``, its table or an element it takes rules (and their parameters) from
    changes (OSError if one is missing)."""
    sources = [path.parent / f"{source}{suffix}" for source in rule_sources(path) for suffix in (".eqs", ".yaml")]
    return sum(p.stat().st_mtime_ns for p in (path, path.with_suffix(".yaml"), *sources))


@cache
def _read_element(path: Path, version: int) -> Element:
    return load_element(path)


def fresh_element(name: str, directory: Path) -> Element:
    """``<directory>/<name>.eqs`` and its table, read once per file version; the caller may change ``values``."""
    path = directory / f"{name}.eqs"
    try:
        el = _read_element(path, _version(path))
    except OSError:
        return load_element(path)  # raises the loader's error naming the missing file
    return dataclasses.replace(el, values=dict(el.values))


@cache
def _units_checked(path: Path, version: int) -> None:
    check_units(_read_element(path, version))


def check_composition_units(composition: Composition) -> None:
    """Brian2's unit check of every element of ``composition`` (errors name the file and line, as
    ``biograd check`` does), once per file version in a process."""
    for el in composition.elements.values():
        _units_checked(el.eqs.path, _version(el.eqs.path))


def _override(path: Path, key: str, name: str, param: Parameter, text) -> b2.Quantity:
    try:
        value = parse_quantity(text)
    except ValueError as err:
        raise ModelFileError(path, f"{key}: {err}") from err
    if not finite(value):  # YAML's .nan and .inf, or a number past the float range such as 1e400
        raise ModelFileError(path, f"{key} = {text} is not a finite number")
    try:
        check_bounds(path, name, param, None, value)
    except ModelFileError as err:
        raise ModelFileError(path, f"{key}: {err.problem}") from err
    return value


def training_parameters(directory: Path | None = None) -> tuple[Path, dict[str, Parameter]]:
    """The composition file in ``directory`` (default: the model's equations) and its ``training:`` table."""
    path = Path(directory or equations_dir()) / f"{COMPOSITION}.yaml"
    if not path.is_file():
        raise ModelFileError(path, "composition file not found")
    return path, _read_table(path, path.stat().st_mtime_ns)[0].training


def load_composition(sizes: tuple[int, ...], feedback: str, encoder: str, params: dict[str, dict],
                     directory: Path | None = None, precision: str = FLOAT) -> Composition:
    """The composition in ``directory`` (default: the model's equations) with ``params`` applied, at ``precision``
    (``float`` or a precision of the file's ``precisions`` table)."""
    directory = Path(directory or equations_dir())
    path = directory / f"{COMPOSITION}.yaml"
    if not path.is_file():
        raise ModelFileError(path, "composition file not found")
    table, _ = _read_table(path, path.stat().st_mtime_ns)
    if precision != FLOAT and precision not in table.precisions:
        raise ModelFileError(path, f"model.precision: {precision!r} is not one of "
                             f"{', '.join([FLOAT, *table.precisions])} (precisions: in {path.name})")
    values = {name: p.quantity() for name, p in table.parameters.items()}
    recipes = {**table.layers, **table.synapses}
    shape = Composition(path, table, values, {}, tuple(sizes), feedback, encoder, precision)  # kinds, before elements
    names = list(dict.fromkeys(name for kind in shape.kinds_in_use() for name in shape.element_names(kind)))
    elements = {name: fresh_element(name, directory) for name in names}
    replace = table.precisions.get(precision, {})
    for kind in shape.kinds_in_use():  # a variant takes its learning rules from the float element (one definition)
        originals = [name.format(encoder=encoder) for name in shape.recipe(kind).elements]
        for original, variant in zip(originals, shape.element_names(kind), strict=True):
            if variant != original:
                float_element = fresh_element(original, directory)
                check_variant_rules(float_element, elements[variant])
                check_variant_parameters(float_element, elements[variant])
    for written, overrides in params.items():
        target = replace.get(written, written)  # a float element's overrides apply to its replacement everywhere
        element = target if isinstance(target, str) else written
        if element != COMPOSITION and element not in elements:
            raise ModelFileError(path, f"model.params.{written}: no element of that name in this network "
                                 f"(elements: {', '.join([COMPOSITION, *sorted(elements)])})")
        for name, text in overrides.items():
            key = f"model.params.{written}.{name}"
            if element == COMPOSITION:
                if name not in table.parameters:
                    raise ModelFileError(path, f"{key}: unknown parameter of {path.name} "
                                         f"({', '.join(table.parameters)})")
                values[name] = _override(path, key, name, table.parameters[name], text)
                continue
            el = elements[element]
            if name not in el.table.parameters:
                set_by = [f"{k}.set" for k, r in recipes.items() if name in r.set]
                hint = f"; it is set per layer in {path.name} ({', '.join(set_by)})" if set_by else \
                    f" ({', '.join(el.table.parameters) or 'it has none'})"
                raise ModelFileError(el.table_path, f"{key}: unknown parameter of {element}{hint}")
            el.values[name] = _override(el.table_path_of(name), key, name, el.table.parameters[name], text)
    for name in (*WHOLE_NUMBERS, *(n for n in LOIHI_NUMBERS if n in values)):
        if float(values[name]) != int(values[name]):
            raise ModelFileError(path, f"{name} = {values[name]} must be a whole number "
                                 f"({path.name} or model.params.{COMPOSITION}.{name})")
    codes = [int(values[k]) for k in ("slot_infer", "slot_train")] + [int(values["slot_sleep"]) + 2]
    if len(set(codes)) < 3 or codes[2] < max(codes[:2]):
        raise ModelFileError(path, f"slot codes overlap: slot_infer and slot_train must differ and lie below "
                             f"slot_sleep + 2 (sleep for W_2), got {codes}")
    return dataclasses.replace(shape, values=values, elements=elements)
