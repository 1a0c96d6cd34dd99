"""Run directories: ``runs/out/<time>_<name>_<hash>/``, one per training run, never overwritten.

Contents::

    config.yaml        the resolved config (defaults filled in, overrides applied)
    equations/         copies of the equation files and parameter tables the run used
    equations_completed/  the same plus measurement-only elements the run predates (made when needed)
    versions.json      python, brian2, numpy, biograd versions, git commit (and whether dirty), machine
    checkpoint.npz     the last good state: weights, progress, metrics so far (atomic, every chunk)
    weights_epoch<k>.npz  weights after epoch k
    metrics.parquet    tidy metrics: one row per observation (epoch, chunk, samples, split, metric, layer, value):
                       accuracy, angle(B, W^T), |B|, |W|, samples/s, and with ``record.activity`` rates,
                       spikes, error events and operation counts (biograd.analysis.activity)
    alignment.parquet  probed samples' gradient alignment (``record.probe_samples``; biograd.analysis.alignment)
    neuron_rates.parquet  per-neuron forward rates of each epoch's last training chunk (``record.activity``)
    recording/         W, B and probed dW, rates and gates per probe point (``record.arrays``)
    spikes.nwb         spike and error-event times of a few samples at the last probe point (``record.spikes``; NWB)
    timings.json       build and training times, one entry per session
    status.json        running | finished | diverged | failed, with a message
    splits.json        name, size and sha256 of the train, validation and test splits: a resume refuses other data
    contract.json      sha256 of config.yaml and of the equation copy: a resume refuses changed files
    history.jsonl      changes accepted with ``--accept-changes``, one JSON line each
    .lock              held by the one process that trains the run (which stops if the file is deleted)
    learning_curve.png accuracy and angle(B, W^T) against training samples (when finished)
    build/, build_eval/  the compiled training and inference-only projects (cpp_standalone runs)

``<hash>`` is the first 8 hex digits of sha256(resolved config + equation files), so runs that
differ in anything that matters have different names even when started in the same second.
"""

from __future__ import annotations

import errno
import hashlib
import io
import json
import os
import platform
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
import zipfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from filelock import FileLock, Timeout

from biograd.config import RunConfig, dump_config, load_config
from biograd.models.elements import equations_dir
from biograd.models.network import PlasticState

METRIC_SCHEMA = pa.schema([("epoch", pa.int64()), ("chunk", pa.int64()), ("samples", pa.int64()),
                           ("split", pa.string()), ("metric", pa.string()), ("layer", pa.int64()),
                           ("value", pa.float64())])


TABLES = {  # parquet tables of a run directory besides metrics.parquet, kept in the checkpoint's progress
    "alignment": pa.schema([("epoch", pa.int64()), ("chunk", pa.int64()), ("samples", pa.int64()),
                            ("sample", pa.int64()), ("layer", pa.int64()), ("mode", pa.string()),
                            ("angle_deg", pa.float64()), ("norm_ratio", pa.float64())]),
    "neuron_rates": pa.schema([("epoch", pa.int64()), ("chunk", pa.int64()), ("samples", pa.int64()),
                               ("layer", pa.int64()), ("neuron", pa.int64()), ("rate_hz", pa.float64())]),
}


CONTRACT = "contract.json"  # sha256 of config.yaml and the equation copy, checked before a resume

# elements that only count; a run made before them can use today's
MEASUREMENT_ELEMENTS = ("activity", "sleep_activity")


def write_parquet(path: Path, rows: list[dict], schema: pa.Schema) -> None:
    """Rows (dicts) as a parquet file with ``schema``, written atomically."""
    sink = pa.BufferOutputStream()
    pq.write_table(pa.Table.from_pylist(rows, schema=schema), sink)
    atomic_write(path, sink.getvalue().to_pybytes())


class DiskFullError(OSError):
    """A write that found no space (ENOSPC, or EDQUOT: the user's quota is used up), named with the file and the
    disk (:func:`atomic_path`); its text is that one line."""

    def __str__(self) -> str:
        return self.strerror


