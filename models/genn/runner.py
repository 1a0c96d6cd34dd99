"""Run a translated network on GeNN 5 (pygenn): CPU backend without a GPU, CUDA where there is one.

The Brian2 objects are built on Brian2's runtime device and never run by Brian2: they hold the
build's values (the state every chunk starts from, as a standalone binary's rerun does), and after
every chunk the runner writes GeNN's results back into them (state variables, StateMonitor
recordings), so that the network reads its results as on any other backend.

pygenn is imported when a model is built; it is not on PyPI (``make genn`` builds it).
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterable
from pathlib import Path

import brian2 as b2
import numpy as np

from biograd.models.elements import Element
from biograd.models.genn.code import SEED
from biograd.models.genn.translate import EVENTS, T_END, GennModel, translate

PYGENN_MISSING = ("pygenn (GeNN 5.4.0) is not installed: run 'make genn' (it builds pygenn from GeNN's source; "
                  "pygenn is not on PyPI)")


_models_built = itertools.count()  # in this process: each model needs its own name (its own shared library)


def pygenn_available() -> bool:
    try:
        import pygenn  # noqa: F401
    except ImportError:
        return False
    return True


class GennRunner:
    """The ``genn`` backend: the network translated once, built once, every chunk run with new values."""

    runs_whole_build = True  # recordings are sized for the build; every chunk simulates the whole build

    def __init__(self, directory: Path, backend: str | None = None):
        self.directory, self.backend = Path(directory), backend
        self.spec: GennModel | None = None
        self.model = None

    def adopt(self, group: b2.NeuronGroup | b2.Synapses) -> None:
        """GeNN's own code (dense connectivity; sparse for an ensemble's blocks)."""

    def prepare(self, network: b2.Network, sources: Iterable[Element] = ()) -> None:
        self.spec = translate(network, sources)
        self._brian = {obj.name: obj for obj in network.objects}
        for obj in network.objects:  # run, by GeNN, as part of this network (Brian2 marks them so when it runs
            obj._network = obj._network or network.id  # them; unmarked, it warns of unused objects when they go)
        self._initial = {(name, var): np.array(self._brian[name].variables[var].get_value(), copy=True)
                         for pop in self.spec.populations for name, var in [(pop.name, v) for v in pop.variables]
                         if var != EVENTS}
        self._initial |= {(proj.name, var): np.array(self._brian[proj.name].variables[var].get_value(), copy=True)
                          for proj in self.spec.projections for var in [*proj.variables, *proj.shared]}

    # ------------------------------------------------------------------ build
    def compile(self, network: b2.Network, duration: b2.Quantity, report: str | None) -> None:
        if self.model is not None:
            return
        try:
            import pygenn
        except ImportError as err:
            raise RuntimeError(PYGENN_MISSING) from err
        self.steps = round(float(duration) / self.spec.dt)
        number = next(_models_built)
        model = pygenn.GeNNModel("double", f"biograd_{number}" if number else "biograd", backend=self.backend,
                                 optimize_code=True)  # -O3 -ffast-math, as Brian2's C++ (GeNN's default: -O0)
        model.dt = self.spec.dt
        pops = {}
        for pop in self.spec.populations:
            neuron = pygenn.create_neuron_model(
                f"{pop.name}_model", params=[(k, _param_type(k, v)) for k, v in pop.params.items()],
                vars=list(pop.variables.items()), sim_code=pop.sim_code,
                extra_global_params=list(pop.arrays.items()),
                additional_input_vars=[(name, "double", 0.0) for name in pop.inputs])
            pops[pop.name] = model.add_neuron_population(pop.name, pop.size, neuron, pop.params,
                                                         {var: 0 for var in pop.variables})
            for name in (T_END, SEED):
                if name in pop.params:
                    pops[pop.name].set_param_dynamic(name)
            for name in pop.arrays:
                pops[pop.name].extra_global_params[name].set_init_values(np.zeros(self._array_size(pop, name)))
        delta = pygenn.create_postsynaptic_model("b2_delta", sim_code="injectCurrent(inSyn);\ninSyn = 0;")
        syns = {}
        for proj in self.spec.projections:
            read_only = pygenn.VarAccessMode.READ_ONLY
            update = pygenn.create_weight_update_model(
                f"{proj.name}_model", params=[(k, _param_type(k, v)) for k, v in proj.params.items()]
                + [(k, t) for k, t in proj.shared.items()], vars=list(proj.variables.items()),
                pre_neuron_var_refs=[(r, pop_type(self.spec, proj.source, v), read_only)
                                     for r, v in proj.pre_refs.items()],
                post_neuron_var_refs=[(r, pop_type(self.spec, proj.target, v), read_only)
                                      for r, v in proj.post_refs.items()],
                pre_event_threshold_condition_code=proj.pre_condition, pre_event_syn_code=proj.pre_code,
                post_event_threshold_condition_code=proj.post_condition, post_event_syn_code=proj.post_code)
            init = pygenn.init_weight_update(
                update, proj.params | {k: 0.0 for k in proj.shared}, {var: 0 for var in proj.variables},
                pre_var_refs={r: pygenn.create_var_ref(pops[proj.source], v) for r, v in proj.pre_refs.items()},
                post_var_refs={r: pygenn.create_var_ref(pops[proj.target], v) for r, v in proj.post_refs.items()})
            syn = model.add_synapse_population(proj.name, proj.connectivity, pops[proj.source], pops[proj.target],
                                               init, pygenn.init_postsynaptic(delta))
            if proj.connectivity == "SPARSE":  # an ensemble's blocks
                syn.set_sparse_connections(proj.pre_indices, proj.post_indices)
            if proj.post_target:
                syn.post_target_var = proj.post_target
            if proj.pre_target:
                syn.pre_target_var = proj.pre_target
            for name in [*proj.shared, *([SEED] if SEED in proj.params else [])]:
                syn.set_wu_param_dynamic(name)
            syns[proj.name] = syn
        self.directory.mkdir(parents=True, exist_ok=True)
        model.build(path_to_model=str(self.directory))
        model.load()
        self.model, self.pops, self.syns = model, pops, syns

    def _array_size(self, pop, name: str) -> int:
        if name.startswith("b2_rec_"):
            every = next(rec.every for rec in self.spec.recordings if rec.population == pop.name)
            return max(1, math.ceil(self.steps / every)) * pop.size
        timed = next(t for t, where in self.spec.timed_arrays.items() if (pop.name, name) in where)
        return int(np.asarray(self._timed_array(timed).values).size)

    def _timed_array(self, name: str) -> b2.TimedArray:
        for obj in self._brian.values():
            for value in (getattr(obj, "namespace", None) or {}).values():
                if isinstance(value, b2.TimedArray) and value.name == name:
                    return value
        raise KeyError(name)

    # ------------------------------------------------------------------ run
    def run(self, network: b2.Network, duration: b2.Quantity, arrays: dict[b2.TimedArray, np.ndarray],
            variables: dict, seed: int, report: str | None, results_directory: str | None = None) -> None:
        self.compile(network, duration, report)
        values = dict(self._initial)
        for view, value in variables.items():
            values[(view.variable.owner.name, view.name)] = np.asarray(value)
        for (owner, var), value in values.items():
            self._write(owner, var, value)
        for pop in self.spec.populations:
            group = self.pops[pop.name]
            group.vars[EVENTS].view[:] = 0
            group.vars[EVENTS].push_to_device()
            group.set_dynamic_param_value(T_END, (self.steps - 0.5) * self.spec.dt)
        for owner, spec in [*((self.pops[p.name], p) for p in self.spec.populations),
                            *((self.syns[p.name], p) for p in self.spec.projections)]:
            if SEED in spec.params:  # every chunk's random numbers follow from its seed
                owner.set_dynamic_param_value(SEED, int(seed) % 2**32)
        for array, value in arrays.items():
            for pop, egp in self.spec.timed_arrays.get(array.name, []):
                target = self.pops[pop].extra_global_params[egp]
                target.view[:] = np.asarray(value, float).ravel()
                target.push_to_device()
        self.model.timestep = 0
        for _ in range(self.steps + 1):  # the last step only finishes the chunk's last step (its events)
            self.model.step_time()
        self._read_back()

    def _write(self, owner: str, var: str, value: np.ndarray) -> None:
        if owner in self.syns and var in next(p.shared for p in self.spec.projections if p.name == owner):
            self.syns[owner].set_dynamic_param_value(var, float(np.ravel(value)[0]))
            return
        target = (self.pops.get(owner) or self.syns[owner]).vars[var]
        target.values = value
        target.push_to_device()

    def _read_back(self) -> None:
        for pop in self.spec.populations:
            brian = self._brian[pop.name]
            for var in pop.variables:
                if var == EVENTS:
                    continue
                self.pops[pop.name].vars[var].pull_from_device()
                values = self.pops[pop.name].vars[var].view
                variable = brian.variables[var]
                variable.set_value(values[:1] if variable.scalar else values)
        for proj in self.spec.projections:
            for var in proj.variables:
                self.syns[proj.name].vars[var].pull_from_device()
                self._brian[proj.name].variables[var].set_value(self.syns[proj.name].vars[var].values)
        for rec in self.spec.recordings:
            monitor, pop = self._brian[rec.monitor], self.pops[rec.population]
            size = pop.num_neurons
            n = math.ceil(self.steps / rec.every)
            monitor.resize(n)
            monitor.variables["t"].get_value()[:] = np.arange(n) * rec.every * self.spec.dt
            for var in rec.variables:
                array = pop.extra_global_params[f"b2_rec_{var}"]
                array.pull_from_device()
                monitor.variables[var].get_value()[:] = np.asarray(array.view)[: n * size].reshape(n, size)


def _param_type(name: str, value) -> str:
    if name == SEED:
        return "uint32_t"
    return "int" if isinstance(value, int | np.integer) else "double"


def pop_type(spec: GennModel, population: str, variable: str) -> str:
    return next(p.variables[variable] for p in spec.populations if p.name == population)
