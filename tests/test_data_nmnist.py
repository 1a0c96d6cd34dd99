"""N-MNIST .bin reading and validation, the loader with index.csv checks, and event binning."""

from __future__ import annotations

import csv
import shutil
from pathlib import Path

import numpy as np
import pytest

from biograd.data import nmnist
from biograd.data.errors import DataError, DataNotFoundError
from biograd.data.nmnist import (
    EVENT_DTYPE,
    bin_events,
    channel_index,
    decode_bin,
    encode_bin,
    load_nmnist,
    read_bin,
    read_bin_tonic,
)
from biograd.data.paths import resolve_data_dir


def _real_nmnist_dir() -> tuple[Path | None, Path | None]:
    """The real N-MNIST folder and its raw folder, if they hold index.csv and the files tested below."""
    try:
        folder = resolve_data_dir("nmnist")
    except DataError:
        return None, None
    if folder is None:
        return None, None
    raw = folder / "raw" if (folder / "raw").is_dir() else folder
    needed = [folder / "index.csv", raw / "Train" / "5" / "00001.bin", raw / "Train" / "0" / "00002.bin"]
    return (folder, raw) if all(p.is_file() for p in needed) else (None, None)


REAL, RAW = _real_nmnist_dir()
NO_REAL = "real N-MNIST (index.csv, raw/Train/...) not found (set BIOGRAD_DATA or use ../shared/data/nmnist)"
needs_real = pytest.mark.skipif(REAL is None, reason=NO_REAL)


def snapshot(folder: Path) -> dict[str, tuple[int, int]]:
    """Every file under ``folder`` with its size and mtime."""
    return {str(p.relative_to(folder)): (p.stat().st_size, p.stat().st_mtime_ns)
            for p in sorted(folder.rglob("*"))}


def make_events(x, y, p, t) -> np.ndarray:
    events = np.empty(len(t), EVENT_DTYPE)
    events["x"], events["y"], events["p"], events["t"] = x, y, p, t
    return events


def event_bytes(x: int, y: int, p: int, t: int) -> bytes:
    """One raw 5-byte event (no range checks, so markers and bad addresses can be written)."""
    return bytes([x, y, (p << 7) | ((t >> 16) & 0x7F), (t >> 8) & 0xFF, t & 0xFF])


def index_rows() -> list[dict[str, str]]:
    with open(REAL / "index.csv", newline="") as fh:
        return list(csv.DictReader(fh))


