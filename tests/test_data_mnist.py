"""MNIST IDX loading: real files (if present) and synthetic corrupt files; data-folder resolution."""

from __future__ import annotations

import gzip
import os
import shutil
import struct
from pathlib import Path

import numpy as np
import pytest

from biograd.data import mnist, paths
from biograd.data.errors import DataError, DataNotFoundError
from biograd.data.mnist import SHA256, Digits, load_mnist, load_mnist_digits, parse_idx, read_images
from biograd.data.paths import DATA_ENV, resolve_data_dir


def _real_mnist_dir() -> Path | None:
    """The real MNIST folder, if it exists and holds the four original .gz files."""
    try:
        folder = resolve_data_dir("mnist")
    except DataError:
        return None
    if folder is None or not all((folder / f"{stem}.gz").is_file() for pair in mnist.SPLIT_FILES.values()
                                 for stem in pair):
        return None
    return folder


REAL = _real_mnist_dir()
needs_real = pytest.mark.skipif(
    REAL is None, reason="real MNIST .gz files not found (set BIOGRAD_DATA or put them in ../shared/data/mnist)"
)


def snapshot(folder: Path) -> dict[str, tuple[int, int]]:
    """Every file under ``folder`` with its size and mtime."""
    return {str(p.relative_to(folder)): (p.stat().st_size, p.stat().st_mtime_ns)
            for p in sorted(folder.rglob("*"))}


def idx_bytes(array: np.ndarray, magic: int | None = None, dims: tuple[int, ...] | None = None) -> bytes:
    array = np.asarray(array, dtype=np.uint8)
    dims = array.shape if dims is None else dims
    magic = (0x0800 | len(dims)) if magic is None else magic
    return struct.pack(f">I{len(dims)}I", magic, *dims) + array.tobytes()


def write_split(
    folder: Path, images: bytes, labels: bytes, split: str = "test", gz: bool = True
) -> tuple[Path, Path]:
    folder.mkdir(parents=True, exist_ok=True)
    out = []
    for stem, data in zip(mnist.SPLIT_FILES[split], (images, labels), strict=True):
        path = folder / (f"{stem}.gz" if gz else stem)
        path.write_bytes(gzip.compress(data) if gz else data)
        out.append(path)
    return out[0], out[1]


@pytest.fixture()
def no_env(monkeypatch):
    monkeypatch.delenv(DATA_ENV, raising=False)


def small_images(n: int = 3) -> np.ndarray:
    rng = np.random.default_rng(0)
    return rng.integers(0, 256, size=(n, 28, 28), dtype=np.uint8)


# ---------------------------------------------------------------- real data


@pytest.fixture(scope="module")
def real_train():
    return load_mnist(REAL, "train")


@needs_real
def test_real_train_shapes_and_first_label(real_train):
    images, labels = real_train
    assert images.shape == (60000, 28, 28) and images.dtype == np.uint8
    assert labels.shape == (60000,) and labels.dtype == np.uint8
    assert labels[0] == 5 and list(labels[:5]) == [5, 0, 4, 1, 9]
    assert images.max() == 255 and images.min() == 0
    assert set(np.unique(labels)) == set(range(10))
    assert images.flags.writeable


@needs_real
def test_real_test_split_and_digits():
    images, labels = load_mnist(REAL, "test")
    assert images.shape == (10000, 28, 28) and labels.shape == (10000,)
    assert labels[0] == 7 and list(labels[:3]) == [7, 2, 1]
    d = load_mnist_digits(REAL, "test")
    assert isinstance(d, Digits) and len(d) == 10000
    assert d.images.shape == (10000, 784) and d.images.dtype == np.float32
    assert d.labels.dtype == np.int64 and d.shape == (28, 28) and d.name == "mnist-test"
    assert 0.0 <= d.images.min() and d.images.max() == 1.0
    np.testing.assert_array_equal(d.images[0].reshape(28, 28), images[0] / np.float32(255))
    assert d.n_classes == 10


@needs_real
def test_loaders_write_nothing_into_data_folder():
    before = snapshot(REAL)
    mnist._VERIFIED.clear()
    load_mnist(REAL, "test", verify=True)
    load_mnist_digits(REAL, "test")
    assert snapshot(REAL) == before


@needs_real
def test_raw_idx_files_verified_like_gz(tmp_path):
    for stem in mnist.SPLIT_FILES["test"]:
        (tmp_path / stem).write_bytes(gzip.decompress((REAL / f"{stem}.gz").read_bytes()))
    images, labels = load_mnist(tmp_path, "test", verify=True)
    ref_images, ref_labels = load_mnist(REAL, "test")
    np.testing.assert_array_equal(images, ref_images)
    np.testing.assert_array_equal(labels, ref_labels)


