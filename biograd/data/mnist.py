"""MNIST from the four original IDX files (gzip-compressed or raw), with validation and sha256 checks.

IDX format (big-endian): bytes 0-1 are zero, byte 2 is the data type (0x08 = unsigned byte), byte 3
the number of dimensions; then one uint32 per dimension; then the data. Images have magic 0x00000803
and dimensions (count, 28, 28); labels have magic 0x00000801 and dimension (count,).
"""

from __future__ import annotations

import gzip
import struct
import zlib
from dataclasses import dataclass
from math import prod
from pathlib import Path

import numpy as np

from biograd.data.errors import DataError, DataNotFoundError
from biograd.data.paths import VerifiedCache, require_data_dir, sha256_bytes

#: File stems of the (images, labels) pair of each split.
SPLIT_FILES: dict[str, tuple[str, str]] = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}

#: Published sha256 sums of the original files, gzip-compressed and raw.
SHA256: dict[str, str] = {
    "train-images-idx3-ubyte.gz": "440fcabf73cc546fa21475e81ea370265605f56be210a4024d2ca8f203523609",
    "train-labels-idx1-ubyte.gz": "3552534a0a558bbed6aed32b30c495cca23d567ec52cac8be1a0730e8010255c",
    "t10k-images-idx3-ubyte.gz": "8d422c7b0a1c1c79245a5bcf07fe86e33eeafee792b84584aec276f5a2dbc4e6",
    "t10k-labels-idx1-ubyte.gz": "f7ae60f92e00ec6debd23a6088c31dbd2371eca3ffa0defaefb259924204aec6",
    "train-images-idx3-ubyte": "ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db",
    "train-labels-idx1-ubyte": "65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5",
    "t10k-images-idx3-ubyte": "0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7",
    "t10k-labels-idx1-ubyte": "ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2",
}

#: Published sizes in bytes of the same files.
SIZES: dict[str, int] = {
    "train-images-idx3-ubyte.gz": 9_912_422,
    "train-labels-idx1-ubyte.gz": 28_881,
    "t10k-images-idx3-ubyte.gz": 1_648_877,
    "t10k-labels-idx1-ubyte.gz": 4_542,
    "train-images-idx3-ubyte": 47_040_016,
    "train-labels-idx1-ubyte": 60_008,
    "t10k-images-idx3-ubyte": 7_840_016,
    "t10k-labels-idx1-ubyte": 10_008,
}

IMAGES_MAGIC = 0x00000803
LABELS_MAGIC = 0x00000801
IMAGE_SHAPE = (28, 28)

_VERIFIED = VerifiedCache()


@dataclass(frozen=True, eq=False)
class Digits:
    """A labelled digit data set, flattened and scaled for network input.

    ``images``: float32 in [0, 1], shape (n, prod(shape)), row-major pixels.
    ``labels``: int64 class labels, shape (n,).
    ``name``: a short description, e.g. ``"mnist-train"``.
    ``shape``: the 2-D image shape, e.g. (28, 28).
    """

    images: np.ndarray
    labels: np.ndarray
    name: str
    shape: tuple[int, ...]

    def __post_init__(self) -> None:
        if self.images.ndim != 2 or self.images.shape[1] != prod(self.shape):
            raise ValueError(f"{self.name}: images must have shape (n, {prod(self.shape)}), "
                             f"got {self.images.shape}")
        if self.labels.shape != (self.images.shape[0],):
            raise ValueError(f"{self.name}: {self.images.shape[0]} images but labels of shape "
                             f"{self.labels.shape}")

    def __len__(self) -> int:
        return int(self.labels.shape[0])

    @property
    def n_classes(self) -> int:
        """Number of distinct labels present."""
        return int(np.unique(self.labels).size)

    def subset(self, index: np.ndarray, name: str | None = None) -> Digits:
        """A new :class:`Digits` holding the samples at ``index`` (integer or boolean array)."""
        return Digits(self.images[index], self.labels[index], name or self.name, self.shape)


def find_idx_file(folder: str | Path, stem: str) -> Path:
    """The path of ``<stem>.gz`` in ``folder``, else of the raw ``<stem>``; raise if neither exists."""
    folder = Path(folder)
    for candidate in (folder / f"{stem}.gz", folder / stem):
        if candidate.is_file():
            return candidate
    raise DataNotFoundError(folder / f"{stem}.gz", f"MNIST file missing (neither {stem}.gz nor {stem} found)")


def _read_bytes(path: Path) -> tuple[bytes, bytes]:
    """The file's bytes as stored, and after gzip decompression (same object for raw files)."""
    stored = path.read_bytes()
    if stored[:2] != b"\x1f\x8b":
        if path.suffix == ".gz":
            raise DataError(path, "corrupt gzip file: no gzip header (magic bytes 1f 8b)")
        return stored, stored
    try:
        return stored, gzip.decompress(stored)
    except EOFError as exc:
        raise DataError(path, f"corrupt gzip file: truncated compressed stream ({exc})") from exc
    except (gzip.BadGzipFile, zlib.error, OSError) as exc:
        raise DataError(path, f"corrupt gzip file: {exc}") from exc


