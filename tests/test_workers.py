"""A build in a worker process of its own (biograd.workers): calls answered, errors passed on, the process ended."""

import os
import signal
import time

import pytest
from support import SlowBuild, process_alive

from biograd.models.backend import Backend
from biograd.workers import RemoteTraceback, Worker, hosted


class Served:
    """What a worker serves in these tests: made on the backend it is given, in the worker's own process."""

    def __init__(self, value: int, backend: Backend):
        if value < 0:
            raise ValueError(f"no served object of {value}")
        self.value, self.backend = value, backend

    def describe(self, extra: int) -> tuple:
        return self.value + extra, self.backend.name, os.getpid(), os.getpgrp()

    def fail(self) -> None:
        raise KeyError("asked to fail")


def test_a_worker_serves_its_object_in_a_process_of_its_own_until_closed():
    worker = Worker(Backend("numpy"), Served, 40)
    try:
        total, backend, pid, group = worker.describe(2)
        assert (total, backend) == (42, "numpy") and pid != os.getpid()
        assert group == pid != os.getpgrp(), "a process group of its own: stop signals are the trainer's to handle"
        with pytest.raises(KeyError, match="asked to fail") as raised:
            worker.fail()
        assert isinstance(raised.value.__cause__, RemoteTraceback) and "in fail" in str(raised.value.__cause__)
        assert worker.describe(0)[0] == 40, "it serves on after an error"
    finally:
        worker.close()
    assert not worker._process.is_alive() and worker._process.exitcode == 0


def test_a_worker_that_could_not_build_its_object_says_why_at_the_first_call():
    worker = Worker(Backend("numpy"), Served, -1)
    try:
        with pytest.raises(ValueError, match="no served object of -1"):
            worker.describe(0)
    finally:
        worker.close()


def test_on_the_runtime_device_the_object_is_made_here(tmp_path):
    served = hosted(Backend("numpy", tmp_path), Served, 1)
    assert isinstance(served, Served) and served.backend == Backend("numpy", tmp_path)


def test_a_worker_ended_at_once_ends_with_what_it_runs(tmp_path):
    """A stop while a worker compiles (a trial on cpp_standalone): the trainer waited until the compile ended (a
    minute; make ignored the signal as the worker did). Ended at once, the worker and its make (here a stand-in
    child in the worker's process group) end within a second or two, SIGTERM to the group."""
    pidfile = tmp_path / "child.pid"
    worker = Worker(Backend("numpy"), SlowBuild, str(pidfile), 60)
    deadline = time.monotonic() + 30
    while not pidfile.is_file() and time.monotonic() < deadline:
        time.sleep(0.05)
    child = int(pidfile.read_text())
    assert os.getpgid(child) == worker._process.pid, "what the worker starts is in the worker's process group"
    start = time.monotonic()
    worker.close(at_once=True)
    assert time.monotonic() - start < 3 and worker._process.exitcode == -signal.SIGTERM
    deadline = time.monotonic() + 3
    while process_alive(child) and time.monotonic() < deadline:  # init reaps it
        time.sleep(0.05)
    assert not process_alive(child)
