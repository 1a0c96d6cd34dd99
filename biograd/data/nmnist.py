"""N-MNIST from the original 40-bit ``.bin`` files, and binning of events into input-channel counts.

Layout: ``<root>/Train/<label>/<id:05d>.bin`` and ``<root>/Test/<label>/<id:05d>.bin`` (``<root>`` may
also hold them in a ``raw/`` subfolder). ``id`` is the 1-based index into the MNIST split.

Event format, 5 bytes per event: byte 0 = x, byte 1 = y, bit 7 of byte 2 = polarity (1 = ON),
bits 6..0 of byte 2 then bytes 3 and 4 = 23-bit big-endian timestamp in microseconds. As in the official
reader, an event with ``y == 240`` is a timestamp-overflow marker: it adds 2**13 µs to its own and all later
timestamps and is then dropped.
"""

from __future__ import annotations

import csv
import importlib.util
from pathlib import Path
from typing import NamedTuple

import numpy as np

from biograd.data.errors import DataError, DataNotFoundError
from biograd.data.paths import VerifiedCache, require_data_dir, sha256_bytes

#: Fields of a decoded event array: pixel address, polarity (1 = ON, 0 = OFF), time in µs.
EVENT_DTYPE = np.dtype([("x", np.uint8), ("y", np.uint8), ("p", np.uint8), ("t", np.int64)])

#: (width, height, polarities) of the ATIS recordings, tonic's ``sensor_size`` convention.
SENSOR_SIZE = (34, 34, 2)

OVERFLOW_Y = 240
OVERFLOW_INCREMENT_US = 2**13
SPLIT_DIRS = {"train": "Train", "test": "Test"}
INDEX_NAME = "index.csv"
INDEX_COLUMNS = ("split", "id", "label", "sha256")

#: True when the optional ``tonic`` package is installed (enables :func:`read_bin_tonic`).
HAVE_TONIC = importlib.util.find_spec("tonic") is not None

_VERIFIED = VerifiedCache()


class Sample(NamedTuple):
    """One N-MNIST recording: events (:data:`EVENT_DTYPE`), digit label (from its folder) and id."""

    events: np.ndarray
    label: int
    id: int


def decode_bin(data: bytes | bytearray | memoryview, path: str | Path = "<bytes>") -> np.ndarray:
    """Decode and validate the bytes of one ``.bin`` file into an :data:`EVENT_DTYPE` array.

    Raises :class:`DataError` (naming ``path``) if the size is not a multiple of 5, an address is
    outside the 34x34 sensor, or timestamps decrease.
    """
    raw = np.frombuffer(data, dtype=np.uint8)
    if raw.size % 5:
        raise DataError(path, f"truncated: {raw.size} bytes is not a multiple of 5 (5-byte events); "
                              f"the last event has only {raw.size % 5} bytes")
    b = raw.reshape(-1, 5)
    x, y = b[:, 0], b[:, 1]
    p = b[:, 2] >> 7
    t = ((b[:, 2] & 0x7F).astype(np.int64) << 16) | (b[:, 3].astype(np.int64) << 8) | b[:, 4]
    marker = y == OVERFLOW_Y
    position = np.arange(b.shape[0])
    if marker.any():
        t = t + np.cumsum(marker, dtype=np.int64) * OVERFLOW_INCREMENT_US
        keep = ~marker
        x, y, p, t, position = x[keep], y[keep], p[keep], t[keep], position[keep]
    width, height = SENSOR_SIZE[0], SENSOR_SIZE[1]
    bad = (x >= width) | (y >= height)
    if bad.any():
        i = int(np.argmax(bad))
        axis, value = ("x", int(x[i])) if x[i] >= width else ("y", int(y[i]))
        raise DataError(path, f"address out of range: event {position[i]} (byte {5 * position[i]}) has "
                              f"{axis}={value}, sensor is {width}x{height} (x < {width}, y < {height})")
    if t.size > 1:
        dec = np.diff(t) < 0
        if dec.any():
            i = int(np.argmax(dec)) + 1
            raise DataError(path, f"timestamps decrease: event {position[i]} (byte {5 * position[i]}) has "
                                  f"t={int(t[i])} us after t={int(t[i - 1])} us")
    events = np.empty(t.size, dtype=EVENT_DTYPE)
    events["x"], events["y"], events["p"], events["t"] = x, y, p, t
    return events


def read_bin(path: str | Path) -> np.ndarray:
    """Read one N-MNIST ``.bin`` file into a structured array with fields x, y, p (uint8), t (int64 µs)."""
    path = Path(path)
    data = path.read_bytes()
    if not data:  # a recording always has events; an empty file is a failed copy or download
        raise DataError(path, "empty file: an N-MNIST recording has at least one event (5 bytes)")
    return decode_bin(data, path)


