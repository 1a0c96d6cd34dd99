"""Shared test set-up: Brian2 on the numpy target, device reset after every test (as brian2's own conftest)."""

import brian2 as b2
import pytest


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
