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
with ``run_args`` (:mod:`biograd.models.runners`: one runner per backend). An ``inference``
build has slots of ``n_f`` steps and only the forward elements (no error events, feedback or learning).

An *ensemble* (``seed`` a list of K seeds) is K independent networks in one build, side by side: every
group holds K x N neurons (replica k owns neurons k*N .. (k+1)*N - 1), the synapses connect each
replica's block only to its own (block-diagonal), the TimedArrays ``stimulus`` and ``target`` have one
column block per replica, and ``slot_kind`` is shared (the replicas follow one schedule). Each replica has
its own weights (initialised from its own seed), input, teacher and, for the chunk parameters named in
``varied``, its own values (those variables become per-neuron/per-synapse constants). Without random
numbers in the model (regular input code, no dither, no sleep noise) replica k computes exactly what a
network of its own would; random numbers come from the build's one generator, so there replica k is
the same model with other draws.

Per slot, the groups record (before the slot-start reset) each layer's rate ``x_trace`` and
forward input ``A_soma``, the hidden layers' apical potential ``d_apical``, and in a training
build the spikes ``n_spikes`` (any phase), signed error events ``n_error`` and sleep-rule events
``n_sleep_events`` of the slot; the last slot is read from the final state. Only when asked (``spikes``), EventMonitors
also record the times of a few neurons' spikes and signed error events (:data:`SPIKE_EVENTS`) in every chunk.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import brian2 as b2
import numpy as np

from biograd.models.backend import Backend
from biograd.models.composition import TIMED_ARRAYS
from biograd.models.elements import GroupSpec
from biograd.models.spec import NetworkSpec

RECORDED = {"d_apical": "apical", "n_spikes": "spikes", "n_error": "errors",  # optional per-slot variables
            "n_sleep_events": "sleep_events", "g_soma": "gates"}
SPIKE_EVENTS = ("spike", "err_pos", "err_neg")  # events a build with ``spikes`` records, where a layer has them


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


def estimated_bytes(spec: NetworkSpec, slots: int, replicas: int = 1) -> int:
    """Memory of one build of ``slots`` slots, about: 48 bytes per synapse (the weight, its two int32
    indices, the copies in Python and in a run_args value file, the compiled project's array) and, per
    slot and neuron, 8 bytes for each of the (at most 7) recorded variables and the stimulus; times the
    ensemble's ``replicas``."""
    return replicas * (48 * synapse_count(spec) + 8 * 8 * slots * sum(spec.sizes))


