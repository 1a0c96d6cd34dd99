"""Builds in worker processes: on a compiled backend (standalone or GeNN) the training build owns its
process's device, so the evaluation and probe builds each live in a process of their own (:class:`Worker`),
compiled once (while the training build compiles) and rerun with ``run_args`` like the training build."""

from __future__ import annotations

import multiprocessing
import os
import signal
import threading
import time
import traceback
from multiprocessing.connection import Connection

from biograd.models.backend import Backend
from biograd.signals import STOP_SIGNALS, stops_deferred_for_children, take_stops

PARENT_POLL_S = 1.0  # how often a worker checks that the trainer still lives
STOP_WAIT_S = 5.0  # how long a worker ended at once may take before it is killed


class WorkerEnded(RuntimeError):
    """A worker process ended before it answered (killed, or crashed)."""


class RemoteTraceback(Exception):
    """Where a worker process raised the error that a call re-raises here (the error's cause)."""


def _exit_with_parent(parent: int) -> None:
    """Daemon thread of a worker: end the worker once its trainer is gone (even after a SIGKILL, which
    leaves the trainer no chance to close it)."""
    while os.getppid() == parent:
        time.sleep(PARENT_POLL_S)
    os._exit(1)


def serve(connection: Connection, backend: Backend, factory, args: tuple) -> None:
    """A worker process's life: ``factory(*args, backend=backend)`` built on ``backend``, then its methods
    called as the trainer asks over ``connection`` (a request: the method's name and arguments; an answer:
    ``(True, result, None)`` or ``(False, error, traceback)``) until the trainer closes it. Stop signals are
    the trainer's to handle: the worker and what it starts (make, the compiler, a binary) are a process group of
    their own, which Ctrl-C in a terminal (the terminal's process group) does not reach and which the trainer
    ends when it stops (:meth:`Worker.close`); the worker also ends when the trainer is gone."""
    os.setpgid(0, 0)
    take_stops(signal.SIG_IGN)  # one sent to the trainer's process group before is the trainer's
    for stop in STOP_SIGNALS:  # as by default (SIG_IGN would be inherited by make and the compiler)
        signal.signal(stop, signal.SIG_DFL)
    threading.Thread(target=_exit_with_parent, args=(os.getppid(),), daemon=True, name="parent-watch").start()
    served, failure = None, None
    try:
        backend.activate()
        served = factory(*args, backend=backend)
    except Exception as err:  # answered to every call
        failure = err
    while True:
        try:
            method, method_args = connection.recv()
        except EOFError:  # closed by the trainer
            return
        try:
            if failure is not None:
                raise failure
            answer = (True, getattr(served, method)(*method_args), None)
        except Exception as err:
            answer = (False, err, traceback.format_exc())
        try:
            connection.send(answer)
        except Exception:  # an error (or a result) that does not pickle
            connection.send((False, RuntimeError(f"{type(answer[1]).__name__}: {answer[1]}"), answer[2]))


class Worker:
    """``factory(*args, backend=backend)`` (an Evaluator or a Prober) in a worker process of its own, started
    now (spawned, it compiles while the training build compiles); its methods are called as the object's own,
    each call waiting for its answer."""

    def __init__(self, backend: Backend, factory, *args):
        context = multiprocessing.get_context("spawn")
        self._connection, worker_end = context.Pipe()
        self._process = context.Process(target=serve, args=(worker_end, backend, factory, args),
                                        name=f"{factory.__name__} worker")
        with stops_deferred_for_children():
            self._process.start()
        worker_end.close()

    def __getattr__(self, method: str):
        if method.startswith("_"):
            raise AttributeError(method)
        return lambda *args: self._call(method, args)

    def _call(self, method: str, args: tuple):
        try:
            self._connection.send((method, args))
            succeeded, value, trace = self._connection.recv()
        except (EOFError, OSError) as err:
            self._process.join(timeout=5)
            raise WorkerEnded(f"the {self._process.name} ended (exit code {self._process.exitcode})") from err
        if not succeeded:
            raise value from RemoteTraceback(trace)
        return value

    def close(self, at_once: bool = False) -> None:
        """End the worker and wait for it: once it has finished what it is doing (its build: a compile can take
        a minute), or ``at_once`` (the session stopped: a signal or an error), with what it runs: SIGTERM to its
        process group (make ends its compilers and deletes its unfinished targets), SIGKILL to a worker that is
        still there :data:`STOP_WAIT_S` later (one that was starting and did not take signals yet)."""
        self._connection.close()
        if at_once and self._process.exitcode is None:
            try:
                os.killpg(self._process.pid, signal.SIGTERM)
            except ProcessLookupError:  # not yet a group of its own, its stop signals blocked: nothing started yet
                self._process.kill()
            self._process.join(STOP_WAIT_S)
            if self._process.exitcode is None:
                self._process.kill()
        self._process.join()


def hosted(backend: Backend, factory, *args):
    """``factory(*args, backend=backend)`` in this process (runtime device), or in a :class:`Worker` on a compiled
    ``backend`` (standalone or GeNN: a build of its own, compiled while the training build compiles)."""
    if not backend.compiled:
        return factory(*args, backend=backend)
    return Worker(backend, factory, *args)