def parse_idx(data: bytes, path: str | Path = "<bytes>") -> np.ndarray:
    """Parse unsigned-byte IDX data into a writable uint8 array with the header's dimensions."""
    path = Path(path)
    if len(data) < 4:
        raise DataError(path, f"truncated IDX file: {len(data)} bytes, shorter than the 4-byte magic")
    magic = struct.unpack(">I", data[:4])[0]
    if data[:2] != b"\0\0" or data[2] != 0x08 or data[3] == 0:
        raise DataError(path, f"bad IDX magic 0x{magic:08x}: expected unsigned-byte data 0x000008NN")
    ndim = data[3]
    header = 4 + 4 * ndim
    if len(data) < header:
        raise DataError(path, f"truncated IDX header: {len(data)} bytes, header needs {header}")
    dims = struct.unpack(f">{ndim}I", data[4:header])
    expected = prod(dims)
    body = len(data) - header
    if body < expected:
        raise DataError(path, f"truncated IDX data: header says {dims} = {expected} bytes, file has {body}")
    if body > expected:
        raise DataError(path, f"IDX data too long: header says {dims} = {expected} bytes, file has {body}")
    return np.frombuffer(data, dtype=np.uint8, count=expected, offset=header).reshape(dims).copy()


def _check_sha256(path: Path, stored: bytes, expected: str | None) -> None:
    if expected is None:
        return
    actual = sha256_bytes(stored)
    if actual != expected:
        raise DataError(path, f"sha256 mismatch: expected {expected}, actual {actual}")


def read_idx(
    path: str | Path, magic: int, verify: bool = True, expected_sha256: str | None = None
) -> np.ndarray:
    """Read one IDX file (gz or raw), check its magic number and, if ``verify``, its sha256.

    ``expected_sha256`` defaults to the published sum for the file's name; files with unknown names
    are only validated structurally.
    """
    path = Path(path)
    key = _VERIFIED.key(path, "sha256")
    stored, data = _read_bytes(path)
    if len(data) >= 4 and (actual_magic := struct.unpack(">I", data[:4])[0]) != magic:  # before the sizes it implies
        kinds = {IMAGES_MAGIC: "images", LABELS_MAGIC: "labels"}
        raise DataError(path, f"wrong IDX magic 0x{actual_magic:08x}: expected 0x{magic:08x} "
                              f"({kinds.get(magic, 'data')})")
    array = parse_idx(data, path)
    if verify and key not in _VERIFIED:
        _check_sha256(path, stored, expected_sha256 or SHA256.get(path.name))
        _VERIFIED.add(key)
    return array


def read_images(path: str | Path, verify: bool = True) -> np.ndarray:
    """Read an IDX image file into uint8 (n, 28, 28)."""
    images = read_idx(path, IMAGES_MAGIC, verify)
    if images.shape[1:] != IMAGE_SHAPE:
        raise DataError(path, f"wrong image size {images.shape[1:]}: expected {IMAGE_SHAPE}")
    return images


def read_labels(path: str | Path, verify: bool = True) -> np.ndarray:
    """Read an IDX label file into uint8 (n,), checking every label is 0..9."""
    labels = read_idx(path, LABELS_MAGIC, verify)
    if labels.size and labels.max() > 9:
        bad = int(np.argmax(labels > 9))
        raise DataError(path, f"label out of range 0..9: label[{bad}] = {int(labels[bad])}")
    return labels


def mnist_files(data_dir: str | Path | None = None, split: str = "train") -> tuple[Path, Path]:
    """Paths of the (images, labels) files of ``split`` (gz preferred over raw)."""
    if split not in SPLIT_FILES:
        raise ValueError(f"split must be one of {sorted(SPLIT_FILES)}, got {split!r}")
    folder = require_data_dir("mnist", data_dir)
    images_stem, labels_stem = SPLIT_FILES[split]
    return find_idx_file(folder, images_stem), find_idx_file(folder, labels_stem)


def load_mnist(
    data_dir: str | Path | None = None, split: str = "train", verify: bool = True
) -> tuple[np.ndarray, np.ndarray]:
    """Load an MNIST split as ``(images uint8 (n, 28, 28), labels uint8 (n,))``.

    ``data_dir`` is resolved with :func:`biograd.data.paths.resolve_data_dir`. With ``verify`` the
    files' sha256 sums are checked against the published ones (once per file per process).
    Structure (magic, sizes, label range, matching counts) is always checked; problems raise
    :class:`DataError`.
    """
    images_path, labels_path = mnist_files(data_dir, split)
    images = read_images(images_path, verify)
    labels = read_labels(labels_path, verify)
    if images.shape[0] != labels.shape[0]:
        raise DataError(labels_path, f"count mismatch: {labels.shape[0]} labels but {images.shape[0]} "
                                     f"images in {images_path.name}")
    return images, labels


def load_mnist_digits(
    data_dir: str | Path | None = None, split: str = "train", verify: bool = True
) -> Digits:
    """Load an MNIST split as :class:`Digits` (float32 pixels in [0, 1], shape (n, 784))."""
    images, labels = load_mnist(data_dir, split, verify)
    flat = images.reshape(images.shape[0], -1).astype(np.float32) / np.float32(255.0)
    return Digits(flat, labels.astype(np.int64), f"mnist-{split}", IMAGE_SHAPE)
