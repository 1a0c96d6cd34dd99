"""The BioGrad network as Brian2 objects, composed from the equation files in ``equations/``.

One NeuronGroup per layer (``layer0`` input .. ``layerL`` output), forward Synapses
``forward1..forwardL`` (W_l) and, unless feedback is ``transpose``, feedback Synapses
``feedback2..feedbackL`` (B_l runs from layer l to layer l-1); what each group is made of comes
from the composition file ``equations/network.yaml`` (:mod:`biograd.models.composition`).
Object names are lower case: brian2cuda reads run_args value files under lower-cased names
(:func:`cuda.check_run_arg_names`). Time is cut into slots of ``n_slot`` time steps;
what every slot does comes from the TimedArray ``slot_kind`` (see ``equations/schedule.eqs``),
the sample it shows from the TimedArrays ``stimulus`` and ``target`` (one row per slot). A run
of ``slots`` slots is one *chunk*; between chunks only arrays change (weights, TimedArray values,
chunk parameters such as the learning rates), so a standalone build is compiled once and rerun
with ``run_args`` (:mod:`biograd.models.runners`: one runner per device). An ``inference``
build has slots of ``n_f`` steps and only the forward elements (no error events, feedback or learning).

Per slot, the groups record (before the slot-start reset) each layer's rate ``x_trace`` and
forward input ``A_soma``, the hidden layers' apical potential ``d_apical``, and in a training
build the spikes ``n_spikes`` (any phase), signed error events ``n_error`` and sleep-rule events
``n_sleep_events`` of the slot; the last slot is read from the final state.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import brian2 as b2
import numpy as np

from biograd.models.composition import TIMED_ARRAYS
from biograd.models.elements import GroupSpec
from biograd.models.runners import runner_for_device
from biograd.models.spec import NetworkSpec

RECORDED = {"d_apical": "apical", "n_spikes": "spikes", "n_error": "errors",  # optional per-slot variables
            "n_sleep_events": "sleep_events", "g_soma": "gates"}


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


def synapse_count(spec: NetworkSpec) -> int:
    """Synapses of a training build: all-to-all W_l, and B_l where the composition has feedback synapses."""
    sizes, has_feedback = spec.sizes, spec.composition.has_feedback_synapses
    return sum(sizes[l] * sizes[l - 1] * (1 + has_feedback(l)) for l in range(1, len(sizes)))


def estimated_bytes(spec: NetworkSpec, slots: int) -> int:
    """Memory of one build of ``slots`` slots, about: 48 bytes per synapse (the weight, its two int32
    indices, the copies in Python and in a run_args value file, the compiled project's array) and, per
    slot and neuron, 8 bytes for each of the (at most 7) recorded variables and the stimulus."""
    return 48 * synapse_count(spec) + 8 * 8 * slots * sum(spec.sizes)


class BioGradNetwork:
    """Builds the Brian2 objects for ``spec`` and runs chunks of up to ``slots`` slots.

    Works on every device through its runner (:func:`~biograd.models.runners.runner_for_device`):
    on the runtime device each chunk is run from Python, in standalone mode the first chunk builds
    the project once and every chunk is a rerun with ``run_args``. ``equations`` composes the
    network from the equation files of another folder (e.g. a run directory's copy).
    """

    def __init__(self, spec: NetworkSpec, slots: int, *, seed: int = 0, equations: Path | None = None,
                 inference: bool = False, report: str | None = None):
        spec = spec.using(equations) if equations is not None else spec
        self.spec, self.slots, self.seed, self.inference, self.report = spec, slots, seed, inference, report
        self.composition = composition = spec.composition
        self.runner = runner_for_device()
        L, sizes = spec.n_layers, spec.sizes
        self.dt = composition.dt
        self.n_slot = composition.n_f if inference else composition.n_slot
        b2.defaultclock.dt = self.dt
        slot_dt = self.n_slot * self.dt
        input_rows = slots * self.n_slot if spec.encoder == "events" else slots
        self.slot_kind = b2.TimedArray(np.zeros(slots), dt=slot_dt, name="slot_kind")
        self.stimulus = b2.TimedArray(np.zeros((input_rows, sizes[0])),
                                      dt=self.dt if spec.encoder == "events" else slot_dt, name="stimulus")
        self.target = b2.TimedArray(np.zeros((slots, sizes[-1])), dt=slot_dt, name="target")
        arrays = dict(zip(TIMED_ARRAYS, (self.slot_kind, self.stimulus, self.stimulus, self.target), strict=True))
        self.layers: list[b2.NeuronGroup] = []
        self.specs: list[GroupSpec] = []
        self.chunk_parameters: dict[str, list[tuple[b2.Variable, float]]] = {}
        objects: list = []
        for layer in range(L + 1):
            group_spec = composition.layer_group(layer, inference, arrays)
            group = b2.NeuronGroup(sizes[layer], **group_spec.neuron_kwargs(), name=f"layer{layer}")
            for event, code in group_spec.on_event.items():
                group.run_on_event(event, code)
            if group_spec.slot_start:
                objects.append(group.run_regularly(group_spec.slot_start, dt=slot_dt, when="start",
                                                   name=f"layer{layer}_slot_start"))
            self._initialise(group, group_spec.initial_values)
            self.layers.append(group)
            self.specs.append(group_spec)
        self.forward: list[b2.Synapses] = [None]  # index = layer
        self.feedback: dict[int, b2.Synapses] = {}
        for layer in range(1, L + 1):
            syn_spec = composition.synapse_group(composition.synapse_kind(layer, inference), self.specs[layer - 1],
                                                 self.specs[layer], inference)
            syn = b2.Synapses(self.layers[layer - 1], self.layers[layer], **syn_spec.synapse_kwargs(),
                              name=f"forward{layer}")
            syn.connect()
            self._initialise(syn, syn_spec.initial_values)
            self.forward.append(syn)
            if composition.has_feedback_synapses(layer) and not inference:
                fb_spec = composition.synapse_group("feedback", self.specs[layer], self.specs[layer - 1])
                fb = b2.Synapses(self.layers[layer], self.layers[layer - 1], **fb_spec.synapse_kwargs(),
                                 name=f"feedback{layer}")
                fb.connect()
                self._initialise(fb, fb_spec.initial_values)
                self.feedback[layer] = fb
        self.monitors = []
        for layer, group in enumerate(self.layers):
            variables = ["x_trace"] + (["A_soma"] if layer else []) + [v for v in RECORDED if v in group.variables]
            self.monitors.append(b2.StateMonitor(group, variables, record=True, dt=slot_dt, when="start",
                                                 order=-1, name=f"layer{layer}_slots"))
        self.network = b2.Network(*self.layers, *objects, *self.forward[1:], *self.feedback.values(),
                                  *self.monitors)
        used = {id(ns) for group in self.layers for ns in group.namespace.values() if isinstance(ns, b2.TimedArray)}
        self._used_arrays = [array for array in (self.slot_kind, self.stimulus, self.target)  # inference: no target
                             if id(array) in used]
        self.initial_state = self.random_state(np.random.default_rng(seed))
        self.state = self.initial_state
        self._write_state(self.initial_state)
        self.runner.prepare(self.network)

    def _initialise(self, group, values: dict[str, b2.Quantity]) -> None:
        """Initial values of ``group``'s variables; the shared constants among them are chunk parameters,
        set again before every chunk (their build values unless a chunk asks for others)."""
        for name, value in values.items():
            setattr(group, name, value)
            variable = group.variables[name]
            if variable.scalar and variable.constant:
                self.chunk_parameters.setdefault(name, []).append((getattr(group, name), float(value)))

    # ------------------------------------------------------------------ state
    def random_state(self, rng: np.random.Generator) -> PlasticState:
        """W_l ~ N(0, init_scale^2 * 2/N_{l-1}); B_l drawn independently with the same scale; bias 0."""
        sizes, scale = self.spec.sizes, float(self.composition.values["init_scale"])
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

    def _parameter_values(self, values: dict[str, float]) -> dict:
        """Chunk parameter variables -> this chunk's values (``values`` by name, else the build's)."""
        if unknown := set(values) - set(self.chunk_parameters):
            raise KeyError(f"no chunk parameter {', '.join(sorted(unknown))} in this build "
                           f"(chunk parameters: {', '.join(sorted(self.chunk_parameters))})")
        return {variable: values.get(name, default) for name, pairs in self.chunk_parameters.items()
                for variable, default in pairs}

    # ------------------------------------------------------------------ running
    @property
    def chunk_duration(self) -> b2.Quantity:
        return self.slots * self.n_slot * self.dt

    def compile(self) -> None:
        """Standalone: generate and compile the project once (later chunks rerun it); runtime: nothing."""
        self.runner.compile(self.network, self.chunk_duration, self.report)

    def run_chunk(self, kinds: np.ndarray, stimulus: np.ndarray, targets: np.ndarray,
                  state: PlasticState | None = None, *, values: dict[str, float] | None = None,
                  seed: int | None = None, results_directory: str | None = None) -> ChunkResult:
        """Run ``len(kinds) <= slots`` slots from ``state`` (default: where the last chunk ended).

        ``stimulus`` has one row per slot (pixel intensities in [0, 1]) or, for the events
        encoder, one row per time step; ``targets`` one row per slot (1 for the label's output
        neuron). Slots beyond ``len(kinds)`` are idle inference slots without input. The state
        after the chunk is ``self.state``. ``values`` sets chunk parameters by name for this
        chunk (e.g. ``{"eta": 0.01, "eta_sleep": 0.001}``; the others keep their build values).
        ``seed`` (default: the build's seed) seeds the random numbers of this chunk, so that every
        chunk is reproducible on its own.
        """
        n = len(kinds)
        if n > self.slots:
            raise ValueError(f"chunk of {n} slots exceeds the build size of {self.slots} slots")
        state = self.state if state is None else state
        arrays = {self.slot_kind: np.full(self.slots, self.composition.slot_infer, float),
                  self.stimulus: np.zeros(self.stimulus.values.shape), self.target: np.zeros(self.target.values.shape)}
        arrays[self.slot_kind][:n] = kinds
        arrays[self.stimulus][: len(stimulus)] = stimulus
        arrays[self.target][:n] = targets
        variables = self._views(state) | self._parameter_values(values or {})
        ran = self.slots if self.runner.runs_whole_build else n
        self.runner.run(self.network, ran * self.n_slot * self.dt,
                        {array: arrays[array] for array in self._used_arrays}, variables,
                        self.seed if seed is None else seed, self.report, results_directory)
        self.state = self._read_state()
        return self._collect(n, ran)

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
