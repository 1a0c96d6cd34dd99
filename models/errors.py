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


def read_model_file(path: str | Path, what: str) -> str:
    """The text of a model file; an unreadable file raises ModelFileError naming it and ``what`` it is."""
    path = Path(path)
    try:
        return path.read_text(encoding="utf-8")
    except OSError as err:
        raise ModelFileError(path, f"cannot read {what}: {err.strerror}") from err
    except UnicodeDecodeError as err:
        line = path.read_bytes()[:err.start].count(b"\n") + 1
        raise ModelFileError(path, f"{what} is not UTF-8 text (byte 0x{err.object[err.start]:02x}); save it as "
                             "UTF-8", line) from err
