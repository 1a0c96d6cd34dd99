"""The ``biograd`` console command's entry point: light, so that a stop signal while the command line's
modules load (numpy, typer, Brian2: up to a second) ends like any other stop, in one line."""

from __future__ import annotations

import signal
import sys


def main() -> None:
    """Load :mod:`biograd.cli` and run it. SIGINT (Ctrl-C) or SIGTERM before the command takes over prints one
    line and exits with 128 + the signal's number (cli's exit codes), without a traceback."""

    def stopped(signum, frame):
        name = signal.Signals(signum).name
        print(f"stopped by {name} while starting (nothing was done)", file=sys.stderr, flush=True)
        sys.exit(128 + signum)

    previous = {stop: signal.signal(stop, stopped) for stop in (signal.SIGINT, signal.SIGTERM)}
    from biograd.cli import main as command_line  # the slow imports

    for stop, handler in previous.items():
        signal.signal(stop, handler)
    command_line()


if __name__ == "__main__":
    main()
