"""Where a network runs: one runner per Brian2 device, behind one interface.

Every chunk hands the runner the same things: the values of the TimedArrays (schedule, stimulus,
target), the values of the plastic variables (weights, biases) and of the chunk parameters (the
learning rates, any ``(shared, constant)`` variable), and a seed. The runner decides how they
reach the simulation:

- :class:`RuntimeRunner` (code generation targets ``numpy``, ``cython``; for debugging):
  restores the initial state, swaps the TimedArrays, writes the variables, seeds ``brian2.seed``
  and runs the chunk's slots;
- :class:`StandaloneRunner` (``cpp_standalone``): builds the project once, then reruns the
  binary with ``run_args``; the seed reaches the binary in an environment variable; all-to-all
  pathways propagate a row at a time (:mod:`biograd.models.dense_pathways`) unless
  :func:`use_backend` is told otherwise;
- :class:`CudaRunner` (``cuda_standalone``, brian2cuda): as cpp_standalone, with brian2cuda's
  random-number reseeding and its run_args naming rule (:mod:`biograd.models.cuda`);
- :class:`~biograd.models.genn.runner.GennRunner` (``genn``, GeNN 5): the Brian2 objects, built on the
  runtime device, are translated to a GeNN model (:mod:`biograd.models.genn.translate`), built once;
  every chunk runs it with new values (GeNN's CPU backend without a GPU, CUDA with one).
"""

from __future__ import annotations

import gc
import os
import re
from collections.abc import Iterable
from pathlib import Path

import brian2 as b2
import numpy as np
from brian2.devices.device import all_devices

from biograd.models import cuda
from biograd.models.dense_pathways import use_dense_pathways
from biograd.models.elements import Element
from biograd.models.genn.runner import GennRunner

SEED_VARIABLE = "BIOGRAD_CHUNK_SEED"
# Standalone binaries seed their generators from std::random_device unless told otherwise; this
# reseeds them, right before the simulation, from the seed a chunk passes in the environment.
_RESEED_FROM_ENVIRONMENT = f"""
if (const char* _chunk_seed = std::getenv("{SEED_VARIABLE}")) {{
    for (size_t _g = 0; _g < brian::_random_generators.size(); _g++)
        brian::_random_generators[_g].seed(std::strtoul(_chunk_seed, nullptr, 10) + _g);
}}
"""
RUN_ARGS_FILE = re.compile(r"init_.+_[0-9a-f]{32}\.dat(\.lock)?")  # Brian2's names for run_args values
STANDALONE = ("cpp_standalone", "cuda_standalone")  # compiled once, rerun with run_args
COMPILED = (*STANDALONE, "genn")  # built once per process and directory
BACKENDS = (*COMPILED, "numpy", "cython")
_dense_pathways = True  # set by use_backend, read by runner_for_device
_genn: dict | None = None  # the genn backend's options while it is the backend in use


def use_backend(backend: str, directory: Path | None = None, *, dense_pathways: bool = True,
                genn_backend: str | None = None) -> None:
    """Make ``backend`` the device of the networks built next: ``cpp_standalone`` or ``cuda_standalone``
    (compiled once into ``directory``, rerun with run_args) or the runtime device with code
    generation target ``numpy`` or ``cython`` (for debugging), or ``genn`` (GeNN 5, built into
    ``directory``; ``genn_backend`` 'single_threaded_cpu' or 'cuda', default: CUDA where pygenn has it).
    ``dense_pathways=False`` keeps Brian2's own synapse templates on cpp_standalone (results equal to
    rounding; slower)."""
    global _dense_pathways, _genn
    _dense_pathways = dense_pathways
    _genn = None
    if backend in STANDALONE:
        if backend == "cuda_standalone":
            cuda.configure(directory)
        options = {"build_on_run": False, "directory": str(directory)}
        b2.set_device(backend, **options)
        b2.device.reinit()  # forget the objects of an earlier build in this process
        b2.device.activate(**options)
        gc.collect()  # and free them: Brian2 names new objects "<name>_1" while old ones of that name live,
        # which changes the generated code and makes a reused build folder recompile
    elif backend in ("numpy", "cython"):
        b2.set_device("runtime")
        b2.prefs.codegen.target = backend
    elif backend == "genn":  # Brian2 builds the objects (runtime device), GeNN runs them
        b2.set_device("runtime")
        b2.prefs.codegen.target = "numpy"
        _genn = {"directory": Path(directory or "genn_build"), "backend": genn_backend}
    else:
        raise ValueError(f"unknown backend {backend!r} ({', '.join(BACKENDS)})")