def encode_bin(events: np.ndarray) -> bytes:
    """Encode events (fields x, y, p, t) in the 5-byte ``.bin`` format (no overflow markers).

    Needs 0 <= x, y < 256, p in {0, 1} and 0 <= t < 2**23 µs.
    """
    t = np.asarray(events["t"], dtype=np.int64)
    if t.size and (t.min() < 0 or t.max() >= 2**23):
        raise ValueError("timestamps must be in [0, 2**23) us to be encoded without overflow markers")
    for field, limit in (("x", 256), ("y", 256), ("p", 2)):
        values = np.asarray(events[field]).astype(np.int64)
        if values.size and (values.min() < 0 or values.max() >= limit):
            raise ValueError(f"{field} must be in [0, {limit})")
    out = np.empty((t.size, 5), dtype=np.uint8)
    out[:, 0] = events["x"]
    out[:, 1] = events["y"]
    out[:, 2] = (np.asarray(events["p"]).astype(np.uint8) << 7) | ((t >> 16) & 0x7F).astype(np.uint8)
    out[:, 3] = (t >> 8) & 0xFF
    out[:, 4] = t & 0xFF
    return out.tobytes()


# tonic's make_structured_array fills fields by *position* in the order x, y, t, p, so the dtype passed to
# tonic.io.read_mnist_file must list its fields in exactly that order (it then ignores the names).
_TONIC_DTYPE = np.dtype([("x", np.int16), ("y", np.int16), ("t", np.int64), ("p", np.int8)])


def read_bin_tonic(path: str | Path) -> np.ndarray:
    """Read a ``.bin`` file with ``tonic.io.read_mnist_file`` (no validation), as :data:`EVENT_DTYPE`."""
    if not HAVE_TONIC:
        raise ImportError("read_bin_tonic needs the optional 'tonic' package (pip install 'biograd[nmnist]')")
    from tonic.io import read_mnist_file

    raw = read_mnist_file(str(path), dtype=_TONIC_DTYPE)
    events = np.empty(raw.shape, dtype=EVENT_DTYPE)
    for field in EVENT_DTYPE.names:
        events[field] = raw[field]
    return events


def nmnist_raw_dir(root: str | Path | None = None) -> Path:
    """The folder holding ``Train/`` and ``Test/``: ``<root>/raw`` if present, else ``<root>``."""
    base = require_data_dir("nmnist", root)
    for candidate in (base / "raw", base):
        if any((candidate / d).is_dir() for d in SPLIT_DIRS.values()):
            return candidate
    raise DataNotFoundError(base, "no N-MNIST Train/ or Test/ folder here or in raw/")


def find_index(raw_dir: Path, root: Path | None = None) -> Path | None:
    """The ``index.csv`` in ``root`` or in the parent of ``raw_dir``, if any."""
    candidates = ([root / INDEX_NAME] if root is not None else []) + [raw_dir.parent / INDEX_NAME]
    for candidate in candidates:
        if candidate.is_file():
            return candidate
    return None


def read_index(path: str | Path) -> dict[tuple[str, int], dict[str, str]]:
    """Read an N-MNIST ``index.csv`` into ``{(split, id): row}``."""
    path = Path(path)
    with open(path, newline="") as fh:
        reader = csv.DictReader(fh)
        missing = [c for c in INDEX_COLUMNS if c not in (reader.fieldnames or [])]
        if missing:
            raise DataError(path, f"index.csv lacks columns {missing} (has {reader.fieldnames})")
        rows: dict[tuple[str, int], dict[str, str]] = {}
        for line, row in enumerate(reader, start=2):
            try:
                key = (row["split"].strip().lower(), int(row["id"]))
                int(row["label"])
            except (ValueError, AttributeError) as exc:
                raise DataError(path, f"line {line}: bad split/id/label {row}") from exc
            if key in rows:
                raise DataError(path, f"line {line}: duplicate entry for split {key[0]!r}, id {key[1]}")
            rows[key] = row
    return rows


def list_nmnist_files(raw_dir: str | Path, split: str = "train") -> list[tuple[Path, int, int]]:
    """``(path, label, id)`` of every ``<split>/<label>/<id>.bin`` under ``raw_dir``, sorted by id."""
    if split not in SPLIT_DIRS:
        raise ValueError(f"split must be one of {sorted(SPLIT_DIRS)}, got {split!r}")
    split_dir = Path(raw_dir) / SPLIT_DIRS[split]
    if not split_dir.is_dir():
        raise DataNotFoundError(split_dir, f"N-MNIST {split} folder does not exist")
    found: dict[int, tuple[Path, int, int]] = {}
    for label_dir in sorted(split_dir.iterdir()):
        if not (label_dir.is_dir() and len(label_dir.name) == 1 and label_dir.name.isdigit()):
            continue
        label = int(label_dir.name)
        for file in sorted(label_dir.glob("*.bin")):
            if not file.stem.isdigit():
                raise DataError(file, "file name is not a numeric N-MNIST id (<id:05d>.bin)")
            sample_id = int(file.stem)
            if sample_id in found:
                raise DataError(file, f"duplicate id {sample_id}: also {found[sample_id][0]}")
            found[sample_id] = (file, label, sample_id)
    if not found:
        raise DataNotFoundError(split_dir, f"no N-MNIST .bin files in {split_dir.name}/<label>/")
    return [found[k] for k in sorted(found)]