@needs_real
def test_verification_is_cached_per_path_mtime_size(tmp_path, monkeypatch):
    for stem in mnist.SPLIT_FILES["test"]:
        shutil.copy(REAL / f"{stem}.gz", tmp_path / f"{stem}.gz")
    calls = []
    real_sha = mnist.sha256_bytes
    monkeypatch.setattr(mnist, "sha256_bytes", lambda data: calls.append(1) or real_sha(data))
    load_mnist(tmp_path, "test")
    assert len(calls) == 2
    load_mnist(tmp_path, "test")
    assert len(calls) == 2  # cached
    labels = tmp_path / "t10k-labels-idx1-ubyte.gz"
    st = labels.stat()
    os.utime(labels, ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))
    load_mnist(tmp_path, "test")
    assert len(calls) == 3  # only the touched file is hashed again
    load_mnist(tmp_path, "test", verify=False)
    assert len(calls) == 3


# ---------------------------------------------------------------- synthetic bad files


def test_synthetic_files_load_without_verify(tmp_path):
    imgs = small_images()
    write_split(tmp_path, idx_bytes(imgs), idx_bytes([3, 1, 4]))
    images, labels = load_mnist(tmp_path, "test", verify=False)
    np.testing.assert_array_equal(images, imgs)
    assert list(labels) == [3, 1, 4]


def test_checksum_mismatch_names_file_and_sums(tmp_path):
    images_path, _ = write_split(tmp_path, idx_bytes(small_images()), idx_bytes([3, 1, 4]))
    with pytest.raises(DataError) as info:
        load_mnist(tmp_path, "test", verify=True)
    msg = str(info.value)
    assert str(images_path) in msg and "sha256 mismatch" in msg
    assert SHA256["t10k-images-idx3-ubyte.gz"] in msg
    assert mnist.sha256_bytes(images_path.read_bytes()) in msg
    assert info.value.path == images_path


def test_truncated_idx(tmp_path):
    data = idx_bytes(small_images(3))[:-100]
    images_path, _ = write_split(tmp_path, data, idx_bytes([3, 1, 4]))
    expected = r"truncated IDX data.*\(3, 28, 28\) = 2352 bytes, file has 2252"
    with pytest.raises(DataError, match=expected) as info:
        load_mnist(tmp_path, "test")
    assert str(images_path) in str(info.value)


def test_truncated_header_and_trailing_bytes(tmp_path):
    with pytest.raises(DataError, match="x.idx: truncated IDX header"):
        parse_idx(b"\0\0\x08\x03\0\0", tmp_path / "x.idx")
    with pytest.raises(DataError, match="shorter than the 4-byte magic"):
        parse_idx(b"\0\0", tmp_path / "x.idx")
    with pytest.raises(DataError, match="IDX data too long"):
        parse_idx(idx_bytes([1, 2, 3]) + b"\0", tmp_path / "x.idx")


def test_wrong_magic(tmp_path):
    # a labels file where the images file should be
    images_path, _ = write_split(tmp_path, idx_bytes([1, 2, 3]), idx_bytes([3, 1, 4]))
    expected = r"wrong IDX magic 0x00000801: expected 0x00000803 \(images\)"
    with pytest.raises(DataError, match=expected) as info:
        load_mnist(tmp_path, "test")
    assert str(images_path) in str(info.value)
    # image data under a labels magic: named as the wrong magic, not as sizes the magic would imply
    write_split(tmp_path, idx_bytes(small_images(), magic=0x00000801), idx_bytes([3, 1, 4]))
    with pytest.raises(DataError, match=expected):
        load_mnist(tmp_path, "test")
    # not unsigned-byte data at all (0x0D = float)
    write_split(tmp_path, idx_bytes(small_images(), magic=0x00000D03), idx_bytes([3, 1, 4]))
    with pytest.raises(DataError, match="t10k-images-idx3-ubyte.gz: wrong IDX magic 0x00000d03"):
        load_mnist(tmp_path, "test")
    with pytest.raises(DataError, match="bad IDX magic 0x00000d03: expected unsigned-byte data"):
        parse_idx(idx_bytes(small_images(), magic=0x00000D03))


def test_wrong_image_size(tmp_path):
    write_split(tmp_path, idx_bytes(np.zeros((2, 27, 27))), idx_bytes([1, 2]))
    with pytest.raises(DataError, match=r"t10k-images-idx3-ubyte.gz: wrong image size \(27, 27\)"):
        load_mnist(tmp_path, "test", verify=False)


def test_labels_out_of_range(tmp_path):
    _, labels_path = write_split(tmp_path, idx_bytes(small_images()), idx_bytes([3, 12, 4]))
    with pytest.raises(DataError, match=r"label out of range 0..9: label\[1\] = 12") as info:
        load_mnist(tmp_path, "test", verify=False)
    assert str(labels_path) in str(info.value)


def test_count_mismatch(tmp_path):
    _, labels_path = write_split(tmp_path, idx_bytes(small_images(3)), idx_bytes([3, 1]))
    with pytest.raises(DataError, match="count mismatch: 2 labels but 3 images") as info:
        load_mnist(tmp_path, "test", verify=False)
    assert str(labels_path) in str(info.value)


