"""Errors raised for bad model input: equation files, parameter tables, configs."""

from __future__ import annotations

from pathlib import Path


class ModelFileError(ValueError):
    """A problem in a model file, reported as ``file:line: message``.

    ``line`` is 1-based and may be ``None`` when the problem is not tied to a line.
    """

    def __init__(self, path: str | Path, message: str, line: int | None = None):
        self.path = Path(path)
        self.line = line
        self.problem = message
        where = f"{self.path}:{line}" if line is not None else f"{self.path}"
        super().__init__(f"{where}: {message}")
