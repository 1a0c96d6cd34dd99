"""How a network runs: one runner per backend (:class:`~biograd.models.backend.Backend`), behind one
interface, :class:`Runner`.

Every chunk hands the runner the same things: the values of the TimedArrays (schedule, stimulus,
target), the values of the plastic variables (weights, biases) and of the chunk parameters (the
learning rates, any ``(shared, constant)`` variable), and a seed. The runner decides how they
reach the simulation:

- :class:`RuntimeRunner` (code generation targets ``numpy``, ``cython``; for debugging):
  restores the initial state, swaps the TimedArrays, writes the variables, seeds ``brian2.seed``
  and runs the chunk's slots;
- :class:`StandaloneRunner` (``cpp_standalone``): builds the project once, then reruns the
  binary with ``run_args``; the seed reaches the binary in an environment variable; all-to-all
  pathways propagate a row at a time (:mod:`biograd.models.dense_pathways`) and events are tested
  only in their phase (:mod:`biograd.models.thresholds`) unless its backend says otherwise
  (``Backend.dense_pathways``);
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
import shlex
import subprocess
from collections.abc import Iterable
from pathlib import Path
from typing import Protocol, runtime_checkable

import brian2 as b2
import numpy as np

from biograd.models import cuda
from biograd.models.dense_pathways import use_dense_pathways
from biograd.models.elements import Element
from biograd.models.thresholds import use_gated_thresholds

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


@runtime_checkable
class Runner(Protocol):
    """How a network's chunks run on one backend (:meth:`biograd.models.backend.Backend.runner`)."""

    runs_whole_build: bool  # every run simulates the whole build (a chunk of fewer slots idles the rest)

    def adopt(self, group: b2.NeuronGroup | b2.Synapses) -> None:
        """Choose the code templates of ``group`` (neurons or synapses) before it is built."""

    def prepare(self, network: b2.Network, sources: Iterable[Element] = ()) -> None:
        """Take note of the built ``network`` (composed of the elements ``sources``) before its first chunk."""

    def compile(self, network: b2.Network, duration: b2.Quantity, report: str | None) -> None:
        """Build ahead what the backend builds (once), for chunks of ``duration``."""

    def run(self, network: b2.Network, duration: b2.Quantity, arrays: dict[b2.TimedArray, np.ndarray],
            variables: dict, seed: int, report: str | None, results_directory: str | None = None) -> None:
        """One chunk: the TimedArrays' values ``arrays``, the variables' values ``variables``, the chunk's ``seed``."""


class RuntimeRunner:
    """The runtime device: Python drives each chunk (restore, set, run); nothing is compiled ahead."""

    runs_whole_build = False  # a chunk of n slots simulates n slots

    def __init__(self):
        self._origin: dict[int, b2.TimedArray] = {}  # id of a TimedArray in use -> the build's TimedArray

    def adopt(self, group: b2.NeuronGroup | b2.Synapses) -> None:
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
        gc.freeze()  # Brian2's run() starts with a full gc.collect(): let it scan only what the chunk creates
        try:
            network.run(duration, namespace={}, report=report)
        finally:
            gc.unfreeze()


class StandaloneRunner:
    """cpp_standalone: the project is generated and compiled once; every chunk reruns it with run_args."""

    runs_whole_build = True  # the binary always simulates the whole build; extra slots idle
    own_make = True  # make runs as a child that gets the process group's signals (compile_project)

    def __init__(self, dense_pathways: bool = False, profile: bool = False):
        self.built = False
        self.dense_pathways = dense_pathways
        self.profile = profile  # the binary times each code object (network.profiling_info)

    def adopt(self, group: b2.NeuronGroup | b2.Synapses) -> None:
        """If asked, all-to-all synapses (within each replica's block) propagate a row at a time, and a neuron
        group tests its events only in their phase."""
        if not self.dense_pathways:
            return
        if isinstance(group, b2.Synapses):
            use_dense_pathways(group)
        else:
            use_gated_thresholds(group)

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
        network.run(duration, namespace={}, report=report, profile=self.profile)
        device.build(**(dict(device.build_options) | {"run": False, "compile": not self.own_make}))
        if self.own_make:
            compile_project(device.project_dir)
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

    own_make = False  # brian2cuda's own compile step (its makefile and nvcc settings)

    def adopt(self, group: b2.NeuronGroup | b2.Synapses) -> None:
        """brian2cuda's own templates (the project's are C++ for one core)."""

    def reseed_code(self) -> str:
        return cuda.reseed_code(SEED_VARIABLE)

    def check(self, run_args: dict) -> None:
        cuda.check_run_arg_names(run_args)


class CompileError(RuntimeError):
    """make failed in a cpp_standalone project; the message names its log."""


def _cxx_words() -> list[str]:
    """$CXX split into words as the shell splits the makefile's ``$(CXX)`` (none where unset or blank)."""
    text = os.environ.get("CXX", "")
    try:
        return [word for word in shlex.split(text) if word]
    except ValueError:  # an unbalanced quote, which the shell refuses too: its words as they are
        return text.split()


def compiler_command() -> list[str]:
    """The C++ compiler command a cpp_standalone makefile runs (``$(CXX)``): $CXX with its arguments
    (``ccache g++``, ``g++ -O2``), or make's default ``g++`` where $CXX is unset or blank (:func:`compile_project`
    gives make no blank $CXX)."""
    return _cxx_words() or ["g++"]


def compile_project(directory: str | Path) -> None:
    """make in a cpp_standalone project, with Brian2's make command and arguments (preferences
    ``devices.cpp_standalone.make_cmd_unix``, ``extra_make_args_unix``), output to ``make.log``.

    Brian2 runs make through ``os.system``, which ignores SIGINT in the caller while make runs: a Ctrl-C
    then ended make alone and surfaced as "Project compilation failed". As a subprocess here, make and
    this process both receive a signal sent to the process group, and the trainer's stop handling
    (:mod:`biograd.signals`) sees it. (Linux and macOS; Brian2's Windows build uses nmake.) A blank $CXX is left
    out of make's environment: make would run an empty compiler command, not its default g++."""
    prefs = b2.prefs.devices.cpp_standalone
    log = Path(directory) / "make.log"
    env = {name: value for name, value in os.environ.items() if name != "CXX" or _cxx_words()}
    with open(log, "w", encoding="utf-8") as out:
        done = subprocess.run([*prefs.make_cmd_unix.split(), *prefs.extra_make_args_unix], cwd=directory,
                              stdout=out, stderr=subprocess.STDOUT, check=False, env=env)
    if done.returncode:
        last = " | ".join(log.read_text(encoding="utf-8", errors="replace").strip().splitlines()[-3:])
        raise CompileError(f"make failed in {directory} (exit {done.returncode}; whole output in {log}): {last}")


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
