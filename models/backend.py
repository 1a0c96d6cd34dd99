"""Which backend a network runs on: one value, :class:`Backend`, passed to whatever builds a network.

``backend.activate()`` selects Brian2's device for the networks built next (Brian2 keeps one device
per process, by its design), and ``backend.runner()`` gives the :class:`~biograd.models.runners.Runner`
that runs a network's chunks on it (:mod:`biograd.models.runners`).
"""

from __future__ import annotations

import gc
import importlib.util
import logging
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

import brian2 as b2
from brian2.devices.device import all_devices
from brian2.utils.logger import BrianLogger

from biograd.models import cuda
from biograd.models.genn.runner import GennRunner
from biograd.models.runners import CudaRunner, Runner, RuntimeRunner, StandaloneRunner, compiler_command

STANDALONE = ("cpp_standalone", "cuda_standalone")  # compiled once, rerun with run_args
COMPILED = (*STANDALONE, "genn")  # built once per process and directory
BACKENDS = (*COMPILED, "numpy", "cython")
GENN_BACKENDS = ("cuda", "single_threaded_cpu")
DEBUG_VARIABLE = "BIOGRAD_DEBUG"  # set (biograd --debug sets it): Brian2 keeps its debugging aids, see brian_logging
# g++ leaves a loop scalar when it needs more than 10 run-time alias checks (one per pair of the arrays a
# neuron update writes) or when unswitching it on the phase flags would copy more than 50 instructions:
# raised, the state updates vectorise (the checks keep the code correct for any pointers).
VECTORISING_FLAGS = ("--param=vect-max-version-for-alias-checks=100", "--param=max-unswitch-insns=1000")


@dataclass(frozen=True)
class Backend:
    """A backend and its options: ``cpp_standalone`` or ``cuda_standalone`` (compiled once into
    ``directory``, rerun with run_args), ``genn`` (GeNN 5, built into ``directory``; ``genn_backend``
    'single_threaded_cpu' or 'cuda', default: CUDA where pygenn has it), or Brian2's runtime device with
    code generation target ``numpy`` or ``cython`` (for debugging; ``directory`` unused).
    ``dense_pathways=False`` keeps Brian2's own templates and compiler flags on cpp_standalone (results equal
    to rounding; slower); True (default) propagates all-to-all pathways a row at a time, tests events only in
    their phase (:mod:`biograd.models.thresholds`) and adds :data:`VECTORISING_FLAGS`. ``threads`` > 1:
    cpp_standalone's OpenMP threads (Brian2's neuron templates share each group's loop among them; the
    dense pathways run a row at a time on one). ``profile``: the standalone binary times each code object
    (the network's ``profiling_info`` after a run)."""

    name: str = "numpy"
    directory: Path | None = None
    dense_pathways: bool = True
    genn_backend: str | None = None
    threads: int = 1
    profile: bool = False

    def __post_init__(self):
        if self.name not in BACKENDS:
            raise ValueError(f"unknown backend {self.name!r} ({', '.join(BACKENDS)})")
        if self.compiled and self.directory is None:
            raise ValueError(f"backend {self.name} builds into a directory: give one")
        if self.genn_backend not in (None, *GENN_BACKENDS):
            raise ValueError(f"unknown GeNN backend {self.genn_backend!r} ({', '.join(GENN_BACKENDS)})")
        if self.threads < 1 or (self.threads > 1 and self.name != "cpp_standalone"):
            raise ValueError(f"threads={self.threads}: at least 1, and more only on cpp_standalone (OpenMP)")
        if self.profile and self.name not in STANDALONE:
            raise ValueError(f"profile: the standalone backends time their code objects, not {self.name}")
        if self.directory is not None:
            object.__setattr__(self, "directory", Path(self.directory))

    @property
    def compiled(self) -> bool:
        """Built once per process and directory: a second build (evaluation, probes) needs a process of its own."""
        return self.name in COMPILED

    @property
    def device(self) -> str:
        """The Brian2 device it builds on (GeNN translates objects built on the runtime device)."""
        return self.name if self.name in STANDALONE else "runtime"

    def missing(self) -> str | None:
        """What this backend needs and this machine lacks, in one line (None: nothing). cpp_standalone: make
        and the C++ compiler its makefile calls (the first word of $CXX, default g++: runners.compiler_command);
        cuda_standalone: brian2cuda and nvcc; genn: pygenn. (Whether a GPU is present is not asked: code is
        generated and compiled without one.)"""
        compiler = compiler_command()[0]  # $CXX's first word: "ccache g++" needs ccache
        needs = {"cpp_standalone": [("make", shutil.which(b2.prefs.devices.cpp_standalone.make_cmd_unix.split()[0])),
                                    (compiler, shutil.which(compiler))],
                 "cuda_standalone": [("brian2cuda", importlib.util.find_spec("brian2cuda")),
                                     ("nvcc", shutil.which("nvcc"))],
                 "genn": [("pygenn", importlib.util.find_spec("pygenn"))]}.get(self.name, [])
        absent = [name for name, found in needs if found is None]
        if not absent:
            return None
        hint = {"cpp_standalone": "install a C++ tool chain (e.g. apt install build-essential) or set $CXX",
                "cuda_standalone": "install the CUDA toolkit and run 'make gpu'", "genn": "run 'make genn'"}[self.name]
        return f"backend {self.name} needs {' and '.join(absent)}, not found on this machine: {hint}; or train " \
               "with backend numpy"

    @classmethod
    def active(cls) -> Backend:
        """The backend of Brian2's active device, with the default options (``genn`` is never active: its
        objects are built on the runtime device, so a GeNN network is given its backend)."""
        device = b2.get_device()
        for name in STANDALONE:
            if device is all_devices.get(name):
                options = device.build_options or {}
                return cls(name, Path(options.get("directory") or device.project_dir or "output"))  # Brian2's default
        target = b2.prefs.codegen.target
        return cls(target if target in ("numpy", "cython") else "numpy")

    def activate(self) -> None:
        """Make this the device of the networks built next (a standalone device forgets its earlier objects)."""
        if self.name in STANDALONE:
            if self.name == "cuda_standalone":
                cuda.configure(self.directory)
            b2.prefs.devices.cpp_standalone.openmp_threads = self.threads if self.threads > 1 else 0
            flags = [f for f in b2.prefs.codegen.cpp.extra_compile_args_gcc if f not in VECTORISING_FLAGS]
            vectorise = self.name == "cpp_standalone" and self.dense_pathways
            b2.prefs.codegen.cpp.extra_compile_args_gcc = flags + list(VECTORISING_FLAGS) * vectorise
            options = {"build_on_run": False, "directory": str(self.directory)}
            b2.set_device(self.name, **options)
            b2.device.reinit()  # forget the objects of an earlier build in this process
            b2.device.activate(**options)
            gc.collect()  # and free them: Brian2 names new objects "<name>_1" while old ones of that name live,
            # which changes the generated code and makes a reused build folder recompile
        else:  # genn: Brian2 builds the objects (runtime device), GeNN runs them
            b2.set_device("runtime")
            b2.prefs.codegen.target = "numpy" if self.name == "genn" else self.name

    def runner(self) -> Runner:
        """A runner for one network on this backend, which must be Brian2's active device (:meth:`activate`)."""
        if b2.get_device() is not all_devices.get(self.device):
            raise RuntimeError(f"backend {self.name}: Brian2's active device is {type(b2.get_device()).__name__}, "
                               f"not {self.device} (call activate() before building)")
        if self.name == "genn":
            return GennRunner(self.directory, self.genn_backend)
        if self.name == "cuda_standalone":
            return CudaRunner(profile=self.profile)
        if self.name == "cpp_standalone":
            return StandaloneRunner(dense_pathways=self.dense_pathways, profile=self.profile)
        return RuntimeRunner()


