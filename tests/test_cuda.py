"""The GPU backend (brian2cuda): the model generates and compiles to CUDA on any machine with nvcc;
where a GPU is present, it trains like cpp_standalone.

Marker ``cuda`` (``make test-cuda`` installs the gpu extra first); skipped without brian2cuda or nvcc.
The set-up errors are checked in the default suite.
"""

import importlib.util
import re
import shutil
from pathlib import Path

import brian2 as b2
import numpy as np
import pytest
from support import tiny_spec
from test_backends import samples
from test_dynamics import assert_uniform_and_fresh, dither_draws

from biograd.models import cuda
from biograd.models.backend import Backend
from biograd.models.network import BioGradNetwork
from biograd.models.runners import SEED_VARIABLE
from biograd.models.spec import NetworkSpec

NEEDS_CUDA = pytest.mark.skipif(importlib.util.find_spec("brian2cuda") is None or shutil.which("nvcc") is None,
                                reason="needs brian2cuda (make gpu) and nvcc (the CUDA toolkit)")
ON_GPU = pytest.mark.skipif(not cuda.gpu_present(), reason="no GPU on this machine")
# deterministic (regular input code, deterministic error rounding, no sleep), two hidden layers
DEEP = NetworkSpec(sizes=(64, 20, 12, 10), feedback="fixed_random", params={"error_events": {"dither_error": 0}})


def test_missing_brian2cuda_says_what_to_install(monkeypatch, tmp_path):
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name: None if name == "brian2cuda" else real(name))
    with pytest.raises(cuda.CudaSetupError, match=r"needs brian2cuda: install the gpu extra: pip install -e '\.\[gpu"):
        Backend("cuda_standalone", tmp_path).activate()


def test_missing_nvcc_is_named(monkeypatch, tmp_path):
    if importlib.util.find_spec("brian2cuda") is None:
        pytest.skip("brian2cuda is checked first")
    monkeypatch.setattr(shutil, "which", lambda name: None)
    with pytest.raises(cuda.CudaSetupError, match="needs nvcc"):
        Backend("cuda_standalone", tmp_path).activate()


@pytest.fixture(autouse=True)
def back_to_runtime():
    """Later tests in this process get the runtime device and the compiler preferences they had."""
    touched = ["codegen.cpp.extra_compile_args_gcc", "codegen.cpp.include_dirs", "codegen.cpp.library_dirs",
               "codegen.cpp.runtime_library_dirs"]
    before = {name: list(b2.prefs[name]) for name in touched}
    yield
    for name, value in before.items():
        b2.prefs[name] = value
    b2.set_device("runtime")
    b2.device.reinit()
    b2.device.activate()


def test_bad_compute_capability_is_named(monkeypatch, tmp_path):
    if importlib.util.find_spec("brian2cuda") is None or shutil.which("nvcc") is None or cuda.gpu_present():
        pytest.skip("checked where the project compiles without a GPU")
    monkeypatch.setenv(cuda.ARCH_VARIABLE, "H100")
    with pytest.raises(cuda.CudaSetupError, match="BIOGRAD_CUDA_ARCH='H100' is not a compute capability"):
        Backend("cuda_standalone", tmp_path).activate()


def test_run_args_names_survive_brian2cudas_lower_casing():
    """brian2cuda looks for static_arrays/init_<name>_... in lower case: capitals lost every chunk's weights."""
    net = BioGradNetwork(tiny_spec((16, 8, 6, 10), "sleep"), slots=2)
    run_args = net._views(net.initial_states) | {net.slot_kind: np.zeros(2)} | net._parameter_values([{"eta": 0.1}])
    assert {"forward1", "feedback2", "layer1", "slot_kind"} <= {getattr(k, "group_name", k.name) for k in run_args}
    cuda.check_run_arg_names(run_args)
    renamed = b2.TimedArray(np.zeros(2), dt=b2.ms, name="Slot_kind")
    with pytest.raises(cuda.CudaSetupError, match="cannot set Slot_kind through run_args: brian2cuda 1.0b1"):
        cuda.check_run_arg_names(run_args | {renamed: np.zeros(2)})
    capital_variable = b2.NeuronGroup(3, "W : 1", name="layer9")
    with pytest.raises(cuda.CudaSetupError, match=r"cannot set layer9\.W through"):
        cuda.check_run_arg_names({capital_variable.W: np.zeros(3)})


