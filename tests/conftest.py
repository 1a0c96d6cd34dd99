"""Shared test set-up: Brian2 on the numpy target, device reset after every test (as brian2's own conftest)."""

import brian2 as b2
import pytest

from biograd.models.network import use_backend


@pytest.fixture(autouse=True)
def _brian_runtime():
    b2.prefs.codegen.target = "numpy"
    b2.set_device("runtime")
    b2.device.reinit()
    b2.device.activate()
    yield
    b2.set_device("runtime")
    b2.device.reinit()
    b2.device.activate()


@pytest.fixture
def standalone(tmp_path):
    """Switch to cpp_standalone (build once, rerun with run_args) in a fresh project folder."""

    def activate(name: str = "build"):
        use_backend("cpp_standalone", tmp_path / name)  # forgets objects and arrays of an earlier build
        b2.prefs.devices.cpp_standalone.extra_make_args_unix = ["-j2"]

    activate()
    return activate