def _check_against_index(
    path: Path,
    data: bytes,
    events: np.ndarray,
    label: int,
    row: dict[str, str] | None,
    index: Path,
    key: tuple[str, int, int, str],
) -> None:
    """Check one file's label, event count and (unless cached) sha256 against its index.csv row."""
    if row is None:
        raise DataError(path, f"not listed in {index}")
    if int(row["label"]) != label:
        raise DataError(path, f"mislabelled: folder says label {label}, {index} says {int(row['label'])}")
    if row.get("n_events") and int(row["n_events"]) != events.size:
        raise DataError(path, f"event count mismatch: {events.size} events, {index} says {row['n_events']}")
    if key not in _VERIFIED:
        actual = sha256_bytes(data)
        expected = row["sha256"].strip().lower()
        if actual != expected:
            raise DataError(path, f"sha256 mismatch: expected {expected} (from {index}), actual {actual}")
        _VERIFIED.add(key)


def load_nmnist(
    root: str | Path | None = None, split: str = "train", verify: bool = True, limit: int | None = None
) -> list[Sample]:
    """Load an N-MNIST split as a list of ``(events, label, id)`` samples sorted by id.

    ``root`` is the N-MNIST folder (containing ``raw/`` or ``Train/``/``Test/``), resolved with
    :func:`biograd.data.paths.resolve_data_dir`. ``limit`` keeps the first ``limit`` ids. Every file is
    validated (see :func:`decode_bin`). With ``verify``, if an ``index.csv`` lies in ``root`` or in the
    parent of the raw folder, each file's label, event count and sha256 are checked against it.
    """
    base = require_data_dir("nmnist", root)
    raw_dir = nmnist_raw_dir(base)
    files = list_nmnist_files(raw_dir, split)
    if limit is not None:
        files = files[: max(limit, 0)]
    index_path = find_index(raw_dir, base) if verify else None
    index = read_index(index_path) if index_path is not None else None
    samples = []
    for path, label, sample_id in files:
        key = _VERIFIED.key(path, f"index:{index_path}")
        data = path.read_bytes()
        events = decode_bin(data, path)
        if index is not None:
            row = index.get((split, sample_id))
            _check_against_index(path, data, events, label, row, index_path, key)
        samples.append(Sample(events, label, sample_id))
    return samples


def channel_index(events: np.ndarray, sensor: tuple[int, int, int] = SENSOR_SIZE) -> np.ndarray:
    """Input channel of each event: ``p * W * H + y * W + x`` with ``sensor = (W, H, P)``.

    So channels ``0 .. W*H-1`` are the OFF events (p = 0) in row-major (y, x) order, and the next
    ``W*H`` the ON events.
    """
    width, height, polarities = sensor
    x = np.asarray(events["x"]).astype(np.int64)
    y = np.asarray(events["y"]).astype(np.int64)
    p = np.asarray(events["p"]).astype(np.int64)
    if x.size and (x.min() < 0 or x.max() >= width or y.min() < 0 or y.max() >= height
                   or p.min() < 0 or p.max() >= polarities):
        raise ValueError(f"events outside sensor {sensor} (x < {width}, y < {height}, p < {polarities})")
    return p * (width * height) + y * width + x


def bin_events(
    events: np.ndarray,
    dt_us: int = 1000,
    n_bins: int | None = None,
    sensor: tuple[int, int, int] = SENSOR_SIZE,
) -> np.ndarray:
    """Count events per time bin and input channel: an array of shape ``(n_bins, W*H*P)``.

    Bin ``k`` holds events with ``k*dt_us <= t < (k+1)*dt_us``; the channel of an event is
    ``p*W*H + y*W + x`` (see :func:`channel_index`). ``n_bins`` defaults to the fewest bins that hold
    every event, ``max(t) // dt_us + 1`` (= ``ceil(max t / dt_us)``, plus one when ``max t`` lies exactly
    on a bin edge); with an explicit ``n_bins``, later events are dropped. The result is uint8 when
    every count fits, else uint16 (uint32 beyond that).
    """
    if dt_us <= 0:
        raise ValueError(f"dt_us must be positive, got {dt_us}")
    n_channels = int(np.prod(sensor))
    t = np.asarray(events["t"]).astype(np.int64)
    if t.size and t.min() < 0:
        raise ValueError("event timestamps must be non-negative")
    bins = t // dt_us
    if n_bins is None:
        n_bins = int(bins.max()) + 1 if bins.size else 0
    if n_bins < 0:
        raise ValueError(f"n_bins must be >= 0, got {n_bins}")
    flat = bins * n_channels + channel_index(events, sensor)
    flat = flat[bins < n_bins]
    counts = np.bincount(flat, minlength=n_bins * n_channels)
    peak = int(counts.max()) if counts.size else 0
    dtype = np.uint8 if peak <= np.iinfo(np.uint8).max else (
        np.uint16 if peak <= np.iinfo(np.uint16).max else np.uint32)
    return counts.astype(dtype).reshape(n_bins, n_channels)