def test_corrupt_gzip(tmp_path):
    images_path, _ = write_split(tmp_path, idx_bytes(small_images()), idx_bytes([3, 1, 4]))
    good = images_path.read_bytes()
    images_path.write_bytes(good[: len(good) // 2])  # truncated gzip stream
    with pytest.raises(DataError, match="t10k-images-idx3-ubyte.gz: corrupt gzip file: truncated"):
        load_mnist(tmp_path, "test", verify=False)
    bad = bytearray(good)
    bad[20:40] = b"\xff" * 20  # damaged deflate data / CRC
    images_path.write_bytes(bytes(bad))
    with pytest.raises(DataError, match="t10k-images-idx3-ubyte.gz: corrupt gzip file"):
        load_mnist(tmp_path, "test", verify=False)
    images_path.write_bytes(idx_bytes(small_images()))  # raw bytes under a .gz name
    with pytest.raises(DataError, match="corrupt gzip file: no gzip header"):
        load_mnist(tmp_path, "test", verify=False)


def test_raw_files_are_found_when_no_gz(tmp_path):
    write_split(tmp_path, idx_bytes(small_images()), idx_bytes([3, 1, 4]), gz=False)
    images, labels = load_mnist(tmp_path, "test", verify=False)
    assert images.shape == (3, 28, 28) and list(labels) == [3, 1, 4]
    with pytest.raises(DataError, match="t10k-images-idx3-ubyte: sha256 mismatch"):
        load_mnist(tmp_path, "test", verify=True)


def test_missing_file_and_bad_split(tmp_path):
    write_split(tmp_path, idx_bytes(small_images()), idx_bytes([3, 1, 4]))
    (tmp_path / "t10k-labels-idx1-ubyte.gz").unlink()
    with pytest.raises(DataNotFoundError, match="t10k-labels-idx1-ubyte.gz: MNIST file missing"):
        load_mnist(tmp_path, "test")
    with pytest.raises(FileNotFoundError):
        load_mnist(tmp_path, "train")
    with pytest.raises(ValueError, match="split must be one of"):
        load_mnist(tmp_path, "validation")


def test_synthetic_files_never_modified(tmp_path):
    write_split(tmp_path, idx_bytes(small_images()), idx_bytes([3, 1, 4]))
    before = snapshot(tmp_path)
    load_mnist_digits(tmp_path, "test", verify=False)
    with pytest.raises(DataError):
        load_mnist(tmp_path, "test", verify=True)
    assert snapshot(tmp_path) == before


def test_read_images_directly(tmp_path):
    path = tmp_path / "some-images.idx"
    path.write_bytes(idx_bytes(small_images(2)))
    assert read_images(path, verify=True).shape == (2, 28, 28)  # unknown name: structure only


def test_digits_validation():
    with pytest.raises(ValueError, match="images must have shape"):
        Digits(np.zeros((2, 10), np.float32), np.zeros(2, np.int64), "x", (28, 28))
    with pytest.raises(ValueError, match="labels of shape"):
        Digits(np.zeros((2, 4), np.float32), np.zeros(3, np.int64), "x", (2, 2))
    d = Digits(np.zeros((4, 4), np.float32), np.arange(4), "x", (2, 2))
    assert len(d.subset(np.array([0, 2]))) == 2


# ---------------------------------------------------------------- resolve_data_dir


def test_explicit_dir(tmp_path, no_env):
    assert resolve_data_dir("mnist", tmp_path) == tmp_path
    missing = tmp_path / "nope"
    with pytest.raises(DataNotFoundError, match="nope: data folder for 'mnist' does not exist") as info:
        resolve_data_dir("mnist", missing)
    assert info.value.path == missing


def test_env_var(tmp_path, monkeypatch):
    (tmp_path / "mnist").mkdir()
    monkeypatch.setenv(DATA_ENV, str(tmp_path))
    assert resolve_data_dir("mnist") == tmp_path / "mnist"
    assert resolve_data_dir("mnist", tmp_path / "mnist") == tmp_path / "mnist"  # explicit wins
    with pytest.raises(DataNotFoundError, match=f"nmnist: \\${DATA_ENV} has no 'nmnist' folder"):
        resolve_data_dir("nmnist")
    monkeypatch.setenv(DATA_ENV, str(tmp_path / "missing-root"))
    with pytest.raises(DataNotFoundError, match=f"missing-root: \\${DATA_ENV} points to a folder that does"):
        resolve_data_dir("mnist")


def test_shared_folder_relative_to_cwd(tmp_path, monkeypatch, no_env):
    shared = tmp_path / "shared" / "data" / "mnist"
    shared.mkdir(parents=True)
    (tmp_path / "work").mkdir()
    monkeypatch.chdir(tmp_path / "work")
    assert resolve_data_dir("mnist") == shared.resolve()


def test_shared_folder_relative_to_repo_root(tmp_path, monkeypatch, no_env):
    import biograd

    assert paths.REPO_ROOT == Path(biograd.__file__).resolve().parent.parent
    monkeypatch.chdir(tmp_path)
    fallback = paths.REPO_ROOT / ".." / "shared" / "data" / "mnist"
    assert resolve_data_dir("mnist") == (fallback.resolve() if fallback.is_dir() else None)
    monkeypatch.setattr(paths, "REPO_ROOT", tmp_path / "repo")
    assert resolve_data_dir("mnist") is None
    with pytest.raises(DataNotFoundError, match="no 'mnist' data found: pass data_dir, set"):
        load_mnist()
