"""Stopping a run on a signal: SIGINT (Ctrl-C) and SIGTERM (``kill``, ``timeout``, a batch scheduler) ask
the trainer to stop at a safe point (:func:`stop_requests`), which it does by raising :class:`Terminated`;
before and after the trainer, a command stops at once (:func:`stops_at_once`), or, while it makes something
that must be whole, as the block ends (:func:`stops_deferred`)."""

from __future__ import annotations

import logging
import signal
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from multiprocessing import resource_tracker
from pathlib import Path

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


class Terminated(BaseException):
    """SIGINT (Ctrl-C) or SIGTERM (``kill``, ``timeout``, a batch scheduler), to the trainer or to its whole
    process group, stops a run: after the current task and its checkpoint, or, when the signal also
    ended a compiled binary, make or a worker of that task, at once with the last checkpoint intact.
    Status ``failed`` with the signal's name, workers closed, ``--resume`` ready."""

    def __init__(self, message: str, signal_name: str):
        super().__init__(message)
        self.signal_name = signal_name

    @property
    def exit_code(self) -> int:
        """128 + the signal's number (130 for SIGINT, 143 for SIGTERM), as a shell reports it."""
        return 128 + signal.Signals[self.signal_name].value


@contextmanager
def stop_requests(notice: bool = True) -> Iterator[list[str]]:
    """Within the block, SIGINT or SIGTERM appends its name to the yielded list instead of interrupting
    the process (the caller stops at a safe point; ``notice``: says so on stderr); a second one acts as
    before the block (:func:`stops_at_once`: Terminated; by default KeyboardInterrupt, or the end of the
    process). Raising from the handler instead could land inside a finaliser, where Python ignores the
    exception."""
    requested: list[str] = []
    if threading.current_thread() is not threading.main_thread():
        yield requested
        return

    def request(signum, frame):
        requested.append(signal.Signals(signum).name)
        _restore(previous)
        if notice:
            print(f"{signal.Signals(signum).name}: stopping after this task (send it again to stop at once)",
                  file=sys.stderr, flush=True)

    previous = {stop: signal.signal(stop, request) for stop in STOP_SIGNALS}
    try:
        yield requested
    finally:
        _restore(previous)


def _stopping() -> None:
    """A stop is taken: the process ends (run statuses, workers, the line that says so), and more stop signals
    meanwhile change nothing. They are ignored from now on (a second Ctrl-C printed a second line, or, as Python
    shut down, ended the process by the signal); the blocks that end meanwhile keep that (:func:`_restore`)."""
    for stop in STOP_SIGNALS:
        signal.signal(stop, signal.SIG_IGN)


def _restore(previous: dict) -> None:
    """The stop handlers a block replaced, put back; unless a stop was taken within it (:func:`_stopping`)."""
    for stop, handler in previous.items():
        if signal.getsignal(stop) is not signal.SIG_IGN:
            signal.signal(stop, handler)


REDELIVERY_S = 0.01  # a stop that a finaliser swallowed is raised again after this long


def exit_on_stop(program: str = "biograd") -> None:
    """In the ``program`` (a process whose main module is that console script, nowhere else), from its first
    import on (Python loading the command line, where Ctrl-C was a KeyboardInterrupt traceback and SIGTERM an
    exit without a word): SIGINT or SIGTERM ends the process with one line and exit code 128 + the signal's
    number (atexit handlers run). Commands that stop otherwise install their own handlers
    (:func:`stops_at_once`, :func:`stop_requests`) and restore this one."""

    def stop(signum, frame):
        _stopping()
        print(f"stopped by {signal.Signals(signum).name}", file=sys.stderr, flush=True)
        raise SystemExit(128 + signum)

    main = Path(getattr(sys.modules.get("__main__"), "__file__", None) or "")
    if main.stem == program and threading.current_thread() is threading.main_thread():
        for stop_signal in STOP_SIGNALS:
            signal.signal(stop_signal, stop)


