"""Where the data sets live, and a small in-process cache of verified files."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

from biograd.data.errors import DataNotFoundError

#: Environment variable naming a root folder that holds ``mnist/`` and ``nmnist/``.
DATA_ENV = "BIOGRAD_DATA"

#: The repository root: the parent of the package folder ``biograd/``.
REPO_ROOT = Path(__file__).resolve().parents[2]


def shared_data_candidates(name: str) -> list[Path]:
    """The fallback locations searched for data set ``name``, in order."""
    return [Path.cwd() / ".." / "shared" / "data" / name, REPO_ROOT / ".." / "shared" / "data" / name]


def resolve_data_dir(name: str, data_dir: str | Path | None = None) -> Path | None:
    """Find the folder of data set ``name`` (``"mnist"`` or ``"nmnist"``).

    Order: the explicit ``data_dir``; else ``$BIOGRAD_DATA/<name>``; else ``../shared/data/<name>``
    relative to the working directory, then relative to the repository root; else ``None``.
    An explicit folder or ``$BIOGRAD_DATA`` that does not exist raises :class:`DataNotFoundError`.
    """
    if data_dir is not None:
        path = Path(data_dir).expanduser()
        if not path.is_dir():
            raise DataNotFoundError(path, f"data folder for {name!r} does not exist")
        return path
    env = os.environ.get(DATA_ENV)
    if env:
        root = Path(env).expanduser()
        if not root.is_dir():
            raise DataNotFoundError(root, f"${DATA_ENV} points to a folder that does not exist")
        path = root / name
        if not path.is_dir():
            raise DataNotFoundError(path, f"${DATA_ENV} has no {name!r} folder")
        return path
    for candidate in shared_data_candidates(name):
        if candidate.is_dir():
            return candidate.resolve()
    return None


def require_data_dir(name: str, data_dir: str | Path | None = None) -> Path:
    """Like :func:`resolve_data_dir`, but raise :class:`DataNotFoundError` instead of returning None."""
    path = resolve_data_dir(name, data_dir)
    if path is None:
        where = ", ".join(str(p) for p in shared_data_candidates(name))
        raise DataNotFoundError(
            Path("shared/data") / name,
            f"no {name!r} data found: pass data_dir, set ${DATA_ENV}, or put it at one of {where}",
        )
    return path


def sha256_bytes(data: bytes | memoryview) -> str:
    """Hex sha256 of a byte string."""
    return hashlib.sha256(data).hexdigest()


def sha256_file(path: str | Path, chunk: int = 1 << 20) -> str:
    """Hex sha256 of a file, read in chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            digest.update(block)
    return digest.hexdigest()


class VerifiedCache:
    """Remembers, in this process only, which files passed verification.

    A file is keyed by its resolved path, modification time (ns) and size (plus a tag naming the
    check), so an edited or replaced file is verified again. Nothing is ever written to disk. Take the
    key *before* reading the file and :meth:`add` it after the checks pass.
    """

    def __init__(self) -> None:
        self._seen: set[tuple[str, int, int, str]] = set()

    @staticmethod
    def key(path: str | Path, tag: str = "") -> tuple[str, int, int, str]:
        st = os.stat(path)
        return (str(Path(path).resolve()), st.st_mtime_ns, st.st_size, tag)

    def __contains__(self, key: tuple[str, int, int, str]) -> bool:
        return key in self._seen

    def add(self, key: tuple[str, int, int, str]) -> None:
        self._seen.add(key)

    def clear(self) -> None:
        self._seen.clear()