class RuntimeRunner:
    """The runtime device: Python drives each chunk (restore, set, run); nothing is compiled ahead."""

    runs_whole_build = False  # a chunk of n slots simulates n slots

    def __init__(self):
        self._origin: dict[int, b2.TimedArray] = {}  # id of a TimedArray in use -> the build's TimedArray

    def adopt(self, synapses: b2.Synapses) -> None:
        """Brian2's own templates."""

    def prepare(self, network: b2.Network, sources: Iterable[Element] = ()) -> None:
        network.store("initial")

    def compile(self, network: b2.Network, duration: b2.Quantity, report: str | None) -> None:
        """Nothing to compile ahead."""

    def run(self, network: b2.Network, duration: b2.Quantity, arrays: dict[b2.TimedArray, np.ndarray],
            variables: dict, seed: int, report: str | None, results_directory: str | None = None) -> None:
        network.restore("initial")
        b2.seed(seed)
        fresh = {id(old): b2.TimedArray(values, dt=old.dt * b2.second) for old, values in arrays.items()}
        for obj in network.objects:  # every namespace that holds one of the build's TimedArrays gets the chunk's
            namespace = getattr(obj, "namespace", None) or {}
            for name, value in list(namespace.items()):
                original = self._origin.get(id(value), value)
                if id(original) in fresh:
                    namespace[name] = fresh[id(original)]
        self._origin = {id(fresh[id(old)]): old for old in arrays}
        for variable, value in variables.items():
            variable[:] = value
        network.run(duration, namespace={}, report=report)


class StandaloneRunner:
    """cpp_standalone: the project is generated and compiled once; every chunk reruns it with run_args."""

    runs_whole_build = True  # the binary always simulates the whole build; extra slots idle

    def __init__(self, dense_pathways: bool = False):
        self.built = False
        self.dense_pathways = dense_pathways

    def adopt(self, synapses: b2.Synapses) -> None:
        """All-to-all ``synapses`` (within each replica's block) propagate a row at a time, if asked."""
        if self.dense_pathways:
            use_dense_pathways(synapses)

    def prepare(self, network: b2.Network, sources: Iterable[Element] = ()) -> None:
        """Nothing to store: every rerun starts from the values passed in."""

    def reseed_code(self) -> str:
        return _RESEED_FROM_ENVIRONMENT

    def check(self, run_args: dict) -> None:
        """Refuse run_args the device cannot pass (none for cpp_standalone)."""

    def compile(self, network: b2.Network, duration: b2.Quantity, report: str | None) -> None:
        if self.built:
            return
        device = b2.get_device()
        device.insert_code("main", self.reseed_code())
        network.run(duration, namespace={}, report=report)
        device.build(**(dict(device.build_options) | {"run": False}))
        self.built = True

    def run(self, network: b2.Network, duration: b2.Quantity, arrays: dict[b2.TimedArray, np.ndarray],
            variables: dict, seed: int, report: str | None, results_directory: str | None = None) -> None:
        run_args = arrays | variables
        if not self.built:  # names are fixed by the build: check once, before compiling
            self.check(run_args)
        self.compile(network, duration, report)
        device = b2.get_device()
        _delete_run_args_files(device.project_dir)  # a killed process may have left a torn one behind
        os.environ[SEED_VARIABLE] = str(seed)
        try:
            device.run(run_args=run_args, results_directory=results_directory)
        finally:
            del os.environ[SEED_VARIABLE]
            _delete_run_args_files(device.project_dir)


class CudaRunner(StandaloneRunner):
    """cuda_standalone (brian2cuda): reseeds cuRAND, and refuses run_args names it would not find."""

    def adopt(self, synapses: b2.Synapses) -> None:
        """brian2cuda's own templates (the dense ones are C++ for one core)."""

    def reseed_code(self) -> str:
        return cuda.reseed_code(SEED_VARIABLE)

    def check(self, run_args: dict) -> None:
        cuda.check_run_arg_names(run_args)


def runner_for_device() -> RuntimeRunner | StandaloneRunner | GennRunner:
    """The runner of the active Brian2 device (set with :func:`use_backend`)."""
    device = b2.get_device()
    if _genn is not None and device is all_devices["runtime"]:
        return GennRunner(**_genn)
    if device is all_devices.get("cuda_standalone"):
        return CudaRunner()
    if device is all_devices["cpp_standalone"]:
        return StandaloneRunner(dense_pathways=_dense_pathways)
    return RuntimeRunner()


def _delete_run_args_files(project_dir: str) -> None:
    """Delete the value files of ``run_args`` (``static_arrays/init_<name>_<md5>.dat``) and their locks.

    Brian2 keeps them as a cache keyed by content and writes a file only if its name is new, but a
    training chunk's weights and stimuli never repeat: left alone they grow by about 10 MB per chunk
    (3.5 GB for a 6-epoch mnist_1h run). And a process killed while writing one leaves it torn under
    the name the resumed chunk asks for; the binary then only prints a size error to stderr and keeps
    the build's values, so a resumed run would silently differ. Hence: delete before and after a run.
    """
    for path in Path(project_dir, "static_arrays").glob("init_*"):
        if RUN_ARGS_FILE.fullmatch(path.name):
            path.unlink(missing_ok=True)
