"""Shared test set-up: Brian2 on the numpy target, device reset after every test (as brian2's own conftest).

Tiers (markers): the fast tier (``make test``) runs everything on the runtime device plus the one
standalone test marked ``smoke``; ``standalone`` tests compile C++ (``make test-standalone``), ``slow``
ones train for minutes (``make test-slow``), ``cuda`` ones need nvcc (``make test-cuda``). A test that
uses the ``standalone`` fixture is marked ``standalone`` here.
"""

import signal

import brian2 as b2
import pytest

from biograd.models.backend import Backend


def pytest_collection_modifyitems(items):
    for item in items:
        if "standalone" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.standalone)


@pytest.fixture(autouse=True)
def _brian_runtime():
    Backend("numpy").activate()
    b2.device.reinit()
    b2.device.activate()
    yield
    Backend("numpy").activate()
    b2.device.reinit()
    b2.device.activate()


@pytest.fixture(autouse=True)
def _stop_handlers():
    """SIGINT and SIGTERM handled after each test as before it: a test that takes a stop in this process leaves
    them ignored (a stop is final, biograd.signals), and the processes of later tests would inherit that."""
    handlers = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}
    yield
    for sig, handler in handlers.items():
        signal.signal(sig, handler)


@pytest.fixture
def standalone(tmp_path):
    """Switch to cpp_standalone (build once, rerun with run_args) in a fresh project folder; calling the
    fixture's value switches to another folder and returns that backend."""

    def activate(name: str = "build") -> Backend:
        backend = Backend("cpp_standalone", tmp_path / name)
        backend.activate()  # forgets objects and arrays of an earlier build
        b2.prefs.devices.cpp_standalone.extra_make_args_unix = ["-j2"]
        return backend

    activate()
    return activate
