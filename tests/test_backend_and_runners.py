"""The backend value (:class:`Backend`: checked names and options, the device it selects, the runner it gives)
and the interface every runner implements (:class:`Runner`)."""

import inspect
import re
from pathlib import Path

import brian2 as b2
import pytest

from biograd.config import TrainConfig
from biograd.models.backend import BACKENDS, VECTORISING_FLAGS, Backend
from biograd.models.genn.runner import GennRunner
from biograd.models.network import BioGradNetwork
from biograd.models.runners import CudaRunner, Runner, RuntimeRunner, StandaloneRunner
from biograd.models.spec import NetworkSpec

RUNNERS = {"runtime": RuntimeRunner(), "cpp_standalone": StandaloneRunner(), "cuda_standalone": CudaRunner(),
           "genn": GennRunner(Path("unused"))}
MEMBERS = [name for name, _ in inspect.getmembers(Runner, inspect.isfunction) if not name.startswith("_")]


@pytest.mark.parametrize("kind", RUNNERS)
def test_every_runner_implements_the_runner_protocol(kind):
    """Each runner has the protocol's attribute and its methods with the protocol's parameters (names, kinds,
    defaults), not only methods of those names."""
    runner = RUNNERS[kind]
    assert isinstance(runner, Runner)
    assert isinstance(runner.runs_whole_build, bool)
    assert set(MEMBERS) == {"adopt", "prepare", "compile", "run"}
    for name in MEMBERS:
        expected, found = inspect.signature(getattr(Runner, name)), inspect.signature(getattr(type(runner), name))
        assert [(p.name, p.kind, p.default) for p in found.parameters.values()] == \
            [(p.name, p.kind, p.default) for p in expected.parameters.values()], f"{type(runner).__name__}.{name}"


