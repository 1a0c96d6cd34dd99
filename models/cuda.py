"""The GPU backend, ``backend: cuda_standalone``: brian2cuda set up for this machine's toolchain.

brian2cuda 1.0b1 (the ``gpu`` extra; it pins brian2 2.10.1) generates CUDA from the same Brian2
model, and a run reruns the compiled binary with ``run_args`` exactly as cpp_standalone does.
Three of its defaults do not fit CUDA 13, so :func:`configure` sets:

- C++17 for nvcc and the host compiler: CUDA 13's Thrust/CUB refuse C++11, which brian2cuda's
  makefile hard-codes (nvcc keeps the last ``-std`` it is given);
- cuRAND from the CUDA toolkit when it has one, else from the ``nvidia-curand`` wheel, whose
  library carries only a versioned name: the build links an unversioned ``libcurand.so`` made in
  its own folder, and the binary finds the wheel's library through an rpath;
- the GPU: detected when ``nvidia-smi`` lists one; otherwise the project is generated and
  compiled only (it cannot run), for the compute capability in ``BIOGRAD_CUDA_ARCH``
  (default 9.0: H100/H200).

brian2cuda 1.0b1 lower-cases every run_args value before it parses it (``set_variable_by_name``
in its ``objects.cu`` template), the path of a value file included: the file of an object whose
name has capitals (``static_arrays/init_W1_w_<md5>.dat``) is not found, the binary prints
"Error reading ..." and runs on with the values of the build. :func:`check_run_arg_names` refuses
such names before a run.

What is checked (runs/RESULTS.md, "Backends and speed"): on an H200 the deterministic path (no dither,
no sleep) equals cpp_standalone; training in sleep mode on a GPU has not been rerun since the
synapses got lower-case names (scripts/gpu_check.sh does).
"""

from __future__ import annotations

import importlib.util
import logging
import os
import shutil
import subprocess
from pathlib import Path

import brian2 as b2

ARCH_VARIABLE = "BIOGRAD_CUDA_ARCH"
DEFAULT_ARCH = 9.0
INSTALL_HINT = "install the gpu extra: pip install -e '.[gpu]' (or: make gpu)"
log = logging.getLogger(__name__)


class CudaSetupError(RuntimeError):
    """brian2cuda, nvcc or cuRAND is missing; the message says what to install."""


def reseed_code(variable: str) -> str:
    """C++ for main(): reseed brian2cuda's random numbers (host and device API) from ``variable``."""
    return f"""
if (const char* _chunk_seed = std::getenv("{variable}"))
    random_number_buffer.set_seed(std::strtoull(_chunk_seed, nullptr, 10));
"""


def check_run_arg_names(run_args: dict) -> None:
    """Refuse run_args whose names have capitals: brian2cuda would not find their value files.

    Brian2 names the file of an array value ``init_<owner>_<variable>_<md5>.dat`` (a TimedArray's
    ``init_<name>_values_<md5>.dat``), and brian2cuda 1.0b1 opens it under a lower-cased path.
    """
    names = {f"{key.group_name}.{key.name}" if hasattr(key, "group_name") else key.name for key in run_args}
    if upper := sorted(name for name in names if name != name.lower()):
        raise CudaSetupError(f"cuda_standalone cannot set {', '.join(upper)} through run_args: brian2cuda 1.0b1 "
                             "lower-cases the path of the value file, so objects and variables set between runs "
                             "need lower-case names")


def gpu_present() -> bool:
    """Whether ``nvidia-smi`` lists a GPU on this machine."""
    smi = shutil.which("nvidia-smi")
    if smi is None:
        return False
    listed = subprocess.run([smi, "-L"], capture_output=True, text=True, check=False)
    return listed.returncode == 0 and "GPU" in listed.stdout


def curand_dirs() -> tuple[Path, Path] | None:
    """(include, lib) of the ``nvidia-curand`` wheel, or None when the CUDA toolkit has its own cuRAND."""
    nvcc = shutil.which("nvcc")
    if nvcc and any((Path(nvcc).resolve().parents[1] / lib / "libcurand.so").exists() for lib in ("lib64", "lib")):
        return None
    spec = importlib.util.find_spec("nvidia")  # the namespace package of NVIDIA's wheels
    for root in [Path(p) for p in spec.submodule_search_locations or []] if spec else []:
        for sub in ("cu13", "cu12", "curand"):
            if any((root / sub / "lib").glob("libcurand.so*")) and (root / sub / "include" / "curand.h").exists():
                return root / sub / "include", root / sub / "lib"
    raise CudaSetupError(f"cuRAND not found in the CUDA toolkit nor in an nvidia-curand wheel: {INSTALL_HINT}")


def _with(flags: list[str], flag: str, drop: str | None = None) -> list[str]:
    """``flags`` plus ``flag`` once (without the flags starting with ``drop``): configure can run twice."""
    return [f for f in flags if f != flag and not (drop and f.startswith(drop))] + [flag]


def configure(directory: Path) -> bool:
    """Set brian2cuda's preferences for a build in ``directory``; returns whether it can also run here."""
    if importlib.util.find_spec("brian2cuda") is None:
        raise CudaSetupError(f"backend cuda_standalone needs brian2cuda: {INSTALL_HINT}")
    if shutil.which("nvcc") is None:
        raise CudaSetupError("backend cuda_standalone needs nvcc (the CUDA toolkit) on the PATH")
    import brian2cuda  # noqa: F401  (registers the cuda_standalone device and its preferences)
    log.warning("cuda_standalone: training across chunks has not been checked on a GPU since the run_args fix "
                "(runs/RESULTS.md); run scripts/gpu_check.sh on the GPU before trusting a CUDA training run")

    cpp, cuda = b2.prefs.codegen.cpp, b2.prefs.devices.cuda_standalone.cuda_backend
    cuda.extra_compile_args_nvcc = _with(cuda.extra_compile_args_nvcc, "-std=c++17", drop="-std=")
    cpp.extra_compile_args_gcc = _with(cpp.extra_compile_args_gcc, "-std=c++17", drop="-std=")
    wheel = curand_dirs()
    if wheel is not None:
        include, lib = wheel
        links = Path(directory).resolve() / "lib"  # make runs inside the build folder: no relative -L
        links.mkdir(parents=True, exist_ok=True)
        link, library = links / "libcurand.so", sorted(lib.glob("libcurand.so.*"))[0]
        if link.is_symlink() and link.resolve() != library.resolve():  # e.g. a build folder from another machine
            link.unlink()
        if not link.is_symlink():
            link.symlink_to(library)
        cuda.extra_compile_args_nvcc = _with(cuda.extra_compile_args_nvcc, f"-I{include}")
        cpp.include_dirs = _with(cpp.include_dirs, str(include))
        cpp.library_dirs = _with(cpp.library_dirs, str(links))
        cpp.runtime_library_dirs = _with(cpp.runtime_library_dirs, str(lib))
    if gpu_present():
        cuda.detect_gpus = True
        return True
    try:
        arch = float(os.environ.get(ARCH_VARIABLE, DEFAULT_ARCH))
    except ValueError:
        raise CudaSetupError(f"{ARCH_VARIABLE}={os.environ[ARCH_VARIABLE]!r} is not a compute capability "
                             "(e.g. 9.0 for H100/H200, 8.0 for A100)") from None
    log.warning("no GPU on this machine: the cuda_standalone project is compiled for compute capability %s "
                "(%s) but cannot run here", arch, ARCH_VARIABLE)
    cuda.detect_gpus, cuda.gpu_id, cuda.compute_capability = False, 0, arch
    return False