def write_index(path: Path, rows: list[dict[str, str]]) -> None:
    with open(path, "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)


@pytest.fixture()
def small_tree(tmp_path) -> Path:
    """A copy of train ids 1..5 in ``<tmp>/nm/raw/Train/<label>/`` with the real index.csv beside raw/."""
    if REAL is None:
        pytest.skip(NO_REAL)
    root = tmp_path / "nm"
    for row in index_rows()[:5]:
        assert row["split"] == "train"
        target = root / row["path"]
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(REAL / row["path"], target)
    shutil.copy(REAL / "index.csv", root / "index.csv")
    return root


# ---------------------------------------------------------------- real files


@needs_real
def test_known_files():
    first = read_bin(RAW / "Train" / "5" / "00001.bin")
    assert first.dtype == EVENT_DTYPE and first.size == 4681
    events = read_bin(RAW / "Train" / "0" / "00002.bin")
    assert events.size == 5028
    assert list(events["x"][:10]) == [10, 33, 12, 33, 14, 16, 7, 1, 16, 18]
    assert list(events["t"][:3]) == [937, 1030, 1052]
    assert events["t"].dtype == np.int64
    assert set(np.unique(events["p"])) == {0, 1}
    assert events["x"].max() < 34 and events["y"].max() < 34


@needs_real
def test_encode_round_trips_real_file():
    path = RAW / "Train" / "0" / "00002.bin"
    assert encode_bin(read_bin(path)) == path.read_bytes()


@needs_real
def test_load_train_matches_index_and_writes_nothing():
    before = snapshot(REAL)
    samples = load_nmnist(REAL, "train", verify=True)
    assert snapshot(REAL) == before
    rows = {int(r["id"]): r for r in index_rows() if r["split"] == "train"}
    n_files = sum(1 for _ in (RAW / "Train").glob("*/*.bin"))
    assert len(samples) == n_files == len(rows)
    ids = [s.id for s in samples]
    assert ids == sorted(ids)
    for s in samples:
        assert s.label == int(rows[s.id]["label"]) and s.events.size == int(rows[s.id]["n_events"])
    assert samples[0].id == 1 and samples[0].label == 5 and samples[0].events.size == 4681
    events, label, sample_id = samples[1]  # plain tuple unpacking works
    assert (label, sample_id, events.size) == (0, 2, 5028)
    labels = np.array([s.label for s in samples])
    expected = np.bincount([int(r["label"]) for r in rows.values()], minlength=10)
    np.testing.assert_array_equal(np.bincount(labels, minlength=10), expected)


@needs_real
def test_load_test_split_and_limit():
    test = load_nmnist(REAL, "test")
    assert len(test) == sum(1 for _ in (RAW / "Test").glob("*/*.bin"))
    assert test[0].id == 1 and test[0].label == 7
    first = load_nmnist(REAL, "train", limit=10)
    assert [s.id for s in first] == list(range(1, 11))
    assert load_nmnist(REAL, "train", limit=0) == []


@needs_real
def test_bin_counts_sum_to_event_counts():
    for s in load_nmnist(REAL, "test", limit=20):
        counts = bin_events(s.events, dt_us=1000)
        assert counts.shape == (s.events["t"].max() // 1000 + 1, 34 * 34 * 2)
        assert counts.dtype in (np.uint8, np.uint16)
        assert int(counts.sum(dtype=np.int64)) == s.events.size
        coarse = bin_events(s.events, dt_us=5000)
        np.testing.assert_array_equal(coarse.sum(axis=0, dtype=np.int64), counts.sum(axis=0, dtype=np.int64))


@needs_real
def test_tonic_reader_agrees():
    pytest.importorskip("tonic")
    files = sorted((RAW / "Train").glob("*/*.bin"))[::50][:20] + sorted((RAW / "Test").glob("*/*.bin"))[:2]
    assert len(files) >= 20
    for path in files:
        ours, theirs = read_bin(path), read_bin_tonic(path)
        assert ours.size == theirs.size > 0
        for field in ("x", "y", "p", "t"):
            np.testing.assert_array_equal(ours[field], theirs[field], err_msg=f"{path}: {field}")


# ---------------------------------------------------------------- synthetic .bin files


def test_truncated_bin(tmp_path):
    path = tmp_path / "00001.bin"
    path.write_bytes(event_bytes(1, 2, 1, 10) + event_bytes(3, 4, 0, 20)[:3])
    with pytest.raises(DataError, match="00001.bin: truncated: 8 bytes is not a multiple of 5") as info:
        read_bin(path)
    assert info.value.path == path


@pytest.mark.parametrize(("x", "y", "axis", "value"), [(34, 3, "x", 34), (200, 3, "x", 200), (3, 34, "y", 34)])
def test_address_out_of_range(tmp_path, x, y, axis, value):
    path = tmp_path / "bad.bin"
    path.write_bytes(event_bytes(1, 2, 1, 10) + event_bytes(x, y, 0, 20))
    with pytest.raises(DataError, match=f"bad.bin: address out of range: event 1 .*{axis}={value}"):
        read_bin(path)


def test_decreasing_timestamps(tmp_path):
    path = tmp_path / "dec.bin"
    path.write_bytes(event_bytes(1, 2, 1, 10) + event_bytes(1, 2, 1, 30) + event_bytes(1, 2, 1, 20))
    with pytest.raises(DataError, match="dec.bin: timestamps decrease: event 2 .*t=20 us after t=30 us"):
        read_bin(path)


def test_overflow_marker(tmp_path):
    path = tmp_path / "overflow.bin"
    data = (event_bytes(1, 2, 1, 8000) + event_bytes(0, 240, 0, 0)
            + event_bytes(3, 4, 0, 100) + event_bytes(0, 240, 0, 0) + event_bytes(5, 6, 1, 50))
    path.write_bytes(data)
    events = read_bin(path)
    assert events.size == 3  # markers dropped
    assert list(events["x"]) == [1, 3, 5] and list(events["y"]) == [2, 4, 6] and list(events["p"]) == [1, 0, 1]
    assert list(events["t"]) == [8000, 100 + 2**13, 50 + 2 * 2**13]
    if nmnist.HAVE_TONIC:
        theirs = read_bin_tonic(path)
        for field in ("x", "y", "p", "t"):
            np.testing.assert_array_equal(events[field], theirs[field])


def test_bad_address_is_reported_with_original_position(tmp_path):
    path = tmp_path / "m.bin"
    path.write_bytes(event_bytes(0, 240, 0, 0) + event_bytes(40, 1, 0, 5))
    with pytest.raises(DataError, match=r"event 1 \(byte 5\) has x=40"):
        read_bin(path)


def test_empty_file_and_encode_limits(tmp_path):
    path = tmp_path / "empty.bin"
    path.write_bytes(b"")
    with pytest.raises(DataError, match="empty.bin: empty file: an N-MNIST recording has at least one event"):
        read_bin(path)  # it became a sample with 0 events
    assert decode_bin(b"").size == 0  # the decoder itself takes any whole number of events
    with pytest.raises(ValueError, match="2\\*\\*23"):
        encode_bin(make_events([1], [1], [1], [2**23]))
    ev = make_events([1, 33], [0, 5], [0, 1], [5, 2**23 - 1])
    np.testing.assert_array_equal(decode_bin(encode_bin(ev)), ev)


# ---------------------------------------------------------------- loader + index.csv


def test_small_tree_loads_with_either_root(small_tree):
    a = load_nmnist(small_tree, "train")
    b = load_nmnist(small_tree / "raw", "train")  # index.csv found in the parent of the raw folder
    assert [s.id for s in a] == [s.id for s in b] == [1, 2, 3, 4, 5]
    assert [s.label for s in a] == [5, 0, 4, 1, 9]


def test_mislabelled_file(small_tree):
    src = small_tree / "raw" / "Train" / "5" / "00001.bin"
    (small_tree / "raw" / "Train" / "3").mkdir()
    dst = small_tree / "raw" / "Train" / "3" / "00001.bin"
    shutil.move(src, dst)
    before = snapshot(small_tree)
    with pytest.raises(DataError, match="mislabelled: folder says label 3, .*index.csv says 5") as info:
        load_nmnist(small_tree, "train")
    assert info.value.path == dst and str(dst) in str(info.value)
    assert [s.label for s in load_nmnist(small_tree, "train", verify=False)][0] == 3
    assert snapshot(small_tree) == before


def test_checksum_mismatch_against_index(small_tree):
    path = small_tree / "raw" / "Train" / "0" / "00002.bin"
    data = bytearray(path.read_bytes())
    data[-5] = 0 if data[-5] else 1  # still a valid event, different bytes
    path.write_bytes(bytes(data))
    with pytest.raises(DataError, match="00002.bin: sha256 mismatch: expected 55d0a4a6.*index.csv.*actual"):
        load_nmnist(small_tree, "train")
    assert len(load_nmnist(small_tree, "train", verify=False)) == 5


def test_event_count_mismatch_against_index(small_tree):
    path = small_tree / "raw" / "Train" / "0" / "00002.bin"
    path.write_bytes(path.read_bytes()[:-5])
    with pytest.raises(DataError, match="00002.bin: event count mismatch: 5027 events, .*index.csv says 5028"):
        load_nmnist(small_tree, "train")


def test_truncated_real_file_in_loader(small_tree):
    path = small_tree / "raw" / "Train" / "4" / "00003.bin"
    path.write_bytes(path.read_bytes()[:-2])
    with pytest.raises(DataError, match="00003.bin: truncated"):
        load_nmnist(small_tree, "train", verify=False)


def test_file_not_in_index(small_tree):
    shutil.copy(small_tree / "raw" / "Train" / "1" / "00004.bin", small_tree / "raw" / "Train" / "1" / "99999.bin")
    with pytest.raises(DataError, match="99999.bin: not listed in .*index.csv"):
        load_nmnist(small_tree, "train")


def test_index_with_missing_columns(small_tree):
    (small_tree / "index.csv").write_text("split,id\ntrain,1\n")
    with pytest.raises(DataError, match=r"index.csv: index.csv lacks columns \['label', 'sha256'\]"):
        load_nmnist(small_tree, "train")


def test_layout_without_raw_folder_and_without_index(small_tree, tmp_path):
    flat = tmp_path / "flat"
    shutil.copytree(small_tree / "raw", flat)
    samples = load_nmnist(flat, "train")  # tmp_path has no index.csv: structural checks only
    assert [s.label for s in samples] == [5, 0, 4, 1, 9]
    with pytest.raises(DataNotFoundError, match="Test: N-MNIST test folder does not exist"):
        load_nmnist(flat, "test")
    with pytest.raises(ValueError, match="split must be one of"):
        load_nmnist(flat, "val")


def test_bad_file_names(tmp_path):
    (tmp_path / "Train" / "2").mkdir(parents=True)
    (tmp_path / "Train" / "2" / "abc.bin").write_bytes(b"")
    with pytest.raises(DataError, match="abc.bin: file name is not a numeric N-MNIST id"):
        load_nmnist(tmp_path, "train")
    (tmp_path / "Train" / "2" / "abc.bin").unlink()
    with pytest.raises(DataNotFoundError, match="no N-MNIST .bin files"):
        load_nmnist(tmp_path, "train")
    (tmp_path / "Train" / "2" / "00007.bin").write_bytes(b"")
    (tmp_path / "Train" / "3").mkdir()
    (tmp_path / "Train" / "3" / "7.bin").write_bytes(b"")
    with pytest.raises(DataError, match="duplicate id 7"):
        load_nmnist(tmp_path, "train")


def test_missing_root(tmp_path):
    with pytest.raises(DataNotFoundError, match="nope: data folder for 'nmnist' does not exist"):
        load_nmnist(tmp_path / "nope")
    with pytest.raises(DataNotFoundError, match="no N-MNIST Train/ or Test/ folder"):
        load_nmnist(tmp_path)


# ---------------------------------------------------------------- binning


def test_channel_layout_and_bins():
    ev = make_events(x=[0, 33, 5, 5, 5], y=[0, 0, 2, 2, 2], p=[0, 1, 1, 1, 1], t=[0, 999, 1000, 1500, 4000])
    np.testing.assert_array_equal(channel_index(ev), [0, 34 * 34 + 33, 34 * 34 + 2 * 34 + 5,
                                                       34 * 34 + 2 * 34 + 5, 34 * 34 + 2 * 34 + 5])
    counts = bin_events(ev, dt_us=1000)
    assert counts.shape == (5, 2312) and counts.dtype == np.uint8  # t=4000 lies on an edge: 5 bins
    assert counts[0, 0] == 1 and counts[0, 34 * 34 + 33] == 1
    assert counts[1, 34 * 34 + 2 * 34 + 5] == 2 and counts[4, 34 * 34 + 2 * 34 + 5] == 1
    assert counts.sum() == 5
    cut = bin_events(ev, dt_us=1000, n_bins=2)  # later events are dropped
    assert cut.shape == (2, 2312) and cut.sum() == 4
    assert bin_events(ev, dt_us=1000, n_bins=10).shape == (10, 2312)
    assert bin_events(ev[:0]).shape == (0, 2312)


def test_bin_dtype_grows_with_counts():
    n = 300
    ev = make_events([1] * n, [1] * n, [0] * n, [10] * n)
    counts = bin_events(ev)
    assert counts.dtype == np.uint16 and counts[0, 35] == n


def test_bin_rejects_bad_input():
    ev = make_events([40], [0], [0], [0])
    with pytest.raises(ValueError, match="outside sensor"):
        bin_events(ev)
    with pytest.raises(ValueError, match="dt_us"):
        bin_events(make_events([1], [1], [0], [5]), dt_us=0)
    small = bin_events(make_events([1], [1], [0], [5]), sensor=(2, 2, 1))
    assert small.shape == (1, 4) and small[0, 3] == 1