@NEEDS_CUDA
def test_build_folder_from_another_machine_gets_this_machines_curand(monkeypatch, tmp_path):
    """A build folder compiled elsewhere (its libcurand.so link dangling here) is relinked, not refused."""
    include, lib = tmp_path / "wheel" / "include", tmp_path / "wheel" / "lib"
    include.mkdir(parents=True)
    lib.mkdir()
    (lib / "libcurand.so.10").touch()
    monkeypatch.setattr(cuda, "curand_dirs", lambda: (include, lib))
    link = tmp_path / "build" / "lib" / "libcurand.so"
    link.parent.mkdir(parents=True)
    link.symlink_to("/elsewhere/nvidia/cu13/lib/libcurand.so.10")
    monkeypatch.chdir(tmp_path)
    cuda.configure(Path("build"))  # relative, as runs/out/<run>/build
    assert link.resolve() == (lib / "libcurand.so.10").resolve()
    assert str(link.parent) in b2.prefs.codegen.cpp.library_dirs, "an absolute -L: make runs inside the build folder"
    cuda.configure(Path("build"))  # a second build in the same folder keeps it
    assert link.resolve() == (lib / "libcurand.so.10").resolve()


@pytest.mark.cuda
@pytest.mark.timeout(3600)  # ~65 CUDA files: about 5 min on 2 free cores
@NEEDS_CUDA
def test_training_build_compiles_to_cuda(tmp_path):
    """Every element of a sleep-mode training build (custom events, TimedArrays, random numbers): one hidden layer
    holds each of them (input, hidden and output layers; forward, feedback and sleep pathways)."""
    spec = tiny_spec((64, 12, 10), "sleep")
    build = tmp_path / "build"
    Backend("cuda_standalone", build).activate()  # make -j<cores> (Brian2's default)
    net = BioGradNetwork(spec, slots=4, seed=1)
    net.compile()
    assert (build / "main").is_file(), "the CUDA project was compiled and linked"
    assert SEED_VARIABLE in (build / "main.cu").read_text(), "chunks reseed cuRAND from the environment"
    nvcc_flags, host_flags = re.search(r"^NVCCFLAGS = (.*)$", (build / "makefile").read_text(), re.M).group(1).split(
        "-Xcompiler")
    assert re.findall(r"-std=(c\+\+\d+)", nvcc_flags)[-1] == "c++17", "nvcc keeps the last -std"
    assert re.findall(r"-std=(c\+\+\d+)", host_flags) == ["c++17"]


@pytest.mark.cuda
@NEEDS_CUDA
@ON_GPU
def test_gpu_trains_like_cpp_standalone(tmp_path):
    """Deterministic chunks (regular input code, no sleep, no dither): the same spikes and weights.

    The chunk starts from weights and a learning rate that differ from the build's, so they must
    arrive through run_args (brian2cuda lost value files of capitalised objects without an error).
    The builds carry record.spikes' EventMonitors (spikes and error events of 20 neurons of hidden layer 1 and
    of the output layer): they must record the same (neuron, time) events.

    Summation order differs on the GPU (parallel additions), so a potential that lands exactly on
    a threshold may flip a spike: the rates and recorded events must agree on nearly every neuron and slot,
    and the weight changes to a small fraction of their size.
    """
    results = {}
    for backend in ("cpp_standalone", "cuda_standalone"):
        Backend(backend, tmp_path / backend).activate()
        net = BioGradNetwork(DEEP, slots=6, seed=1, spikes={1: 20, 3: 10})
        before = net.random_state(np.random.default_rng(7))
        result = net.run_chunk(*samples(0, 6), before, values={"eta": 0.05})
        results[backend] = result, before, net.state, net.spike_times()
    (cpu, before, cpu_after, cpu_events), (gpu, _, gpu_after, gpu_events) = results.values()
    for a, b in zip(cpu.rates, gpu.rates, strict=True):
        assert np.mean(a == b) >= 0.99
    assert set(cpu_events) == set(gpu_events) and {(1, "spike"), (3, "err_pos")} <= set(cpu_events)
    for key, (neurons, times) in cpu_events.items():
        on_cpu, on_gpu = ({(int(i), round(float(t), 9)) for i, t in zip(*pair, strict=True)}
                          for pair in ((neurons, times), gpu_events[key]))
        assert len(on_cpu) > 0 or key[1] != "spike", f"{key}: the CPU build recorded spikes"
        assert len(on_cpu ^ on_gpu) <= 0.02 * len(on_cpu | on_gpu), f"{key}: the same events"
    for w0, wc, wg in zip(before.W, cpu_after.W, gpu_after.W, strict=True):
        change = np.abs(wc - w0).sum()
        assert change > 0, "weights learned"
        assert np.abs(wg - wc).sum() <= 0.02 * change


@pytest.mark.cuda
@NEEDS_CUDA
@ON_GPU
def test_gpu_draws_the_error_dither_uniformly_at_every_slot_start(tmp_path):
    """The rand() in a slot-start operation (run_regularly at the slot's dt), which the test above leaves out."""
    Backend("cuda_standalone", tmp_path / "build").activate()
    assert_uniform_and_fresh(dither_draws(build=tmp_path / "build"))