@contextmanager
def stops_at_once() -> Iterator[None]:
    """Within the block (a command: imports, config, data, run directories, the trainer inside), SIGINT or
    SIGTERM raises :class:`Terminated` at once ("stopped by SIGINT"), a ``BaseException`` that no ``except
    Exception`` takes. Python ignores an exception raised inside a finaliser or weakref callback (it prints
    'Exception ignored in ...' and goes on): such a stop is raised again :data:`REDELIVERY_S` later in the
    code that runs then (:func:`sys.unraisablehook`, from a timer thread: a handler called from the hook would
    raise inside it), and at the latest when the block ends without an error. Blocks that handle the signals
    themselves (:func:`stop_requests`) nest inside. Once a stop is taken, more are ignored (:func:`_stopping`)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    swallowed: list[str] = []
    active = threading.Event()

    def stop(signum, frame):
        name = signal.Signals(signum).name
        _stopping()
        raise Terminated(f"stopped by {name}", name)

    def again(signum: int) -> None:
        if active.is_set():  # a real signal, which also ends a wait (sleep, a pipe) the main thread is in
            signal.pthread_kill(threading.main_thread().ident, signum)

    def unraisable(info) -> None:
        if not isinstance(info.exc_value, Terminated):
            return hook(info)
        swallowed.append(info.exc_value.signal_name)
        if threading.current_thread() is threading.main_thread():  # where the handler ran: taken again when sent
            for stop_signal in STOP_SIGNALS:
                signal.signal(stop_signal, stop)
        threading.Timer(REDELIVERY_S, again, (signal.Signals[info.exc_value.signal_name],)).start()
        return None

    previous = {stop_signal: signal.signal(stop_signal, stop) for stop_signal in STOP_SIGNALS}
    hook, sys.unraisablehook = sys.unraisablehook, unraisable
    active.set()
    try:
        yield
    finally:
        active.clear()
        sys.unraisablehook = hook
        _restore(previous)
    if swallowed:  # and not raised again: the block ended before the timer
        _stopping()
        raise Terminated(f"stopped by {swallowed[0]}", swallowed[0])


@contextmanager
def stops_deferred_for_children() -> Iterator[None]:
    """:func:`stops_deferred` for a block that starts processes which take the stop signals themselves (the
    trainer's workers, Dask's): those begin with SIGINT and SIGTERM blocked (threads and processes inherit the
    signal mask, across exec), so that one sent to the process group while Python starts there (before: a
    KeyboardInterrupt traceback from that process) waits until it takes them (:func:`take_stops`). The
    resource tracker of multiprocessing starts first: started lazily by the block's first process, it would
    unblock both signals in the thread that started it, and so in the processes started after."""
    resource_tracker.ensure_running()
    with stops_deferred():
        blocked = signal.pthread_sigmask(signal.SIG_BLOCK, STOP_SIGNALS)
        try:
            yield
        finally:
            signal.pthread_sigmask(signal.SIG_SETMASK, blocked)  # one that came meanwhile: to stops_deferred


def take_stops(handler) -> None:
    """In a process started under :func:`stops_deferred_for_children`: SIGINT and SIGTERM go to ``handler`` (a
    function, ``signal.SIG_IGN`` or ``signal.SIG_DFL``) from now on, one that came meanwhile at once."""
    for stop in STOP_SIGNALS:
        signal.signal(stop, handler)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, STOP_SIGNALS)


def silence_logging(signum=None, frame=None) -> None:
    """Silence every logger of this process (one that is being ended: what its libraries say of it is not news)."""
    logging.disable(logging.CRITICAL)


def dask_setup(worker) -> None:
    """Dask's preload hook (``preload=["biograd.signals"]``, a light module: a worker runs it before it connects),
    in each worker process of a sweep's LocalCluster (:func:`biograd.sweep.dask_client`): a stop signal is the
    sweep process's to act on (it ends its workers); one that reaches a worker (Ctrl-C reaches the whole process
    group) only silences its log, and what the worker starts (make, the compiler) gets it as usual. Dask's
    default took it as a KeyboardInterrupt in the worker's event loop: log lines and tracebacks."""
    take_stops(silence_logging)


@contextmanager
def stops_deferred() -> Iterator[None]:
    """Within the block (a few file operations that must not stop halfway), SIGINT or SIGTERM waits: when the
    block ends, the first one is raised again, to act as it would have (under :func:`stops_at_once`:
    :class:`Terminated`; under :func:`stop_requests`: a request to stop at the next safe point)."""
    with stop_requests(notice=False) as requested:
        yield
    if requested:
        signal.raise_signal(signal.Signals[requested[0]])