@pytest.mark.parametrize(("arguments", "message"), [
    ({"name": "gpu"}, "unknown backend 'gpu' (cpp_standalone, cuda_standalone, genn, numpy, cython)"),
    ({"name": "cpp_standalone"}, "backend cpp_standalone builds into a directory"),
    ({"name": "genn", "directory": "b", "genn_backend": "opencl"}, "unknown GeNN backend 'opencl'"),
    ({"name": "cpp_standalone", "directory": "b", "threads": 0}, "threads=0: at least 1"),
    ({"name": "genn", "directory": "b", "threads": 2}, "threads=2: at least 1, and more only on cpp_standalone"),
    ({"name": "numpy", "profile": True}, "profile: the standalone backends time their code objects, not numpy"),
])
def test_a_backend_is_checked_when_made(arguments, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        Backend(**arguments)


def test_each_backend_gives_its_runner_once_it_is_brian2s_device(tmp_path):
    numpy = Backend()
    numpy.activate()
    assert type(numpy.runner()) is RuntimeRunner and b2.prefs.codegen.target == "numpy"
    genn = Backend("genn", str(tmp_path / "genn"), genn_backend="single_threaded_cpu")
    genn.activate()  # objects built on the runtime device, run by GeNN
    runner = genn.runner()
    assert type(runner) is GennRunner and runner.directory == tmp_path / "genn"
    assert runner.backend == "single_threaded_cpu"
    with pytest.raises(RuntimeError, match="backend cpp_standalone: Brian2's active device is RuntimeDevice"):
        Backend("cpp_standalone", tmp_path / "build").runner()
    for dense in (True, True, False):
        standalone = Backend("cpp_standalone", tmp_path / "build", dense_pathways=dense)
        standalone.activate()
        runner = standalone.runner()
        assert type(runner) is StandaloneRunner and runner.dense_pathways is dense and not runner.profile
        assert b2.prefs.devices.cpp_standalone.openmp_threads == 0
        flags = b2.prefs.codegen.cpp.extra_compile_args_gcc
        assert all((flag in flags) is dense for flag in VECTORISING_FLAGS), "g++ vectorises the fast path only"
        assert len(flags) == len(set(flags)), "activating twice adds nothing"
    threaded = Backend("cpp_standalone", tmp_path / "build", threads=2, profile=True)
    threaded.activate()
    assert b2.prefs.devices.cpp_standalone.openmp_threads == 2 and threaded.runner().profile
    Backend("cpp_standalone", tmp_path / "build").activate()  # one thread again
    assert b2.prefs.devices.cpp_standalone.openmp_threads == 0
    assert Backend.active() == Backend("cpp_standalone", tmp_path / "build")


def test_a_network_runs_on_the_backend_it_is_given(tmp_path):
    """Given none, on the backend of Brian2's active device; given one that is not active, it refuses to build."""
    spec = NetworkSpec(sizes=(4, 3, 2))
    assert type(BioGradNetwork(spec, slots=1).runner) is RuntimeRunner
    Backend("cpp_standalone", tmp_path).activate()
    net = BioGradNetwork(spec, slots=1)
    assert net.backend == Backend("cpp_standalone", tmp_path) and type(net.runner) is StandaloneRunner
    with pytest.raises(RuntimeError, match="call activate"):
        BioGradNetwork(spec, slots=1, backend=Backend("numpy"))


def test_a_training_config_names_its_backend_for_a_build_folder(tmp_path):
    train = TrainConfig(backend="genn", templates="brian2", genn_backend="cuda")
    assert train.backend_in(tmp_path) == Backend("genn", tmp_path, dense_pathways=False, genn_backend="cuda")
    assert TrainConfig().backend_in(tmp_path).dense_pathways
    assert set(TrainConfig.model_fields["backend"].annotation.__args__) == set(BACKENDS)


def test_a_missing_tool_is_named_before_a_run_directory_exists(tmp_path, monkeypatch):
    """No make or C++ compiler on PATH (cpp_standalone), no pygenn (genn): one line naming what to install,
    raised before anything is created; the runtime backends need nothing."""
    from biograd.config import load_config
    from biograd.launch import MissingToolError, start_runs

    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    monkeypatch.delenv("CXX", raising=False)
    assert Backend("cpp_standalone", tmp_path).missing() == (
        "backend cpp_standalone needs make and g++, not found on this machine: install a C++ tool chain "
        "(e.g. apt install build-essential) or set $CXX; or train with backend numpy")
    assert Backend("numpy").missing() is None and Backend("cython").missing() is None
    config = load_config(Path(__file__).parents[1] / "runs" / "configs" / "demo.yaml")
    with pytest.raises(MissingToolError, match=r"^backend cpp_standalone needs make and g\+\+"):
        start_runs(config, root=tmp_path / "out")
    assert not (tmp_path / "out").exists()
    monkeypatch.setattr("importlib.util.find_spec", lambda name, *args: None)
    assert Backend("genn", tmp_path).missing() == ("backend genn needs pygenn, not found on this machine: run "
                                                   "'make genn'; or train with backend numpy")


def test_a_cxx_with_arguments_or_blank_is_the_compiler_make_runs(tmp_path, monkeypatch):
    """The makefile runs ``$(CXX) ...``: a $CXX with arguments ("ccache g++") needs its first word, and a blank one
    is make's default g++. Both were looked up whole: 'needs ccache g++, not found', 'needs make and , not found'."""
    from biograd.models.runners import compile_project

    (tmp_path / "makefile").write_text('all:\n\t@echo "[$(CXX)]"\n')
    monkeypatch.setenv("CXX", " ")
    for name in ("MAKEFLAGS", "MAKELEVEL"):  # under `make test`: no "make[1]: Entering directory" lines
        monkeypatch.delenv(name, raising=False)
    compile_project(tmp_path)  # make's default compiler, not an empty command
    assert (tmp_path / "make.log").read_text() == "[g++]\n"
    tools = tmp_path / "bin"
    tools.mkdir()
    for name in ("make", "ccache"):
        (tools / name).write_text("#!/bin/sh\n")
        (tools / name).chmod(0o755)
    monkeypatch.setenv("PATH", str(tools))
    for cxx in ("ccache g++", "  ccache  'g++' -O2 "):
        monkeypatch.setenv("CXX", cxx)
        assert Backend("cpp_standalone", tmp_path).missing() is None, cxx
    for cxx, absent in (("clang++ -O2", "clang++"), ("", "g++"), (" ", "g++"), ('""', "g++")):
        monkeypatch.setenv("CXX", cxx)
        assert Backend("cpp_standalone", tmp_path).missing() == (
            f"backend cpp_standalone needs {absent}, not found on this machine: install a C++ tool chain (e.g. apt "
            "install build-essential) or set $CXX; or train with backend numpy"), cxx


def test_make_receives_the_signals_of_the_process_group(tmp_path):
    """compile_project runs make as a child: Ctrl-C (SIGINT to the process group) ends make and reaches the
    trainer's stop handling too (Brian2's os.system ignored SIGINT in the caller: the stop went unseen)."""
    import os
    import signal
    import subprocess
    import sys
    import time

    (tmp_path / "makefile").write_text("all:\n\tsleep 60\n")
    script = ("import time\nfrom biograd.signals import stop_requests\n"
              "from biograd.models.runners import CompileError, compile_project\n"
              "with stop_requests() as stop:\n    start = time.monotonic()\n    try:\n"
              f"        compile_project({str(tmp_path)!r})\n"
              "    except CompileError as err:\n        print('failed:', err)\n"
              "    print('stop:', stop, 'seconds:', round(time.monotonic() - start))\n")
    child = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                             text=True, start_new_session=True)
    deadline = time.monotonic() + 60
    while not (tmp_path / "make.log").exists() and time.monotonic() < deadline:
        time.sleep(0.1)
    time.sleep(0.5)  # make has started its recipe
    os.killpg(child.pid, signal.SIGINT)
    out = child.communicate(timeout=60)[0]
    assert "stop: ['SIGINT']" in out and "failed: make failed in" in out and "make.log" in out, out
    assert int(out.rsplit("seconds:", 1)[1]) < 30, "make was stopped, not waited for"