NO_SPACE = (errno.ENOSPC, errno.EDQUOT)


def disk_full(path: Path, err: OSError) -> DiskFullError:
    """``err`` (no space for ``path``) as a DiskFullError naming ``path`` and its disk (mount point, free space), in
    one line: the error's name, not its text (h5py's spans lines and names the temporary file)."""
    disk = Path(path).resolve().parent
    while not os.path.ismount(disk) and disk != disk.parent:
        disk = disk.parent
    usage = shutil.disk_usage(disk)
    return DiskFullError(err.errno, f"{path}: not written: {os.strerror(err.errno)} (the disk "
                                    f"mounted at {disk}: {_size(usage.free)} free of {_size(usage.total)})")


def _size(size: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if size < 1024:
            return f"{size:.0f} {unit}"
        size /= 1024
    return f"{size:.1f} TiB"


@contextmanager
def atomic_path(path: Path) -> Iterator[Path]:
    """A new empty temporary file in ``path``'s folder (``.<name>.<random><suffix>``: writers that go by the
    suffix, such as matplotlib, still do) for the block to write ``path`` through: renamed over ``path`` when
    the block ends, deleted when it raises, so that a reader (or a crash) sees the old file or the new, never
    half, and a failed write leaves nothing. The file gets the permissions of the user's umask, as an
    ordinary ``open`` gives (not the 0600 of a temporary file). No space left (a full disk or quota) raises
    DiskFullError, one line naming ``path`` and the disk."""
    try:
        handle, name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=path.suffix)
    except OSError as err:
        if err.errno in NO_SPACE:  # no inode left
            raise disk_full(path, err) from err
        raise
    os.close(handle)
    tmp = Path(name)
    try:
        yield tmp
        os.chmod(tmp, 0o666 & ~_umask())
        handle = os.open(tmp, os.O_RDONLY)
        try:
            os.fsync(handle)
        finally:
            os.close(handle)
        os.replace(tmp, path)
    except BaseException as err:
        tmp.unlink(missing_ok=True)
        if isinstance(err, OSError) and err.errno in NO_SPACE and not isinstance(err, DiskFullError):
            raise disk_full(path, err) from err
        raise


class HeldLock:
    """A file lock held by this process (:func:`acquired_lock`). The lock is on the file's inode, not its name:
    once the file is deleted (or replaced), another process creates and locks a new one at the same path and
    is not refused. So the holder, before it writes, calls :meth:`check`, which refuses to go on (LockLostError
    naming the file) when the path no longer leads to the locked inode. A file lock, not a lock on the folder
    itself: flock on a folder is local to one machine on NFS, where a sweep's workers share run directories."""

    def __init__(self, lock: FileLock):
        self._lock, self.path = lock, Path(lock.lock_file)
        self._inode = _inode(self.path)  # the file stays open while held: its inode number is not reused

    def check(self) -> None:
        if self._inode is None or _inode(self.path) != self._inode:
            raise LockLostError(f"{self.path}: the lock file was deleted or replaced while this process held it, so "
                                "another process can lock a new one and write here too; stopped before writing again "
                                "(what was written is whole; continue when no other process works here)")

    def release(self) -> None:
        self._lock.release()


def _inode(path: Path) -> tuple[int, int] | None:
    try:
        found = os.stat(path)
    except FileNotFoundError:
        return None
    return found.st_dev, found.st_ino


def acquired_lock(path: Path) -> HeldLock | None:
    """The file lock ``path``, acquired without waiting; None if another process holds it."""
    lock = FileLock(path, timeout=0)
    try:
        lock.acquire()
    except Timeout:
        return None
    return HeldLock(lock)


