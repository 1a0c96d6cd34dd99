"""Opt-in download of the four MNIST ``.gz`` files, verified by sha256 and written atomically."""

from __future__ import annotations

import hashlib
import http.client
import os
import tempfile
import urllib.request
from pathlib import Path

from biograd.data.errors import DataError
from biograd.data.mnist import SHA256, SIZES, SPLIT_FILES
from biograd.data.paths import sha256_file

#: The four gzip files, in download order.
MNIST_GZ_FILES: tuple[str, ...] = tuple(f"{stem}.gz" for pair in SPLIT_FILES.values() for stem in pair)

#: Known public mirrors of the original files (any of them works as ``base_url``).
MNIST_MIRRORS: tuple[str, ...] = (
    "https://ossci-datasets.s3.amazonaws.com/mnist/",
    "https://storage.googleapis.com/cvdf-datasets/mnist/",
)


def _fetch(url: str, target: Path, expected_sha: str, expected_size: int, timeout: float) -> None:
    """Download ``url`` into a temporary file beside ``target``, verify it, then rename it into place."""
    fd, tmp_name = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".part")
    tmp = Path(tmp_name)
    try:
        digest = hashlib.sha256()
        received = 0
        with os.fdopen(fd, "wb") as out:
            try:
                with urllib.request.urlopen(url, timeout=timeout) as response:
                    declared = response.headers.get("Content-Length")
                    while block := response.read(1 << 16):
                        digest.update(block)
                        out.write(block)
                        received += len(block)
            except http.client.IncompleteRead as exc:
                raise DataError(target, f"truncated download from {url}: connection closed after "
                                        f"{received + len(exc.partial)} bytes") from exc
            out.flush()
            os.fsync(out.fileno())
        if declared is not None and received != int(declared):
            raise DataError(target, f"truncated download from {url}: got {received} of {declared} bytes")
        if received != expected_size:
            problem = "truncated download" if received < expected_size else "wrong size"
            raise DataError(target, f"{problem} from {url}: got {received} bytes, expected {expected_size}")
        actual = digest.hexdigest()
        if actual != expected_sha:
            raise DataError(target, f"sha256 mismatch for download from {url}: expected {expected_sha}, "
                                    f"actual {actual}")
        os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)


def download_mnist(
    dest: str | Path, base_url: str, *, force: bool = False, timeout: float = 30
) -> list[Path]:
    """Download the four MNIST ``.gz`` files from ``base_url`` into ``dest``; return their paths.

    Each file is streamed into a temporary file in ``dest``, checked against the published size and
    sha256, and only then renamed into place (``os.replace``), so no partial file is ever left behind.
    Files already present with the right sha256 are skipped unless ``force``; present files with the
    wrong sum are replaced. A truncated or wrong download raises :class:`DataError`; network errors
    propagate as ``urllib.error.URLError`` / ``OSError``. Files downloaded before a failure are kept
    (they are verified).
    """
    dest = Path(dest)
    dest.mkdir(parents=True, exist_ok=True)
    base = base_url if base_url.endswith("/") else base_url + "/"
    paths = []
    for name in MNIST_GZ_FILES:
        target = dest / name
        paths.append(target)
        if not force and target.is_file() and sha256_file(target) == SHA256[name]:
            continue
        _fetch(base + name, target, SHA256[name], SIZES[name], timeout)
    return paths
