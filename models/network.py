"""The BioGrad network as Brian2 objects, composed from the element files in ``equations/``.

One NeuronGroup per layer (``layer0`` input .. ``layerL`` output), forward Synapses
``forward1..forwardL`` (W_l) and, unless feedback is ``transpose``, feedback Synapses
``feedback2..feedbackL`` (B_l runs from layer l to layer l-1). Object names are lower case:
brian2cuda reads run_args value files under lower-cased names (:func:`cuda.check_run_arg_names`).
Time is cut into slots of ``spec.n_slot`` steps; what every slot does comes from the
TimedArray ``slot_kind`` (see ``equations/schedule.eqs``), the sample it shows from the
TimedArrays ``stimulus`` and ``target`` (one row per slot). A run of ``n_slots`` slots is one
*chunk*; between chunks only arrays change (weights, TimedArray values, learning rates), so a
cpp_standalone build is compiled once and rerun with ``run_args``. An ``inference`` build has
slots of ``n_f`` steps and only the forward elements (no error events, feedback or learning).

Per slot, the groups record (before the slot-start reset) each layer's rate ``x_trace`` and
forward input ``A_soma``, the hidden layers' apical potential ``d_apical``, and in a training
build the spikes ``n_spikes`` (any phase), signed error events ``n_error`` and sleep-rule events
``n_sleep_events`` of the slot; the last slot is read from the final state.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import brian2 as b2
import numpy as np
from brian2.devices.cpp_standalone.device import CPPStandaloneDevice
from brian2.devices.device import all_devices

from biograd.elements import Element, GroupSpec, compose, load_element
from biograd.errors import ModelFileError
from biograd.models import cuda
from biograd.models.schedule import INFER
from biograd.models.spec import NetworkSpec
from biograd.params import check_bounds
from biograd.units import parse_quantity

DT = 1 * b2.ms
RECORDED = {"d_apical": "apical", "n_spikes": "spikes", "n_error": "errors",  # optional per-slot variables
            "n_sleep_events": "sleep_events", "g_soma": "gates"}
SEED_VARIABLE = "BIOGRAD_CHUNK_SEED"
# Standalone binaries seed their generators from std::random_device unless told otherwise; this
# reseeds them, right before the simulation, from the seed run_chunk passes in the environment.
_RESEED_FROM_ENVIRONMENT = f"""
if (const char* _chunk_seed = std::getenv("{SEED_VARIABLE}")) {{
    for (size_t _g = 0; _g < brian::_random_generators.size(); _g++)
        brian::_random_generators[_g].seed(std::strtoul(_chunk_seed, nullptr, 10) + _g);
}}
"""


STANDALONE = ("cpp_standalone", "cuda_standalone")  # compiled once, rerun with run_args


def use_backend(backend: str, directory: Path | None = None) -> None:
    """Where Brian2 runs: ``cpp_standalone`` or ``cuda_standalone`` (compiled once into ``directory``,
    rerun with run_args; see :mod:`biograd.models.cuda`) or the runtime device with code generation
    target ``numpy`` or ``cython`` (for debugging)."""
    if backend in STANDALONE:
        if backend == "cuda_standalone":
            cuda.configure(directory)
        options = {"build_on_run": False, "directory": str(directory)}
        b2.set_device(backend, **options)
        b2.device.reinit()  # forget the objects of an earlier build in this process
        b2.device.activate(**options)
    elif backend in ("numpy", "cython"):
        b2.set_device("runtime")
        b2.prefs.codegen.target = backend
    else:
        raise ValueError(f"unknown backend {backend!r} (cpp_standalone, cuda_standalone, numpy or cython)")


@dataclass
class PlasticState:
    """What learning changes and a chunk carries on: W[l-1] = W_l (N_l x N_{l-1}),
    B[l] = B_l (N_{l-1} x N_l) for layers with feedback synapses, bias[l] = sleep bias of layer l."""

    W: list[np.ndarray]
    B: dict[int, np.ndarray]
    bias: dict[int, np.ndarray]

    def named(self) -> dict[str, np.ndarray]:
        """Every array by name: W1.., B2.., bias1.. (checkpoint keys, health-check messages)."""
        arrays = {f"W{l}": w for l, w in enumerate(self.W, start=1)} | {f"B{l}": b for l, b in self.B.items()}
        return arrays | {f"bias{l}": v for l, v in self.bias.items()}

    @classmethod
    def from_named(cls, arrays) -> PlasticState:
        """Inverse of :meth:`named` (``arrays`` may hold other keys too)."""
        W = [arrays[f"W{l}"] for l in range(1, 1 + sum(k.startswith("W") for k in arrays))]
        B = {int(k[1:]): arrays[k] for k in arrays if k.startswith("B")}
        return cls(W, B, {int(k[4:]): arrays[k] for k in arrays if k.startswith("bias")})


@dataclass
class ChunkResult:
    """What one chunk recorded per layer and slot (training builds also count spikes and error events)."""

    rates: list[np.ndarray]  # rates[l][slot, neuron] = x_trace
    inputs: list[np.ndarray]  # inputs[l][slot, neuron] = A_soma (l >= 1)
    apical: dict[int, np.ndarray] = field(default_factory=dict)  # hidden l -> d_apical[slot, neuron]
    spikes: dict[int, np.ndarray] = field(default_factory=dict)  # l -> n_spikes[slot, neuron], any phase
    errors: dict[int, np.ndarray] = field(default_factory=dict)  # l -> n_error[slot, neuron], signed events
    sleep_events: dict[int, np.ndarray] = field(default_factory=dict)  # l >= 1 -> n_sleep_events[slot, neuron]
    gates: dict[int, np.ndarray] = field(default_factory=dict)  # l >= 1 -> g_soma[slot, neuron], the model's own gate

    @classmethod
    def concatenate(cls, results: list[ChunkResult]) -> ChunkResult:
        """The slots of several (at least one) results one after the other."""
        first, join = results[0], np.concatenate
        return cls([join([r.rates[l] for r in results]) for l in range(len(first.rates))],
                   [join([r.inputs[l] for r in results]) for l in range(len(first.inputs))],
                   *({l: join([getattr(r, name)[l] for r in results]) for l in getattr(first, name)}
                     for name in RECORDED.values()))

    def predictions(self) -> np.ndarray:
        """Predicted class per slot: highest output rate, ties broken by the forward input."""
        rates, inputs = self.rates[-1], self.inputs[-1]
        return np.lexsort((inputs.T, rates.T), axis=0)[-1] if rates.size else np.zeros(0, np.int64)


def _load_elements(names: list[str], spec: NetworkSpec, directory: Path | None) -> list[Element]:
    elements = [load_element(n, directory) for n in names]
    for el in elements:
        for name, text in spec.params.get(el.name, {}).items():
            if name not in el.table.parameters:
                raise ModelFileError(el.table_path, f"override of unknown parameter {name!r} (params.{el.name})")
            value = parse_quantity(text)
            check_bounds(el.table_path, name, el.table.parameters[name], None, value)
            el.values[name] = value
    return elements


def _delete_run_args_files(device) -> None:
    """Delete the value files of the last run's ``run_args`` (``static_arrays/init_<name>_<md5>.dat``).

    Brian2 keeps them as a cache keyed by content, but a training chunk's weights and stimuli never
    repeat: left alone they grow by about 10 MB per chunk (3.5 GB for a 6-epoch mnist_1h run).
    """
    device.delete(code=False, data=False, run_args=True, directory=False)
    for name in device.run_args_arrays:  # the locks Brian2 took while writing them
        Path(device.project_dir, "static_arrays", f"{name}.lock").unlink(missing_ok=True)


def _same(a, b) -> bool:
    try:
        return bool(np.all(a == b))
    except (TypeError, ValueError, b2.DimensionMismatchError):
        return False


class BioGradNetwork:
    """Builds the Brian2 objects for ``spec`` and runs chunks of ``n_slots`` slots.

    Works on the runtime device (numpy/cython) and on cpp_standalone: in standalone mode the
    first :meth:`run_chunk` builds the project once and every chunk is a rerun with ``run_args``.
    """

    def __init__(self, spec: NetworkSpec, n_slots: int, *, seed: int = 0, equations: Path | None = None,
                 inference: bool = False, report: str | None = None):
        self.spec, self.n_slots, self.seed, self.inference, self.report = spec, n_slots, seed, inference, report
        self.standalone = isinstance(b2.get_device(), CPPStandaloneDevice)  # cuda_standalone is one too
        self.on_gpu = b2.get_device() is all_devices.get("cuda_standalone")
        L, sizes = spec.n_layers, spec.sizes
        self.slot_steps = spec.n_f if inference else spec.n_slot
        b2.defaultclock.dt = DT
        slot_dt = self.slot_steps * DT
        input_rows = n_slots * self.slot_steps if spec.encoder == "events" else n_slots
        self.slot_kind = b2.TimedArray(np.zeros(n_slots), dt=slot_dt, name="slot_kind")
        self.stimulus = b2.TimedArray(np.zeros((input_rows, sizes[0])),
                                      dt=DT if spec.encoder == "events" else slot_dt, name="stimulus")
        self.target = b2.TimedArray(np.zeros((n_slots, sizes[-1])), dt=slot_dt, name="target")
        common = {"n_slot": self.slot_steps, "n_f": spec.n_f, "n_e": spec.n_e, "slot_kind": self.slot_kind}
        inputs = {"stimulus": self.stimulus, "event_counts": self.stimulus, "target": self.target}
        self.layers: list[b2.NeuronGroup] = []
        self.specs: list[GroupSpec] = []
        objects: list = []
        for layer in range(L + 1):
            elements = _load_elements(spec.elements(layer, inference), spec, equations)
            used = set().union(*(el.table.external for el in elements))
            provided = common | {"layer": layer, "err_phase": spec.err_phase(layer)} | \
                {k: v for k, v in inputs.items() if k in used}
            group_spec = compose(elements, provided)
            group = b2.NeuronGroup(sizes[layer], **group_spec.neuron_kwargs(), name=f"layer{layer}")
            for event, code in group_spec.on_event.items():
                group.run_on_event(event, code)
            if group_spec.slot_start:
                objects.append(group.run_regularly(group_spec.slot_start, dt=slot_dt, when="start",
                                                   name=f"layer{layer}_slot_start"))
            for name, value in group_spec.initial_values.items():
                setattr(group, name, value)
            if "gain_error" in group.variables:
                group.gain_error = spec.gain_output if layer == L else spec.gain_hidden
            self.layers.append(group)
            self.specs.append(group_spec)
        self.forward: list[b2.Synapses] = [None]  # index = layer
        self.feedback: dict[int, b2.Synapses] = {}
        for layer in range(1, L + 1):
            syn_spec = compose(_load_elements(spec.synapse_elements(layer, inference), spec, equations),
                               self._shared_namespace(layer - 1, layer))
            if inference:  # forward transmission only: the learning pathways' events do not exist
                syn_spec.on_pre, syn_spec.on_post = {"pre": syn_spec.on_pre["pre"]}, {}
                syn_spec.pathway_events = {"pre": "spike"}
            syn = b2.Synapses(self.layers[layer - 1], self.layers[layer], **syn_spec.synapse_kwargs(),
                              name=f"forward{layer}")
            syn.connect()
            for name, value in syn_spec.initial_values.items():
                setattr(syn, name, value)
            self.forward.append(syn)
            if spec.has_feedback_synapses(layer) and not inference:
                fb_spec = compose(_load_elements(["feedback_synapse"], spec, equations),
                                  self._shared_namespace(layer, layer - 1))
                fb = b2.Synapses(self.layers[layer], self.layers[layer - 1], **fb_spec.synapse_kwargs(),
                                 name=f"feedback{layer}")
                fb.connect()
                for name, value in fb_spec.initial_values.items():
                    setattr(fb, name, value)
                self.feedback[layer] = fb
        self.monitors = []
        for layer, group in enumerate(self.layers):
            variables = ["x_trace"] + (["A_soma"] if layer else []) + [v for v in RECORDED if v in group.variables]
            self.monitors.append(b2.StateMonitor(group, variables, record=True, dt=slot_dt, when="start",
                                                 order=-1, name=f"layer{layer}_slots"))
        self.network = b2.Network(*self.layers, *objects, *self.forward[1:], *self.feedback.values(),
                                  *self.monitors)
        used = {id(ns) for group in self.layers for ns in group.namespace.values() if isinstance(ns, b2.TimedArray)}
        self._used_arrays = [name for name in ("slot_kind", "stimulus", "target")  # an inference build has no target
                             if id(getattr(self, name)) in used]
        self.initial_state = self.random_state(np.random.default_rng(seed))
        self.state = self.initial_state
        self._write_state(self.initial_state)
        self._built = False
        if not self.standalone:
            self.network.store("initial")

    def _shared_namespace(self, pre: int, post: int) -> dict:
        """Constants a synapse needs to evaluate its pre/post subexpressions (e.g. eps_error_post).

        Brian2 resolves those in the synapse's namespace: it gets the constants on which both
        groups agree; per-group constants that differ (layer, err_phase) are left out.
        """
        a, b = self.specs[pre].namespace, self.specs[post].namespace
        shared = {k: v for k, v in a.items() if k not in b or b[k] is v or _same(b[k], v)}
        shared |= {k: v for k, v in b.items() if k not in a}
        return shared

    # ------------------------------------------------------------------ state
    def random_state(self, rng: np.random.Generator) -> PlasticState:
        """W_l ~ N(0, init_scale^2 * 2/N_{l-1}); B_l drawn independently with the same scale; bias 0."""
        sizes, scale = self.spec.sizes, self.spec.init_scale
        W = [rng.normal(0, scale * np.sqrt(2 / sizes[l - 1]), (sizes[l], sizes[l - 1]))
             for l in range(1, len(sizes))]
        B = {l: rng.normal(0, scale * np.sqrt(2 / sizes[l - 1]), (sizes[l - 1], sizes[l])) for l in self.feedback}
        bias = {l: np.zeros(sizes[l]) for l in range(1, len(sizes))}
        return PlasticState(W, B, bias)

    def _views(self, state: PlasticState) -> dict:
        """Brian2 variables -> flat arrays. Synapses are all-to-all, created in (i, j) order."""
        views = {self.forward[l].w: np.ascontiguousarray(w.T).ravel() for l, w in enumerate(state.W, start=1)}
        views |= {self.feedback[l].b: np.ascontiguousarray(b.T).ravel() for l, b in state.B.items()
                  if l in self.feedback}  # an inference build has no feedback synapses
        views |= {self.layers[l].b_soma: np.asarray(v, float) for l, v in state.bias.items()}
        return views

    def _write_state(self, state: PlasticState) -> None:
        for view, values in self._views(state).items():
            view[:] = values

    def _read_state(self) -> PlasticState:
        sizes = self.spec.sizes
        W = [np.asarray(self.forward[l].w[:]).reshape(sizes[l - 1], sizes[l]).T.copy()
             for l in range(1, len(sizes))]
        B = {l: np.asarray(fb.b[:]).reshape(sizes[l], sizes[l - 1]).T.copy() for l, fb in self.feedback.items()}
        bias = {l: np.asarray(self.layers[l].b_soma[:]).copy() for l in range(1, len(sizes))}
        return PlasticState(W, B, bias)

    # ------------------------------------------------------------------ running
    def compile(self) -> None:
        """Standalone: generate and compile the project once (later chunks rerun it); runtime: nothing."""
        if self.standalone and not self._built:
            device = b2.get_device()
            device.insert_code("main", cuda.reseed_code(SEED_VARIABLE) if self.on_gpu else _RESEED_FROM_ENVIRONMENT)
            self.network.run(self.n_slots * self.slot_steps * DT, namespace={}, report=self.report)
            device.build(**(dict(device.build_options) | {"run": False}))
            self._built = True

    def run_chunk(self, kinds: np.ndarray, stimulus: np.ndarray, targets: np.ndarray,
                  state: PlasticState | None = None, *, eta: float | None = None, eta_sleep: float | None = None,
                  seed: int | None = None, results_directory: str | None = None) -> ChunkResult:
        """Run ``len(kinds) <= n_slots`` slots from ``state`` (default: where the last chunk ended).

        ``stimulus`` has one row per slot (pixel intensities in [0, 1]) or, for the events
        encoder, one row per time step; ``targets`` one row per slot. Slots beyond ``len(kinds)``
        are idle inference slots without input. The state after the chunk is ``self.state``.
        ``eta`` and ``eta_sleep`` (default: the build's values) set the learning rates of W and
        B for this chunk without a new build. ``seed`` (default: the build's seed) seeds the
        random numbers of this chunk, on the runtime device through ``brian2.seed`` and in
        standalone mode through the environment variable read by the compiled binary, so that
        every chunk is reproducible on its own.
        """
        n = len(kinds)
        if n > self.n_slots:
            raise ValueError(f"chunk of {n} slots exceeds the build size n_slots={self.n_slots}")
        state = self.state if state is None else state
        values = {"slot_kind": np.full(self.n_slots, INFER, float), "stimulus": np.zeros(self.stimulus.values.shape),
                  "target": np.zeros(self.target.values.shape)}
        values["slot_kind"][:n] = kinds
        values["stimulus"][: len(stimulus)] = stimulus
        values["target"][:n] = targets
        if self.standalone:
            run_args = {getattr(self, name): values[name] for name in self._used_arrays} | self._views(state)
            run_args |= dict(self._rates(eta, eta_sleep))
            if self.on_gpu and not self._built:  # names are fixed by the build: check once, before nvcc
                cuda.check_run_arg_names(run_args)
            self.compile()
            os.environ[SEED_VARIABLE] = str(self.seed if seed is None else seed)
            try:
                b2.get_device().run(run_args=run_args, results_directory=results_directory)
            finally:
                del os.environ[SEED_VARIABLE]
                _delete_run_args_files(b2.get_device())
        else:
            self.network.restore("initial")
            b2.seed(self.seed if seed is None else seed)
            self._replace_timed_arrays(values | {"event_counts": values["stimulus"]})
            self._write_state(state)
            for variable, value in self._rates(eta, eta_sleep):
                variable[:] = value
            self.network.run(n * self.slot_steps * DT, namespace={}, report=self.report)
        self.state = self._read_state()
        return self._collect(n, self.n_slots if self.standalone else n)

    def _rates(self, eta: float | None, eta_sleep: float | None) -> list[tuple]:
        """(variable, value) for the learning rates a chunk overrides."""
        rates = [(syn.eta, eta) for syn in self.forward[1:]] if eta is not None else []
        return rates + ([(fb.eta_sleep, eta_sleep) for fb in self.feedback.values()] if eta_sleep is not None else [])

    def _replace_timed_arrays(self, values: dict[str, np.ndarray]) -> None:
        """Runtime device: give every group new TimedArrays with the chunk's values."""
        old = {"slot_kind": self.slot_kind, "stimulus": self.stimulus, "event_counts": self.stimulus,
               "target": self.target}
        for group in self.layers:
            for name, array in values.items():
                if name in group.namespace:
                    group.namespace[name] = b2.TimedArray(array, dt=old[name].dt * b2.second)

    def _collect(self, n: int, n_run: int) -> ChunkResult:
        """Rows for the first ``n`` of ``n_run`` slots; slot m is recorded at the start of slot m+1."""
        result = ChunkResult([], [])
        for layer, group in enumerate(self.layers):
            result.rates.append(self._per_slot(layer, "x_trace", n, n_run))
            result.inputs.append(self._per_slot(layer, "A_soma", n, n_run) if layer else np.zeros((n, 0)))
            for var, attribute in RECORDED.items():
                if var in group.variables:
                    getattr(result, attribute)[layer] = self._per_slot(layer, var, n, n_run)
        return result

    def _per_slot(self, layer: int, var: str, n: int, n_run: int) -> np.ndarray:
        recorded = np.asarray(getattr(self.monitors[layer], var)).T  # (times, neurons)
        if n < n_run:
            return recorded[1 : n + 1]
        return np.concatenate([recorded[1:n], np.asarray(getattr(self.layers[layer], var)[:])[None, :]])