class BioGradNetwork:
    """Builds the Brian2 objects for ``spec`` and runs chunks of up to ``slots`` slots.

    Works on every backend through its runner (``backend.runner()``, :mod:`biograd.models.backend`; default:
    the backend of Brian2's active device, :meth:`Backend.active`): on the runtime device each chunk is run
    from Python, in standalone mode the first chunk builds the project once and every chunk is a rerun with
    ``run_args``. ``equations`` composes the network from the equation files of another folder (e.g. a run
    directory's copy). A list of seeds builds an ensemble, one replica per seed (module docstring); ``varied``
    names the chunk parameters whose values may differ between its replicas. ``spikes`` (layer -> n) adds
    EventMonitors on the first n neurons of those layers (of the first replica), one per event of
    :data:`SPIKE_EVENTS` the layer has (:meth:`spike_times`); without it the build has none.
    """

    def __init__(self, spec: NetworkSpec, slots: int, *, seed: int | Sequence[int] = 0, equations: Path | None = None,
                 inference: bool = False, report: str | None = None, varied: Collection[str] = (),
                 backend: Backend | None = None, spikes: dict[int, int] | None = None):
        spec = spec.using(equations) if equations is not None else spec
        self.seeds = [int(seed)] if np.ndim(seed) == 0 else [int(s) for s in seed]
        if not self.seeds:
            raise ValueError("an ensemble needs at least one seed")
        self.replicas = K = len(self.seeds)
        self.seed = self.seeds[0]  # the build's chunk seed, unless a chunk gives one
        self.spec, self.slots, self.inference, self.report = spec, slots, inference, report
        self.varied = set(varied) if K > 1 else set()
        declared = set(spec.composition.chunk_parameters())
        if unknown := self.varied - declared:
            raise KeyError(f"varied: no chunk parameter {', '.join(sorted(unknown))} in this model "
                           f"(chunk parameters: {', '.join(sorted(declared))})")
        self.composition = composition = spec.composition
        self.backend = backend or Backend.active()
        self.runner = self.backend.runner()
        L, sizes = spec.n_layers, spec.sizes
        self.dt = composition.dt
        self.n_slot = composition.n_f if inference else composition.n_slot
        b2.defaultclock.dt = self.dt
        slot_dt = self.n_slot * self.dt
        input_rows = slots * self.n_slot if spec.encoder == "events" else slots
        self.slot_kind = b2.TimedArray(np.zeros(slots), dt=slot_dt, name="slot_kind")
        self.stimulus = b2.TimedArray(np.zeros((input_rows, K * sizes[0])),
                                      dt=self.dt if spec.encoder == "events" else slot_dt, name="stimulus")
        self.target = b2.TimedArray(np.zeros((slots, K * sizes[-1])), dt=slot_dt, name="target")
        arrays = dict(zip(TIMED_ARRAYS, (self.slot_kind, self.stimulus, self.stimulus, self.target), strict=True))
        self.layers: list[b2.NeuronGroup] = []
        self.specs: list[GroupSpec] = []
        self.chunk_parameters: dict[str, list[tuple[b2.Variable, float, int]]] = {}  # (view, build value, per replica)
        objects: list = []
        for layer in range(L + 1):
            group_spec = composition.layer_group(layer, inference, arrays).unshared(self.varied)
            group = b2.NeuronGroup(K * sizes[layer], **group_spec.neuron_kwargs(), name=f"layer{layer}")
            self.runner.adopt(group)
            for event, code in group_spec.on_event.items():
                group.run_on_event(event, code)
            if group_spec.slot_start:
                objects.append(group.run_regularly(group_spec.slot_start, dt=slot_dt, when="start",
                                                   name=f"layer{layer}_slot_start"))
            self._initialise(group, group_spec.initial_values, sizes[layer])
            self.layers.append(group)
            self.specs.append(group_spec)
        self.forward: list[b2.Synapses] = [None]  # index = layer
        self.feedback: dict[int, b2.Synapses] = {}
        for layer in range(1, L + 1):
            syn_spec = composition.synapse_group(composition.synapse_kind(layer, inference), self.specs[layer - 1],
                                                 self.specs[layer], inference).unshared(self.varied)
            syn = b2.Synapses(self.layers[layer - 1], self.layers[layer], **syn_spec.synapse_kwargs(),
                              name=f"forward{layer}")
            self._connect(syn, sizes[layer - 1], sizes[layer])
            self._initialise(syn, syn_spec.initial_values, sizes[layer - 1] * sizes[layer])
            self.forward.append(syn)
            if composition.has_feedback_synapses(layer) and not inference:
                fb_spec = composition.synapse_group("feedback", self.specs[layer], self.specs[layer - 1]) \
                    .unshared(self.varied)
                fb = b2.Synapses(self.layers[layer], self.layers[layer - 1], **fb_spec.synapse_kwargs(),
                                 name=f"feedback{layer}")
                self._connect(fb, sizes[layer], sizes[layer - 1])
                self._initialise(fb, fb_spec.initial_values, sizes[layer] * sizes[layer - 1])
                self.feedback[layer] = fb
        self.monitors = []
        for layer, group in enumerate(self.layers):
            variables = ["x_trace"] + (["A_soma"] if layer else []) + [v for v in RECORDED if v in group.variables]
            self.monitors.append(b2.StateMonitor(group, variables, record=True, dt=slot_dt, when="start",
                                                 order=-1, name=f"layer{layer}_slots"))
        self.spike_monitors: dict[tuple[int, str], b2.EventMonitor] = {}
        for layer, n in sorted((spikes or {}).items()):
            if not 0 <= layer <= L or not 1 <= n <= sizes[layer]:
                raise ValueError(f"spikes: layer {layer} with {n} neurons is not in this network ({sizes})")
            for event in (e for e in SPIKE_EVENTS if e in self.layers[layer].events):
                self.spike_monitors[layer, event] = b2.EventMonitor(self.layers[layer][:n], event,
                                                                    name=f"layer{layer}_{event}_times")
        self.network = b2.Network(*self.layers, *objects, *self.forward[1:], *self.feedback.values(),
                                  *self.monitors, *self.spike_monitors.values())
        used = {id(ns) for group in self.layers for ns in group.namespace.values() if isinstance(ns, b2.TimedArray)}
        self._used_arrays = [array for array in (self.slot_kind, self.stimulus, self.target)  # inference: no target
                             if id(array) in used]
        self.initial_states = [self.random_state(np.random.default_rng(s)) for s in self.seeds]
        self.states = list(self.initial_states)
        self._write_state(self.initial_states)
        self.runner.prepare(self.network, sources=composition.elements.values())

    def _connect(self, synapses: b2.Synapses, n_pre: int, n_post: int) -> None:
        """All to all within each replica: pre neuron i (replica i // n_pre) to that replica's n_post neurons,
        created in (i, j) order, so replica k's synapses are the k-th block of n_pre * n_post."""
        if self.replicas == 1:
            synapses.connect()
        else:
            synapses.connect(j="k for k in range(n_post*(i // n_pre), n_post*(i // n_pre + 1))",
                             namespace={"n_pre": n_pre, "n_post": n_post})
        self.runner.adopt(synapses)

    def _initialise(self, group, values: dict[str, b2.Quantity], per_replica: int) -> None:
        """Initial values of ``group``'s variables (``per_replica`` neurons or synapses per replica); the
        constants among them declared shared in their files are chunk parameters, set again before every
        chunk (their build values unless a chunk asks for others)."""
        for name, value in values.items():
            setattr(group, name, value)
            variable = group.variables[name]
            if variable.constant and (variable.scalar or name in self.varied):
                size = 1 if variable.scalar else per_replica
                self.chunk_parameters.setdefault(name, []).append((getattr(group, name), float(value), size))

    # ------------------------------------------------------------------ a single network's view
    @property
    def state(self) -> PlasticState:
        """The weights of a single network (an ensemble has ``states``, one per replica)."""
        self._single("state")
        return self.states[0]

    @state.setter
    def state(self, state: PlasticState) -> None:
        self._single("state")
        self.states = [state]

    @property
    def initial_state(self) -> PlasticState:
        self._single("initial_state")
        return self.initial_states[0]

    def _single(self, what: str) -> None:
        if self.replicas != 1:
            raise ValueError(f"{what}: this build is an ensemble of {self.replicas} networks (use states, "
                             "run_replicas)")

    # ------------------------------------------------------------------ state
    def random_state(self, rng: np.random.Generator) -> PlasticState:
        """W_l ~ N(0, init_scale^2 * 2/N_{l-1}); B_l drawn independently with the same scale (a B beside the transpose
        relay, the residual of transpose_residual: times network.yaml's init_residual); bias 0."""
        composition, sizes = self.composition, self.spec.sizes
        scale = float(composition.values["init_scale"])
        W = [rng.normal(0, scale * np.sqrt(2 / sizes[l - 1]), (sizes[l], sizes[l - 1]))
             for l in range(1, len(sizes))]
        scale_B = scale * (float(composition.values["init_residual"]) if composition.relays_through_w else 1.0)
        B = {l: rng.normal(0, scale_B * np.sqrt(2 / sizes[l - 1]), (sizes[l - 1], sizes[l])) for l in self.feedback}
        bias = {l: np.zeros(sizes[l]) for l in range(1, len(sizes))}
        return PlasticState(W, B, bias)

    def feedback_weights(self, state: PlasticState) -> dict[int, np.ndarray]:
        """The weights layer l's errors travel back through, l >= 2: B_l, plus s W_l^T where they also travel through
        W (transpose_relay.eqs: ``scale_transpose`` s, 1 for backprop; transpose mode has no B, transpose_residual
        both)."""
        if not self.composition.relays_through_w:
            return dict(state.B)
        scale = float(self.composition.elements["transpose_relay"].values["scale_transpose"])
        return {l: scale * state.W[l - 1].T + state.B.get(l, 0) for l in range(2, len(state.W) + 1)}

    def _views(self, states: list[PlasticState]) -> dict:
        """Brian2 variables -> flat arrays, the replicas one after the other. Synapses are all-to-all within a
        replica, created in (i, j) order."""
        def flat(matrices):
            return np.concatenate([np.ascontiguousarray(m.T).ravel() for m in matrices])
        views = {self.forward[l].w: flat([s.W[l - 1] for s in states]) for l in range(1, len(self.forward))}
        views |= {fb.b: flat([s.B[l] for s in states]) for l, fb in self.feedback.items()}  # none in inference
        views |= {self.layers[l].b_soma: np.concatenate([np.asarray(s.bias[l], float) for s in states])
                  for l in states[0].bias}
        return views

    def _write_state(self, states: list[PlasticState]) -> None:
        for view, values in self._views(states).items():
            view[:] = values

    def _read_states(self) -> list[PlasticState]:
        sizes, K = self.spec.sizes, self.replicas

        def blocks(synapses, n_pre: int, n_post: int) -> np.ndarray:  # (replica, post, pre)
            return np.asarray(synapses[:]).reshape(K, n_pre, n_post).transpose(0, 2, 1).copy()
        W = [blocks(self.forward[l].w, sizes[l - 1], sizes[l]) for l in range(1, len(sizes))]
        B = {l: blocks(fb.b, sizes[l], sizes[l - 1]) for l, fb in self.feedback.items()}
        bias = {l: np.asarray(self.layers[l].b_soma[:]).reshape(K, sizes[l]).copy() for l in range(1, len(sizes))}
        return [PlasticState([w[k] for w in W], {l: b[k] for l, b in B.items()}, {l: v[k] for l, v in bias.items()})
                for k in range(K)]

    def _parameter_values(self, values: list[dict[str, float]]) -> dict:
        """Chunk parameter variables -> this chunk's values (``values[k]`` by name for replica k, else the
        build's); a shared one must have the same value in every replica."""
        given = set().union(*values)
        if unknown := given - set(self.chunk_parameters):
            raise KeyError(f"no chunk parameter {', '.join(sorted(unknown))} in this build "
                           f"(chunk parameters: {', '.join(sorted(self.chunk_parameters))})")
        assigned = {}
        for name, triples in self.chunk_parameters.items():
            for variable, default, size in triples:
                per_replica = [replica.get(name, default) for replica in values]
                if size == 1 and len(set(per_replica)) > 1:
                    raise ValueError(f"chunk parameter {name!r} differs between replicas ({per_replica}) but is "
                                     "shared in this build (build the ensemble with it in varied)")
                assigned[variable] = per_replica[0] if size == 1 else np.repeat(per_replica, size)
        return assigned

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
        """Run ``len(kinds) <= slots`` slots of a single network from ``state`` (default: where the last
        chunk ended).

        ``stimulus`` has one row per slot (pixel intensities in [0, 1]) or, for the events
        encoder, one row per time step; ``targets`` one row per slot (1 for the label's output
        neuron). Slots beyond ``len(kinds)`` are idle inference slots without input. The state
        after the chunk is ``self.state``. ``values`` sets chunk parameters by name for this
        chunk (e.g. ``{"eta": 0.01, "eta_sleep": 0.001}``; the others keep their build values).
        ``seed`` (default: the build's seed) seeds the random numbers of this chunk, so that every
        chunk is reproducible on its own.
        """
        self._single("run_chunk")
        return self.run_replicas(kinds, [stimulus], [targets], None if state is None else [state],
                                 values=None if values is None else [values], seed=seed,
                                 results_directory=results_directory)[0]

    def run_replicas(self, kinds: np.ndarray, stimuli: Sequence[np.ndarray], targets: Sequence[np.ndarray],
                     states: Sequence[PlasticState] | None = None, *, values: Sequence[dict[str, float]] | None = None,
                     seed: int | None = None, results_directory: str | None = None) -> list[ChunkResult]:
        """:meth:`run_chunk` for every replica at once: one schedule ``kinds``, and per replica k its
        ``stimuli[k]``, ``targets[k]``, ``states[k]`` (default: where the last chunk ended) and chunk
        parameters ``values[k]``. Returns one result per replica; the states after it are ``self.states``."""
        n, K = len(kinds), self.replicas
        if n > self.slots:
            raise ValueError(f"chunk of {n} slots exceeds the build size of {self.slots} slots")
        states = self.states if states is None else list(states)
        values = [{}] * K if values is None else list(values)
        if not len(stimuli) == len(targets) == len(states) == len(values) == K:
            raise ValueError(f"an ensemble of {K} networks needs {K} stimuli, targets, states and values")
        n_in, n_out = self.spec.sizes[0], self.spec.sizes[-1]
        arrays = {self.slot_kind: np.full(self.slots, self.composition.slot_infer, float),
                  self.stimulus: np.zeros(self.stimulus.values.shape), self.target: np.zeros(self.target.values.shape)}
        arrays[self.slot_kind][:n] = kinds
        for k, (stimulus, target) in enumerate(zip(stimuli, targets, strict=True)):
            arrays[self.stimulus][: len(stimulus), k * n_in : (k + 1) * n_in] = stimulus
            arrays[self.target][:n, k * n_out : (k + 1) * n_out] = target
        variables = self._views(states) | self._parameter_values(values)
        ran = self.slots if self.runner.runs_whole_build else n
        self.runner.run(self.network, ran * self.n_slot * self.dt,
                        {array: arrays[array] for array in self._used_arrays}, variables,
                        self.seed if seed is None else seed, self.report, results_directory)
        self.states = self._read_states()
        return self._collect(n, ran)

    def spike_times(self) -> dict[tuple[int, str], tuple[np.ndarray, np.ndarray]]:
        """What the EventMonitors (``spikes``) recorded in the last chunk: (layer, event) -> (neuron, time in
        seconds from the chunk's start), in the order of time."""
        return {key: (np.asarray(monitor.i[:], np.int64), np.asarray(monitor.t[:] / b2.second, float))
                for key, monitor in self.spike_monitors.items()}

    def _collect(self, n: int, n_run: int) -> list[ChunkResult]:
        """Rows for the first ``n`` of ``n_run`` slots, per replica; slot m is recorded at the start of slot m+1."""
        results = [ChunkResult([], []) for _ in range(self.replicas)]
        for layer, group in enumerate(self.layers):
            inputs = self._per_slot(layer, "A_soma", n, n_run) if layer else [np.zeros((n, 0))] * self.replicas
            for result, rates, drive in zip(results, self._per_slot(layer, "x_trace", n, n_run), inputs, strict=True):
                result.rates.append(rates)
                result.inputs.append(drive)
            for var, attribute in RECORDED.items():
                if var in group.variables:
                    for result, values in zip(results, self._per_slot(layer, var, n, n_run), strict=True):
                        getattr(result, attribute)[layer] = values
        return results

    def _per_slot(self, layer: int, var: str, n: int, n_run: int) -> list[np.ndarray]:
        """``var`` of ``layer`` per slot (rows) and neuron, one array per replica."""
        recorded = np.asarray(getattr(self.monitors[layer], var)).T  # (times, neurons)
        if n < n_run:
            rows = recorded[1 : n + 1]
        else:
            rows = np.concatenate([recorded[1:n], np.asarray(getattr(self.layers[layer], var)[:])[None, :]])
        return np.split(rows, self.replicas, axis=1)