def atomic_write(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` through :func:`atomic_path`."""
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)


def is_run_directory(folder: Path) -> bool:
    """Whether ``folder`` is a run directory: it holds config.yaml and versions.json."""
    return (folder / "config.yaml").is_file() and (folder / "versions.json").is_file()


def run_directory_of(path: Path) -> Path | None:
    """The run directory that is ``path`` or holds it, resolved; None if there is none."""
    target = Path(path).resolve()
    return next((folder for folder in (target, *target.parents) if is_run_directory(folder)), None)


def _umask() -> int:
    mask = os.umask(0o022)  # reading the umask means setting it; put it back at once
    os.umask(mask)
    return mask


def _git_commit(folder: Path) -> dict:
    def git(*args: str) -> str:
        return subprocess.run(["git", *args], cwd=folder, capture_output=True, text=True, check=True).stdout.strip()

    try:
        return {"commit": git("rev-parse", "HEAD"), "dirty": bool(git("status", "--porcelain"))}
    except (OSError, subprocess.CalledProcessError):
        return {"commit": None, "dirty": None}


def versions(source: Path) -> dict:
    packages = ["biograd", "brian2", "numpy", "pandas", "pyarrow", "pydantic", "tonic", "brian2cuda"]
    found = {}
    for name in packages:
        try:
            found[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            found[name] = None
    return {"command": shlex.join(sys.argv), "python": platform.python_version(), "packages": found,
            "git": _git_commit(source),
            "machine": {"node": platform.node(), "system": platform.platform(), "cpus": os.cpu_count()}}


class CheckpointError(ValueError):
    """A checkpoint file is missing, truncated, not a checkpoint, or holds arrays that do not fit the run."""


class RunChangedError(ValueError):
    """config.yaml or the equation copy of a run changed after the run was created."""


class RunLockedError(RuntimeError):
    """Another process is training this run."""


class LockLostError(RunLockedError):
    """The lock file this process held was deleted or replaced: another process may hold a lock on a new one."""


class RunFileError(ValueError):
    """A JSON file of a run directory cannot be read."""


REWRITTEN = {  # JSON files of a run that a resume writes anew: what deleting a corrupt one does
    "status.json": "; the run can be resumed after deleting it",
    "timings.json": "; the run can be resumed after deleting it (the times of its earlier sessions are lost)",
    CONTRACT: "; after deleting it the run resumes with --accept-changes, which makes today's files the contract",
    "splits.json": "; after deleting it a resume records today's data as the run's, unchecked",
}


def file_digests(path: Path) -> dict[str, str]:
    """sha256 of config.yaml and of every file of the run's equation copy, by path relative to the run."""
    files = [path / "config.yaml", *sorted((path / "equations").iterdir())]
    return {str(f.relative_to(path)): hashlib.sha256(f.read_bytes()).hexdigest() for f in files if f.is_file()}


@dataclass
class Progress:
    """Where a run stands: tasks done (chunks and evaluations), the metrics rows written so far,
    the rows of the other tables (:data:`TABLES`), and counters of the epoch in progress."""

    task: int = 0
    rows: list[dict] | None = None
    epoch_correct: int = 0
    epoch_seen: int = 0
    tables: dict[str, list[dict]] | None = None

    def __post_init__(self):
        self.rows = [] if self.rows is None else self.rows
        self.tables = {name: [] for name in TABLES} | (self.tables or {})


class RunDirectory:
    """One run's folder. :meth:`create` makes a new one; ``RunDirectory(path)`` opens an existing one."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        if not (self.path / "config.yaml").is_file():
            raise FileNotFoundError(f"{self.path}: not a run directory (no config.yaml)")
        self._held: HeldLock | None = None  # the run's lock while this object holds it (:meth:`lock`)

    @classmethod
    def create(cls, config: RunConfig, equations: Path, root: Path = Path("runs/out")) -> RunDirectory:
        """A new run directory in ``root`` for ``config``, with copies of ``equations``' files. Made whole or not
        at all: where a step fails (a full disk raises DiskFullError naming the run directory and the disk), what
        was made is removed, so that no half directory, which would read 'not a run directory', is left."""
        text = dump_config(config)
        digest = hashlib.sha256(text.encode())
        files = sorted([*equations.glob("*.eqs"), *equations.glob("*.yaml")])
        for file in files:
            digest.update(file.name.encode() + file.read_bytes())
        name = f"{time.strftime('%Y%m%d-%H%M%S')}_{config.name}_{digest.hexdigest()[:8]}"
        path = root / name
        try:
            root.mkdir(parents=True, exist_ok=True)
            for attempt in range(1, 1000):  # an existing run directory is never overwritten: a twin gets -2, -3, ...
                path = root / (name if attempt == 1 else f"{name}-{attempt}")
                try:
                    path.mkdir()
                    break
                except FileExistsError:
                    continue
        except OSError as err:
            if err.errno in NO_SPACE:
                raise disk_full(path, err) from err
            raise
        try:
            (path / "equations").mkdir()
            for file in files:
                shutil.copy2(file, path / "equations" / file.name)
            atomic_write(path / "config.yaml", text.encode())
            atomic_write(path / "versions.json", json.dumps(versions(Path(__file__).parent), indent=2).encode())
            run = cls(path)
            run.write_json(CONTRACT, file_digests(path))  # last: a run directory with its contract is whole
        except BaseException as err:
            shutil.rmtree(path, ignore_errors=True)
            if isinstance(err, OSError) and err.errno in NO_SPACE:  # the run directory, not one file of it
                raise disk_full(path, err) from err
            raise
        return run

    # ------------------------------------------------------------------ contract and lock
    def changed_files(self) -> list[str]:
        """Files of the run's contract (config.yaml, equations/*) whose content changed since it was created
        (or since a change was accepted), added or removed; the contract itself if it is missing (deleted, or a
        run made before contracts): nothing can then be compared, so nothing is taken as unchanged."""
        recorded = self.read_json(CONTRACT)
        if not recorded:
            return [f"{CONTRACT} (missing: the files cannot be checked)"]
        now = file_digests(self.path)
        return sorted(name for name in set(recorded) | set(now) if recorded.get(name) != now.get(name))

    def check_unchanged(self, accept: bool = False) -> list[str]:
        """Refuse (RunChangedError) a run whose contract files changed; with ``accept`` record the change in
        history.jsonl and make the new contents the contract. Returns the changed files."""
        changed = self.changed_files()
        if changed and not accept:
            raise RunChangedError(f"{self.path}: changed since the run was created: {', '.join(changed)}; "
                                  "give --accept-changes to use the changed files (recorded in history.jsonl)")
        if changed:
            with open(self.path / "history.jsonl", "a", encoding="utf-8") as history:
                history.write(json.dumps({"time": time.strftime("%FT%T"), "event": "accepted changes",
                                          "files": changed, "command": shlex.join(sys.argv)}) + "\n")
            self.write_json(CONTRACT, file_digests(self.path))
        return changed

    def check_splits(self, record: dict) -> None:
        """Record the run's splits (splits.json) the first time; later, refuse (RunChangedError) other data."""
        path = self.path / "splits.json"
        if not path.is_file():
            self.write_json(path.name, record)
            return
        known = self.read_json(path.name)
        if changed := [name for name in known.keys() | record.keys() if known.get(name) != record.get(name)]:
            raise RunChangedError(f"{path}: the data of split(s) {', '.join(sorted(changed))} differ from the "
                                  "run's (data files or data.* settings changed); the run cannot continue on them")

    @contextmanager
    def lock(self) -> Iterator[None]:
        """Hold the run's lock (``.lock``) for the block; another process holding it raises RunLockedError. Meanwhile
        this object's status, JSON files and checkpoints are written only while the lock file is the one locked
        (:meth:`check_lock`)."""
        lock = self._acquired_lock()
        if lock is None:
            raise RunLockedError(f"{self.path}: another process is training this run, or evaluating or probing in it "
                                 f"(lock {self.path / '.lock'}); wait for it or stop it first")
        self._held = lock
        try:
            yield
        finally:
            self._held = None
            lock.release()

    def check_lock(self) -> None:
        """While this object holds the run's lock, raise LockLostError (naming ``.lock``) if the lock file was
        deleted or replaced: a second process could then hold the run as well (:class:`HeldLock`)."""
        if self._held is not None:
            self._held.check()

    @contextmanager
    def build_folder(self, name: str) -> Iterator[Path]:
        """A folder for a build beside the training (``evaluate``, ``probe``): ``<run>/<name>`` while the run's lock
        is free (held meanwhile, so no trainer starts and rebuilds it), else, while a trainer holds the run, a
        private folder removed afterwards: a trainer's builds are never touched."""
        lock = self._acquired_lock()
        if lock is not None:
            try:
                yield self.path / name
            finally:
                lock.release()
            return
        private = Path(tempfile.mkdtemp(prefix=f"{name}.", dir=self.path))
        try:
            yield private
        finally:
            shutil.rmtree(private, ignore_errors=True)

    def _acquired_lock(self) -> HeldLock | None:
        """The run's lock, acquired; None if another process holds it."""
        return acquired_lock(self.path / ".lock")

    # ------------------------------------------------------------------ files
    @property
    def config(self) -> RunConfig:
        """The run's resolved config, checked against the run's own equation files."""
        if not (self.equations / "network.yaml").is_file():
            raise ValueError(f"{self.path}: made before the composition file equations/network.yaml existed "
                             "(biograd at commit 4e2aef2 or earlier): its config and equation files do not fit this "
                             "version; resume, evaluate or probe it with that commit")
        return load_config(self.path / "config.yaml", equations=self.build_equations())

    @property
    def equations(self) -> Path:
        return self.path / "equations"

    def build_equations(self) -> Path:
        """The equation files to build this run's network from: its own copy, completed with today's
        measurement-only elements (:data:`MEASUREMENT_ELEMENTS`, they only count) if the run predates them."""
        missing = [n for n in MEASUREMENT_ELEMENTS if not (self.equations / f"{n}.eqs").is_file()]
        if not missing:
            return self.equations
        folder = self.path / "equations_completed"
        if not all((folder / f"{n}.eqs").is_file() for n in missing):
            staging = Path(tempfile.mkdtemp(prefix=".equations.", dir=self.path))
            shutil.copytree(self.equations, staging, dirs_exist_ok=True)
            for name in missing:
                for suffix in (".eqs", ".yaml"):
                    shutil.copy2(equations_dir() / f"{name}{suffix}", staging)
            if folder.is_dir():  # completed before a later measurement element existed
                shutil.rmtree(folder)
            staging.rename(folder)
        return folder

    @property
    def build_dir(self) -> Path:
        return self.path / "build"

    @property
    def checkpoint_path(self) -> Path:
        return self.path / "checkpoint.npz"

    @property
    def learning_curve_path(self) -> Path:
        return self.path / "learning_curve.png"

    def write_json(self, name: str, content: dict) -> None:
        self.check_lock()
        atomic_write(self.path / name, json.dumps(content, indent=2).encode())

    def read_json(self, name: str) -> dict:
        """The run's JSON file ``name`` ({} if there is none); one that is not a JSON object (a crash of an older
        version, an edit) raises RunFileError naming it and, for a file the run writes anew, what deleting it does."""
        path = self.path / name
        if not path.is_file():
            return {}
        try:
            content = json.loads(path.read_bytes())
        except ValueError as err:  # JSONDecodeError, UnicodeDecodeError
            reason = f"{err.msg.removesuffix(' at')} at line {err.lineno} column {err.colno}" \
                if isinstance(err, json.JSONDecodeError) else "not UTF-8 text"  # msg may end "starting at"
            raise RunFileError(f"{path}: not readable JSON ({reason}){REWRITTEN.get(name, '')}") from err
        if not isinstance(content, dict):
            raise RunFileError(f"{path}: not a JSON object but {type(content).__name__}{REWRITTEN.get(name, '')}")
        return content

    def set_status(self, status: str, message: str = "") -> None:
        """Write status.json. On a full disk a status other than ``running`` (the one that says why a run stopped)
        is written over the old file's own blocks, which need no new space (not atomically: the one write that
        cannot wait for space), or, where even that fails, the old file is deleted (a resume writes it anew):
        a run that stopped never says ``running``."""
        content = {"status": status, "message": message, "time": time.strftime("%FT%T")}
        try:
            self.write_json("status.json", content)
        except DiskFullError:
            path = self.path / "status.json"
            if status == "running":
                raise
            if not path.is_file():  # nothing says running
                return
            try:
                with open(path, "r+b") as file:
                    file.write(json.dumps(content, indent=2).encode())
                    file.truncate()
                    os.fsync(file.fileno())
            except OSError:
                path.unlink()

    # ------------------------------------------------------------------ checkpoints
    def save_checkpoint(self, state: PlasticState, progress: Progress, path: Path | None = None) -> None:
        """Weights and progress in one atomically written ``.npz``; metrics.parquet follows it."""
        self.check_lock()
        meta = {"task": progress.task, "epoch_correct": progress.epoch_correct, "epoch_seen": progress.epoch_seen,
                "rows": progress.rows, "tables": progress.tables}
        buffer = io.BytesIO()
        np.savez(buffer, progress=np.frombuffer(json.dumps(meta).encode(), np.uint8), **state.named())
        atomic_write(path or self.checkpoint_path, buffer.getvalue())
        if path is None:
            self.write_metrics(progress.rows)
            for name, rows in progress.tables.items():
                if rows:
                    write_parquet(self.path / f"{name}.parquet", rows, TABLES[name])

    def load_checkpoint(self, path: Path | None = None) -> tuple[PlasticState, Progress]:
        """Weights and progress; a file that is not a readable checkpoint raises CheckpointError."""
        path = path or self.checkpoint_path
        try:
            with np.load(path) as data:
                meta = json.loads(data["progress"].tobytes())
                state = PlasticState.from_named({k: data[k] for k in data.files if k != "progress"})
            progress = Progress(meta["task"], meta["rows"], meta["epoch_correct"], meta["epoch_seen"],
                                meta.get("tables"))  # checkpoints before the analysis tables have none
        except (OSError, EOFError, ValueError, KeyError, zipfile.BadZipFile, json.JSONDecodeError) as err:
            raise CheckpointError(f"{path}: not a readable checkpoint ({type(err).__name__}: {err or 'empty'}); "
                                  f"{self.epoch_weights_note()}") from err
        self._check_arrays(path, state)
        return state, progress

    def check_ensemble(self, resumed: list[RunDirectory]) -> None:
        """A run last trained in an ensemble build (timings.json: the session's ``ensemble``, run directories beside
        this one) draws its random numbers from that build's one generator: it continues as the ensemble would only
        if resumed with every member that can still train. Refuse (ValueError naming them and the command) a
        resume, ``resumed`` the runs resumed together, that leaves out an unfinished member, unless the ensemble
        cannot go on anyway (a member diverged or its directory is gone)."""
        sessions = self.read_json("timings.json").get("sessions", [])
        members = [self.path.parent / name for name in (sessions[-1].get("ensemble", []) if sessions else [])]
        if any(not (member / "config.yaml").is_file() or
               RunDirectory(member).read_json("status.json").get("status") == "diverged" for member in members):
            return
        given = {run.path.resolve() for run in resumed}
        left = [member for member in members if member.resolve() not in given
                and RunDirectory(member).read_json("status.json").get("status") != "finished"]
        if left:
            together = " ".join(f"--resume {path}" for path in [*(run.path for run in resumed), *left])
            raise ValueError(f"{self.path}: trained in one ensemble build with {', '.join(map(str, left))}, whose "
                             "random numbers it shares (one generator per build): resumed without them it would "
                             f"continue with other draws than the ensemble's; resume them together: biograd train "
                             f"{together}")

    def check_resumable(self) -> None:
        """A run that has made progress (metrics or epoch weights written) needs its checkpoint to go on."""
        progressed = (self.path / "metrics.parquet").is_file() or any(self.path.glob("weights_epoch*.npz"))
        if progressed and not self.checkpoint_path.is_file():
            raise CheckpointError(f"{self.checkpoint_path}: missing, but the run has made progress: resuming would "
                                  f"start again from the first task; {self.epoch_weights_note()}")

    @property
    def finished(self) -> bool:
        return self.read_json("status.json").get("status") == "finished"

    def epoch_weights_note(self) -> str:
        """Which weights_epoch<k>.npz files remain (for messages about a lost checkpoint)."""
        found = sorted(self.path.glob("weights_epoch*.npz"), key=lambda p: int(p.stem.removeprefix("weights_epoch")))
        return (f"the weights after each epoch remain in {', '.join(p.name for p in found)}" if found
                else "no weights_epoch<k>.npz remains")

    def _check_arrays(self, path: Path, state: PlasticState) -> None:
        """Every array of ``state`` has the shape the run's network needs, is floating point and finite."""
        model = self.config.model
        sizes, has_feedback = model.sizes, model.composition.has_feedback_synapses
        expected = {f"W{l}": (sizes[l], sizes[l - 1]) for l in range(1, len(sizes))}
        expected |= {f"bias{l}": (sizes[l],) for l in range(1, len(sizes))}
        expected |= {f"B{l}": (sizes[l - 1], sizes[l]) for l in range(2, len(sizes)) if has_feedback(l)}
        arrays = state.named()
        if missing := sorted(set(expected) - set(arrays)):
            raise CheckpointError(f"{path}: no array {', '.join(missing)} (the run's network is "
                                  f"{'-'.join(map(str, sizes))})")
        for name, values in arrays.items():
            if name not in expected or values.shape != expected[name]:
                raise CheckpointError(f"{path}: array {name} has shape {values.shape}, the run's network "
                                      f"{'-'.join(map(str, sizes))} needs {expected.get(name, 'no such array')}")
            if values.dtype.kind != "f":
                raise CheckpointError(f"{path}: array {name} has dtype {values.dtype}, not floating point")
            if not np.all(np.isfinite(values)):
                raise CheckpointError(f"{path}: array {name} has {int(np.sum(~np.isfinite(values)))} NaN/inf entries")

    def write_metrics(self, rows: list[dict]) -> None:
        write_parquet(self.path / "metrics.parquet", rows, METRIC_SCHEMA)

    def metrics(self):
        """metrics.parquet as a pandas DataFrame."""
        return pq.read_table(self.path / "metrics.parquet").to_pandas()

    def table(self, name: str):
        """``<name>.parquet`` (one of :data:`TABLES`) as a pandas DataFrame; empty if the run has none."""
        path = self.path / f"{name}.parquet"
        return (pq.read_table(path) if path.is_file() else TABLES[name].empty_table()).to_pandas()

    def accuracy(self, split: str = "test"):
        """Accuracy on ``split`` (train: online, per chunk) by epoch, a pandas Series (epoch 0: before
        training). With a validation split, validation is measured after every epoch, test once at the end."""
        metrics = self.metrics()
        return metrics[(metrics.split == split) & (metrics.metric == "accuracy")].set_index("epoch").value

    def final_accuracies(self) -> dict[str, float | None]:
        """Validation accuracy after the last epoch and test accuracy at the end (None: not measured)."""
        return {f"{split} accuracy": (float(a.iloc[-1]) if len(a := self.accuracy(split)) else None)
                for split in ("validation", "test")}
