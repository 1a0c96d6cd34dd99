"""Errors raised by the data loaders."""

from __future__ import annotations

from pathlib import Path


class DataError(ValueError):
    """A data file (or folder) is missing, corrupt, truncated, mislabelled or fails its checksum.

    The message always starts with the path, then says what is wrong: ``"<path>: <problem>"``.
    """

    def __init__(self, path: str | Path, problem: str):
        self.path = Path(path)
        self.problem = problem
        super().__init__(f"{self.path}: {problem}")

    def __reduce__(self):
        return (type(self), (self.path, self.problem))


class DataNotFoundError(DataError, FileNotFoundError):
    """A data folder or file does not exist (also catchable as ``FileNotFoundError``)."""