def brian_logging(debug: bool) -> None:
    """Brian2's debugging aids, on (``debug``) or off: a debug log and a copy of the main script that Brian2
    writes to the temp folder when it is imported (``brian_debug_*.log``, ``brian_script_*.py``; deleted at
    exit, but kept after an uncaught error or a kill), and a warning for each of its objects deleted without
    having run (which an error or a stop signal during a build leaves), and Python's warnings as log lines. Off,
    the files made at import are deleted now (never a file of the parent of a forked process), and Brian2 makes no
    more."""
    b2.prefs.logging.file_log = b2.prefs.logging.save_script = b2.prefs.logging.warn_for_unused_objects = debug
    logging.captureWarnings(debug)  # off: Python's warnings as Python shows them (the command: one line each)
    if debug or BrianLogger._pid not in (None, os.getpid()):
        return
    logger = logging.getLogger("brian2")
    if BrianLogger.file_handler is not None:
        logger.removeHandler(BrianLogger.file_handler)
        BrianLogger.file_handler.close()
        BrianLogger.file_handler = None
    for name in (BrianLogger.tmp_log, BrianLogger.tmp_log and f"{BrianLogger.tmp_log}.1", BrianLogger.tmp_script):
        if name:
            Path(name).unlink(missing_ok=True)
    BrianLogger.tmp_log = BrianLogger.tmp_script = None


brian_logging(debug=bool(os.environ.get(DEBUG_VARIABLE)))  # with the import, before any network is built
# Stop signals are biograd's (biograd.signals): Brian2's SIGINT handler, installed over the current one as brian2 is
# imported, hands them on. On, it ended a running simulation early instead ('Simulation stop requested', a chunk
# cut short that the trainer took as whole) and swallowed the second Ctrl-C of a trainer stopping after its task.
b2.prefs.core.stop_on_keyboard_interrupt = False
