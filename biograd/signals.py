"""Stopping a run on a signal: SIGINT (Ctrl-C) and SIGTERM (``kill``, ``timeout``, a batch scheduler) ask
the trainer to stop at a safe point (:func:`stop_requests`), which it does by raising :class:`Terminated`."""

from __future__ import annotations

import signal
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager

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
def stop_requests() -> Iterator[list[str]]:
    """Within the block, SIGINT or SIGTERM appends its name to the yielded list instead of interrupting
    the process (the caller stops at a safe point); a second one acts as usual (KeyboardInterrupt, or
    the end of the process). Raising from the handler instead could land inside a finaliser, where
    Python ignores the exception."""
    requested: list[str] = []
    if threading.current_thread() is not threading.main_thread():
        yield requested
        return

    def request(signum, frame):
        requested.append(signal.Signals(signum).name)
        for stop in STOP_SIGNALS:
            signal.signal(stop, previous[stop])
        print(f"{signal.Signals(signum).name}: stopping after this task (send it again to stop at once)",
              file=sys.stderr, flush=True)

    previous = {stop: signal.signal(stop, request) for stop in STOP_SIGNALS}
    try:
        yield requested
    finally:
        for stop, handler in previous.items():
            signal.signal(stop, handler)
