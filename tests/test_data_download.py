"""download_mnist against a local HTTP server: good, truncated, lying and wrong files."""

from __future__ import annotations

import functools
import shutil
import threading
import urllib.error
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
import pytest

from biograd.data.download import MNIST_GZ_FILES, download_mnist
from biograd.data.errors import DataError
from biograd.data.mnist import SHA256, load_mnist
from biograd.data.paths import resolve_data_dir, sha256_file

pytestmark = pytest.mark.network


def _real_mnist_dir() -> Path | None:
    """The real MNIST folder, if it exists and holds the four original .gz files."""
    try:
        folder = resolve_data_dir("mnist")
    except DataError:
        return None
    if folder is None or not all((folder / name).is_file() for name in MNIST_GZ_FILES):
        return None
    return folder


REAL = _real_mnist_dir()


class _Handler(SimpleHTTPRequestHandler):
    """Serves files from ``directory``; under ``/lying/`` it promises the full length but sends half."""

    requests: list[str]

    def log_message(self, format, *args):
        """Keep the test output quiet."""

    def do_GET(self):
        self.requests.append(self.path)
        if self.path.startswith("/lying/"):
            body = (Path(self.directory) / "good" / self.path.removeprefix("/lying/")).read_bytes()
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body[: len(body) // 2])
            self.wfile.flush()
            self.close_connection = True
            return
        super().do_GET()


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    if REAL is None:
        pytest.skip("real MNIST .gz files not found (set BIOGRAD_DATA or put them in ../shared/data/mnist)")
    root = tmp_path_factory.mktemp("www")
    for sub in ("good", "truncated", "wrong"):
        (root / sub).mkdir()
        for name in MNIST_GZ_FILES:
            shutil.copy(REAL / name, root / sub / name)
    labels = (root / "good" / "train-labels-idx1-ubyte.gz").read_bytes()
    (root / "truncated" / "train-labels-idx1-ubyte.gz").write_bytes(labels[: len(labels) // 2])
    wrong = bytearray((root / "good" / "t10k-labels-idx1-ubyte.gz").read_bytes())
    wrong[-100] ^= 0xFF  # same size, different bytes
    (root / "wrong" / "t10k-labels-idx1-ubyte.gz").write_bytes(bytes(wrong))

    handler = type("Handler", (_Handler,), {"requests": []})
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(handler, directory=str(root)))
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}", handler.requests, root
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(timeout=5)


@pytest.fixture(autouse=True)
def _no_proxy(monkeypatch):
    for var in ("http_proxy", "HTTP_PROXY", "https_proxy", "HTTPS_PROXY", "all_proxy", "ALL_PROXY"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("no_proxy", "127.0.0.1,localhost")
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")


def listing(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


def test_download_success_then_skip_then_force(server, tmp_path):
    base, requests, _ = server
    dest = tmp_path / "mnist"
    got = download_mnist(dest, f"{base}/good", timeout=10)
    assert got == [dest / name for name in MNIST_GZ_FILES]
    assert listing(dest) == sorted(MNIST_GZ_FILES)  # no temporary files left
    for name in MNIST_GZ_FILES:
        assert sha256_file(dest / name) == SHA256[name]
    images, labels = load_mnist(dest, "test")
    assert images.shape == (10000, 28, 28) and labels[0] == 7

    n = len(requests)
    download_mnist(dest, f"{base}/good/", timeout=10)
    assert len(requests) == n  # verified files are skipped
    download_mnist(dest, f"{base}/good/", force=True, timeout=10)
    assert len(requests) == n + 4
    assert listing(dest) == sorted(MNIST_GZ_FILES)


def test_truncated_file_raises_and_leaves_nothing(server, tmp_path):
    base, _, _ = server
    with pytest.raises(DataError, match="train-labels-idx1-ubyte.gz: truncated download from .*got 14440 bytes, "
                                        "expected 28881"):
        download_mnist(tmp_path, f"{base}/truncated/", timeout=10)
    # the file fetched before the failure is complete and verified; nothing else is there
    assert listing(tmp_path) == ["train-images-idx3-ubyte.gz"]
    assert sha256_file(tmp_path / "train-images-idx3-ubyte.gz") == SHA256["train-images-idx3-ubyte.gz"]


def test_connection_closed_early_raises(server, tmp_path):
    base, _, _ = server
    with pytest.raises(DataError, match=r"train-images-idx3-ubyte.gz: truncated download from .*/lying/"
                                        r"train-images-idx3-ubyte.gz: got 4956211 of 9912422 bytes"):
        download_mnist(tmp_path, f"{base}/lying/", timeout=10)
    assert listing(tmp_path) == []


def test_wrong_file_raises_checksum_error(server, tmp_path):
    base, _, root = server
    with pytest.raises(DataError) as info:
        download_mnist(tmp_path, f"{base}/wrong/", timeout=10)
    msg = str(info.value)
    assert "t10k-labels-idx1-ubyte.gz: sha256 mismatch" in msg
    assert SHA256["t10k-labels-idx1-ubyte.gz"] in msg
    assert f"actual {sha256_file(root / 'wrong' / 't10k-labels-idx1-ubyte.gz')}" in msg
    assert listing(tmp_path) == sorted(set(MNIST_GZ_FILES) - {"t10k-labels-idx1-ubyte.gz"})


def test_failed_forced_download_keeps_existing_good_file(server, tmp_path):
    base, _, _ = server
    download_mnist(tmp_path, f"{base}/good/", timeout=10)
    before = (tmp_path / "t10k-labels-idx1-ubyte.gz").read_bytes()
    with pytest.raises(DataError, match="sha256 mismatch"):
        download_mnist(tmp_path, f"{base}/wrong/", force=True, timeout=10)
    assert (tmp_path / "t10k-labels-idx1-ubyte.gz").read_bytes() == before
    assert listing(tmp_path) == sorted(MNIST_GZ_FILES)


def test_bad_existing_file_is_replaced(server, tmp_path):
    base, _, _ = server
    (tmp_path / "train-labels-idx1-ubyte.gz").write_bytes(b"not the real file")
    download_mnist(tmp_path, f"{base}/good/", timeout=10)
    assert sha256_file(tmp_path / "train-labels-idx1-ubyte.gz") == SHA256["train-labels-idx1-ubyte.gz"]
    _, labels = load_mnist(tmp_path, "train")
    assert labels[0] == 5 and np.bincount(labels).sum() == 60000


def test_http_error_leaves_no_temporary_file(server, tmp_path):
    base, _, _ = server
    with pytest.raises(urllib.error.HTTPError):
        download_mnist(tmp_path, f"{base}/missing/", timeout=10)
    assert listing(tmp_path) == []
