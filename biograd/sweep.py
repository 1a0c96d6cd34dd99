"""Sweeps: the training runs (trials) of a search over config keys and seeds, on Dask, chosen on validation.

A sweep file (``runs/sweeps/*.yaml``)::

    name: demo_eta
    base: ../configs/demo.yaml            # the run config every trial starts from (relative to this file)
    set: [train.epochs=1]                 # overrides of every trial
    grid:                                 # every combination of these values ...
      model.params.forward_synapse.eta: [0.01, 0.03]
    search:                               # ... times n settings drawn from these distributions
      strategy: random
      n: 4
      seed: 0
      space:
        model.params.feedback_synapse.lambda_sleep: {log_uniform: [0.1, 1.0]}
        model.params.network.gain_hidden: {choice: [8, 16]}
    seeds: [0, 1, 2]                      # train.seed of every setting's trials
    final_test: false                     # selection: the trials never evaluate the test split
    pack: 1                               # trials trained side by side in one ensemble build (see below)

``search: {strategy: tpe, budget: <training samples>, ...}`` lets Optuna choose the settings instead, epoch by
epoch, stopping poor ones early (:mod:`biograd.study`); it takes no grid.

A *setting* is one value per searched key; a *trial* is a setting with a seed: an ordinary run
directory in ``<sweep>/trials/<trial>/``, where ``<trial>`` hashes the trial's resolved config and
the equation files its model is made of. Run again, a sweep skips finished trials and resumes interrupted
ones from their checkpoints; a changed base config or equation file of the model makes new trials instead of
mixing old and new (another file of the folder changes no trial), and a trial found under another name (an
older naming) with the same config and files is renamed, not trained again (:func:`adopt_trials`).

The sweep writes ``trials.csv`` (one row per trial: searched values, seed, status, validation and
test accuracy, minutes), ``summary.csv`` (per setting: mean and sd over seeds, the per-seed
values), ``best.json`` (the setting with the highest mean validation accuracy over its seeds) and
``sweep.png``. Trials run on a Dask cluster: by default a LocalCluster on loopback with one
single-threaded worker process per core; a worker that dies is replaced and its trial resumes.
Each worker process compiles a network shape once (``<sweep>/builds/<host>-<pid>-<key>``) and its
later trials of that shape reuse the build. A trial's result depends on its config and seed only,
not on the worker or the number of workers.

``pack: K`` trains up to K trials in one ensemble build (:mod:`biograd.packing`: trials that differ only
in seed and chunk parameters such as ``eta``), one Dask task per pack; each trial keeps its own run
directory and row. Without random numbers in the model a packed trial ends as it would alone (bit for
bit, or to rounding where a chunk parameter differs within the pack); with them (sleep noise, error
dither, Poisson input) it draws other random numbers, so packing is a choice of the sweep file.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import os
import socket
import time
import warnings
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from importlib import metadata
from itertools import product
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd
import yaml
from pydantic import BaseModel, ConfigDict, Field, model_validator

from biograd.config import RunConfig, dump_config, load_config
from biograd.launch import start_run
from biograd.models.elements import equations_dir
from biograd.models.params import read_yaml_model
from biograd.packing import packing_key
from biograd.rundir import HeldLock, RunDirectory, RunLockedError, acquired_lock, atomic_path, atomic_write
from biograd.signals import Terminated, silence_logging, stops_deferred_for_children
from biograd.trainer import Trainer, TrainingDiverged


class Distribution(BaseModel):
    """One of: ``{uniform: [a, b]}``, ``{log_uniform: [a, b]}`` (0 < a < b), ``{choice: [v1, v2, ...]}``."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    uniform: tuple[float, float] | None = None
    log_uniform: tuple[float, float] | None = None
    choice: list[Any] | None = None

    @model_validator(mode="after")
    def _one_kind(self) -> Distribution:
        given = [kind for kind in ("uniform", "log_uniform", "choice") if getattr(self, kind) is not None]
        if len(given) != 1:
            raise ValueError("give exactly one of uniform: [a, b], log_uniform: [a, b], choice: [...]")
        if self.log_uniform is not None and not 0 < self.log_uniform[0] < self.log_uniform[1]:
            raise ValueError(f"log_uniform needs 0 < a < b, got {list(self.log_uniform)}")
        if self.choice == []:
            raise ValueError("choice needs at least one value")
        return self

    def draw(self, rng: np.random.Generator) -> Any:
        """One value: uniform and log-uniform ones rounded to 3 significant digits (readable overrides)."""
        if self.choice is not None:
            return self.choice[rng.integers(len(self.choice))]
        low, high = self.uniform or self.log_uniform
        value = rng.uniform(low, high) if self.uniform else math.exp(rng.uniform(math.log(low), math.log(high)))
        return float(f"{value:.3g}")


class Pruner(BaseModel):
    """Asynchronous successive halving on the mean validation accuracy over seeds, per epoch (Optuna's
    SuccessiveHalvingPruner): rungs after min_epochs * reduction^k epochs; at a rung a setting goes on only if
    it is among the best 1/reduction of the settings that reached the rung."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    min_epochs: int = Field(1, ge=1, description="epochs before the first rung")
    reduction: int = Field(3, ge=2, description="1/reduction of the settings at a rung go on")


class Search(BaseModel):
    """How settings are chosen: ``random`` draws ``n`` of them up front (the trials of all of them are trained);
    ``tpe`` asks Optuna's TPE sampler for one setting after another while ``budget`` training samples last,
    trains them epoch by epoch and stops those the ``pruner`` rejects (:mod:`biograd.study`)."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    strategy: Literal["random", "tpe"]
    n: int | None = Field(None, ge=1, description="random: settings to draw")
    budget: int | None = Field(None, ge=1, description="tpe: training samples over the whole study (all seeds)")
    seed: int = Field(0, description="seed of the draws or of the sampler (not of the trials)")
    startup: int = Field(10, ge=1, description="tpe: settings drawn at random before TPE models the results")
    pruner: Pruner | None = Field(None, description="tpe: stop poor settings early (none: every setting trains "
                                  "all epochs)")
    space: dict[str, Distribution] = Field(min_length=1)

    @model_validator(mode="after")
    def _strategy_keys(self) -> Search:
        if self.strategy == "random" and (self.n is None or self.budget is not None or self.pruner is not None):
            raise ValueError("strategy random takes n (settings to draw), not budget or pruner")
        if self.strategy == "tpe" and (self.budget is None or self.n is not None):
            raise ValueError("strategy tpe takes budget (training samples over the study), not n")
        return self


class SweepFile(BaseModel):
    """A sweep file (see the module docstring)."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    name: str = Field(pattern=r"^[A-Za-z0-9_.-]+$")
    base: Path
    set: list[str] = []
    grid: dict[str, list[Any]] = {}
    search: Search | None = None
    seeds: list[int] = Field([0], min_length=1)
    final_test: bool = Field(False, description="trials evaluate the test split at the end (the chosen "
                             "setting's final runs); off while selecting")
    pack: int = Field(1, ge=1, description="trials trained side by side in one ensemble build (those that "
                      "differ only in seed and chunk parameters)")

    @property
    def searched(self) -> list[str]:
        """The config keys the sweep searches (grid first, then search)."""
        return [*self.grid, *(self.search.space if self.search else {})]

    @property
    def study(self) -> bool:
        """Settings come from an Optuna study (:mod:`biograd.study`), not from :meth:`settings`."""
        return self.search is not None and self.search.strategy == "tpe"

    @model_validator(mode="after")
    def _keys(self) -> SweepFile:
        searched = self.searched
        if twice := {key for key in searched if searched.count(key) > 1}:
            raise ValueError(f"searched in both grid and search: {', '.join(sorted(twice))}")
        if self.study and self.grid:
            raise ValueError("grid: not with search strategy tpe (give the values as search.space choices)")
        if empty := [key for key, values in self.grid.items() if not values]:
            raise ValueError(f"grid.{empty[0]}: no values")
        if "train.seed" in searched or any(item.startswith("train.seed=") for item in self.set):
            raise ValueError("train.seed is set by seeds:, not searched or set")
        return self

    def settings(self) -> list[dict[str, Any]]:
        """Every setting: the grid's combinations, each with every random draw (none for a study: Optuna asks)."""
        if self.study:
            return []
        grid = [dict(zip(self.grid, values, strict=True)) for values in product(*self.grid.values())]
        if self.search is None:
            return grid
        rng = np.random.default_rng(self.search.seed)
        draws = [{key: dist.draw(rng) for key, dist in self.search.space.items()} for _ in range(self.search.n)]
        return [g | d for g in grid for d in draws]


def load_sweep(path: str | Path) -> SweepFile:
    """Read and validate a sweep file; errors name the file, the line and the key."""
    path = Path(path)
    sweep, _ = read_yaml_model(path, SweepFile, "sweep file")
    return sweep.model_copy(update={"base": (path.parent / sweep.base).resolve()})


def override(key: str, value: Any) -> str:
    """``key=value`` as ``--set`` takes it (values as JSON, which YAML reads back unchanged)."""
    return f"{key}={json.dumps(value)}"


@dataclass(frozen=True)
class Trial:
    """One run of a sweep: a setting (its index and values) and a seed."""

    setting: int
    values: dict[str, Any]
    seed: int
    overrides: tuple[str, ...]
    base: Path
    epochs: int
    path: Path  # <sweep>/trials/<id>/: holds the trial's one run directory
    pack_key: str  # trials with the same key can share an ensemble build (packing key and build shape)

    @property
    def id(self) -> str:
        return self.path.name


def plan_trials(sweep: SweepFile, out: Path, equations: Path | None = None) -> list[Trial]:
    """Every trial of ``sweep`` in ``out``, each config validated now (an error names the override)."""
    equations = equations or equations_dir()
    return [trial for index, values in enumerate(sweep.settings())
            for trial in setting_trials(sweep, out, index, values, equations)]


def setting_trials(sweep: SweepFile, out: Path, index: int, values: dict[str, Any],
                   equations: Path | None = None) -> list[Trial]:
    """The trials (one per seed) of setting ``index`` with ``values``, each config validated now."""
    equations = equations or equations_dir()
    trials = []
    for seed in sweep.seeds:
        overrides = (*sweep.set, *(override(k, v) for k, v in values.items()), f"train.seed={seed}",
                     f"train.final_test={json.dumps(sweep.final_test)}")
        config = load_config(sweep.base, list(overrides), equations)
        digest = trial_digest(config)
        pack_key = json.dumps(packing_key(config), sort_keys=True) + build_key(config)
        trials.append(Trial(index, values, seed, overrides, sweep.base, config.train.epochs,
                            out / "trials" / digest, pack_key))
    return trials


def trial_digest(config: RunConfig) -> str:
    """A trial's name: the hash of its resolved config (keys sorted, so that reordering a file changes
    nothing) and of the equation files its model is made of (:func:`equations_digest`)."""
    text = json.dumps(config.model_dump(mode="json"), sort_keys=True) + equations_digest(config)
    return hashlib.sha256(text.encode()).hexdigest()[:12]


def equations_digest(config: RunConfig) -> str:
    """sha256 of the equation files and tables that ``config``'s network is made of (names and contents,
    :meth:`~biograd.models.composition.Composition.files`): editing another file of the folder (another
    precision's variant, another encoder's input) renames no trial and rebuilds nothing."""
    files = config.model.composition.files()
    return hashlib.sha256(b"".join(f.name.encode() + f.read_bytes() for f in files)).hexdigest()


def build_key(config: RunConfig) -> str:
    """What makes two trials' compiled projects the same shape: sizes, feedback, encoder, backend, chunk
    sizes, the equation files its network is made of (:func:`equations_digest`) and the Brian2 version. Two trials
    that differ in anything else share the folder too; make then recompiles what changed."""
    model, train = config.model, config.train
    shape = [model.sizes, model.feedback, model.encoder, train.backend, train.chunk, train.eval_chunk,
             train.sleep_every, train.sleep_duration, config.record.probe_samples > 0, metadata.version("brian2"),
             equations_digest(config)]
    return hashlib.sha256(json.dumps(shape, default=str).encode()).hexdigest()[:10]


ENDED = ("finished", "diverged", "pruned")  # statuses of a trial that trains no more


def run_pack(trials: list[Trial], builds_root: Path | None = None, until_epoch: int | None = None) -> list[dict]:
    """Train ``trials`` (or continue them, or read their ended runs), in one ensemble build if more than one
    (:func:`packs`); returns their rows of the sweep table. ``builds_root``: the sweep's folder of per-process
    build caches (None: builds inside the run). ``until_epoch``: train up to that epoch's validation (status
    ``paused``), not further. A trial that diverges stops the build: it is recorded as diverged, and the others
    continue in a build without it."""
    configs = [load_config(trial.base, list(trial.overrides)) for trial in trials]
    runs = []
    for trial, config in zip(trials, configs, strict=True):
        trial.path.mkdir(parents=True, exist_ok=True)
        run = trial_run(trial)
        if run is None:
            run = start_run(config, root=trial.path)
        else:  # as biograd train --resume: its files unchanged, its checkpoint there if it made progress
            run.check_unchanged()
            run.check_resumable()
        runs.append(run)
    builds = None
    if builds_root is not None:
        builds = builds_root / f"{socket.gethostname()}-{os.getpid()}-{build_key(configs[0])}" \
            f"{f'-x{len(trials)}' if len(trials) > 1 else ''}"
        builds.mkdir(parents=True, exist_ok=True)
    while todo := [run for run in runs if run.read_json("status.json").get("status") not in ENDED
                   and not (until_epoch and until_epoch in validated_epochs(run))]:
        try:
            Trainer(todo, progress=False, builds=builds, until_epoch=until_epoch).train()
        except TrainingDiverged:
            continue  # a result of its setting: recorded as diverged, with no accuracy
    return [trial_row(trial, run) for trial, run in zip(trials, runs, strict=True)]


def packs(trials: list[Trial], size: int) -> list[list[Trial]]:
    """The trials in groups of at most ``size`` that can share an ensemble build (the same ``pack_key``),
    in the order of the first trial of each group."""
    groups: dict[str, list[list[Trial]]] = {}
    for trial in trials:
        key = trial.pack_key
        if not groups.get(key) or len(groups[key][-1]) == size:
            groups.setdefault(key, []).append([])
        groups[key][-1].append(trial)
    return sorted((group for lists in groups.values() for group in lists), key=lambda g: trials.index(g[0]))


def trial_row(trial: Trial, run: RunDirectory | None, error: BaseException | None = None) -> dict:
    """The trial's row of trials.csv; ``error``: the trial failed (after its retry) with it."""
    status = run.read_json("status.json") if run else {}
    accuracies = run.final_accuracies() if run and (run.path / "metrics.parquet").is_file() else {}
    sessions = run.read_json("timings.json").get("sessions", []) if run else []
    return {"trial": trial.id, "setting": trial.setting, **trial.values, "seed": trial.seed,
            "status": f"error: {type(error).__name__}: {error}" if error else status.get("status"),
            "epochs": max(validated_epochs(run), default=0) if status.get("status") in ("paused", "pruned")
            else trial.epochs, "validation accuracy": accuracies.get("validation accuracy"),
            "test accuracy": accuracies.get("test accuracy"),
            "minutes": round(sum(s.get("wall_s", 0) for s in sessions) / 60, 2),
            "run": str(run.path.relative_to(trial.path.parents[1])) if run else ""}


def validated_epochs(run: RunDirectory) -> list[int]:
    """The epochs after which ``run`` measured its validation accuracy (epoch 0: before training)."""
    if not (run.path / "metrics.parquet").is_file():
        return []
    return [int(epoch) for epoch in run.accuracy("validation").index]


def _outcomes(trials: list[Trial], result) -> list[dict]:
    """``result()``'s rows, or the rows of trials whose pack raised: one failed pack does not end the sweep."""
    try:
        return result()
    except Exception as err:  # noqa: BLE001 - recorded in trials.csv; the other trials go on
        return [trial_row(trial, trial_run(trial), err) for trial in trials]


def trial_run(trial: Trial) -> RunDirectory | None:
    """The trial's run directory (one whose creation completed), if it has one yet."""
    runs = _runs(trial.path)
    return RunDirectory(runs[0]) if runs else None


def _runs(folder: Path) -> list[Path]:
    """The run directories in a trial's folder whose creation completed."""
    return sorted(p for p in folder.glob("*") if (p / "contract.json").is_file())


def adopt_trials(trials: list[Trial], out: Path) -> None:
    """Give a trial without a folder in ``out/trials`` the folder that holds it under another name (made before
    trials were named by the files their model uses, or by any change of the naming): one whose one run
    directory has the trial's config (config.yaml's text) and copies of the equation files the trial's model is
    made of equal to today's, byte for byte. The folder is renamed (a warning says so) and the trial goes on
    from it, ended or not, rather than training again. Of several such folders the most advanced is taken (an
    ended trial, then the one validated after more epochs); two equally advanced ones are a ValueError naming
    both. Call it holding the sweep folder's lock."""
    planned = {trial.id for trial in trials}
    earlier: dict[str, list[RunDirectory]] = {}  # config.yaml's text -> runs in folders that no trial names
    for folder in sorted((out / "trials").glob("*/")):
        runs = _runs(folder)
        if folder.name not in planned and len(runs) == 1:
            earlier.setdefault((runs[0] / "config.yaml").read_text(), []).append(RunDirectory(runs[0]))
    for trial in (trial for trial in trials if earlier and not trial.path.exists()):
        config = load_config(trial.base, list(trial.overrides))  # as run_pack trains it
        files = config.model.composition.files()
        same = sorted((run for run in earlier.get(dump_config(config), [])
                       if all((copy := run.equations / f.name).is_file() and copy.read_bytes() == f.read_bytes()
                              for f in files)), key=_advance, reverse=True)
        if len(same) > 1 and _advance(same[0]) == _advance(same[1]):
            raise ValueError(f"trial {trial.id} is in both {same[0].path.parent} and {same[1].path.parent} (the same "
                             "config and equation files, as far trained): delete one, then run the sweep again")
        if same:
            old = same[0].path.parent
            os.rename(old, trial.path)
            warnings.warn(f"{old}: trial {trial.id} under an earlier name (the same config and equation files), "
                          f"renamed to {trial.path.name}", stacklevel=2)


def check_trials_unchanged(trials: list[Trial], accept: bool = False) -> None:
    """The trials' run directories unchanged since made (:meth:`RunDirectory.check_unchanged`: RunChangedError,
    before any work; with ``accept`` the changes are recorded in each run's history.jsonl and become its
    contract), as ``biograd train --resume`` checks them: run_pack checks them again as it trains."""
    for trial in trials:
        if (run := trial_run(trial)) is not None:
            run.check_unchanged(accept)


def _advance(run: RunDirectory) -> tuple[bool, int]:
    """How far a run has trained: ended or not, then the epochs validated."""
    return run.read_json("status.json").get("status") in ENDED, len(validated_epochs(run))


def _ended_rows(out: Path) -> dict[str, dict]:
    """The rows of an earlier trials.csv whose trial ended (finished or diverged), by trial. A trial whose run
    directory is gone (deleted for space, or not copied with the tables) keeps its row and is not trained again.
    A trials.csv that cannot be read (empty, corrupt) gives a warning naming it and no rows."""
    path = out / "trials.csv"
    if not path.is_file():
        return {}
    try:  # a summary of the run directories: one that cannot be read is rewritten from them
        table = pd.read_csv(path, dtype={"trial": str, "run": str})
        missing = {"trial", "status"} - set(table.columns)
        if missing:
            raise ValueError(f"no column {', '.join(sorted(missing))}")
    except ValueError as err:  # empty, not CSV, not text (pandas' errors are ValueErrors)
        reason = " ".join(str(err).split()) or type(err).__name__
        warnings.warn(f"{path} cannot be read ({reason}): its trials are read from their run directories and it is "
                      "rewritten; a trial whose run directory is gone is trained again", stacklevel=2)
        return {}
    return {row["trial"]: row for row in table.to_dict("records") if row["status"] in ENDED}


def run_sweep(sweep: SweepFile, out: Path, *, trials: list[Trial] | None = None, scheduler: str | None = None,
              workers: int | None = None, serial: bool = False, progress: bool = True,
              accept_changes: bool = False) -> SweepResult:
    """Run every trial not yet finished (``trials``: those :func:`plan_trials` gave, default planned here), in
    this process with ``serial``, else on the Dask cluster at ``scheduler`` or on a new LocalCluster of
    ``workers`` processes; then write the tables. A trial that trials.csv records as ended and whose run
    directory is gone keeps its recorded row. A trial whose run directory's files changed is refused before any
    work, unless ``accept_changes`` (:func:`check_trials_unchanged`)."""
    with sweep_folder(sweep, out) as lock:
        trials = trials or plan_trials(sweep, out)
        adopt_trials(trials, out)
        check_trials_unchanged(trials, accept_changes)
        builds = out / "builds"
        recorded = _ended_rows(out)
        kept = [trial for trial in trials if trial.id in recorded and trial_run(trial) is None]
        groups = packs([trial for trial in trials if trial not in kept], sweep.pack)
        if serial:
            rows = [row for group in progress_bar(groups, progress, len(groups))
                    for row in _outcomes(group, lambda g=group: run_pack(g, builds))]
        else:
            rows = _on_dask(groups, builds, scheduler, workers, progress) if groups else []
        rows += [recorded[trial.id] for trial in kept]
        order = {trial.id: i for i, trial in enumerate(trials)}
        lock.check()
        return summarise(sweep, pd.DataFrame(sorted(rows, key=lambda row: order[row["trial"]])), out)


class SweepLockedError(RuntimeError):
    """Another process is running a sweep in the same folder."""


@contextmanager
def sweep_folder(sweep: SweepFile, out: Path) -> Iterator[HeldLock]:
    """Hold the sweep folder's lock (``out/.lock``, yielded: check it before writing the tables) for the block, as
    a trainer holds its run's: a second sweep of the folder stops at once (SweepLockedError); and record the sweep
    file as run in ``out/sweep.yaml`` (its base relative to ``out``)."""
    out.mkdir(parents=True, exist_ok=True)
    lock = acquired_lock(out / ".lock")
    if lock is None:
        raise SweepLockedError(f"{out}: another sweep is running in this folder (lock {out / '.lock'}); wait for it "
                               "or stop it first")
    try:
        resolved = sweep.model_dump(mode="json", exclude_none=True) | {"base": os.path.relpath(sweep.base,
                                                                                             out.resolve())}
        atomic_write(out / "sweep.yaml", yaml.safe_dump(resolved, sort_keys=False).encode())
        yield lock
    finally:
        lock.release()


def progress_bar(items, progress: bool, total: int):
    from tqdm import tqdm

    return tqdm(items, total=total, unit="trial", disable=not progress, desc="sweep")


@contextmanager
def dask_client(scheduler: str | None, workers: int | None) -> Iterator:
    """A client of the cluster at ``scheduler``, or of a new LocalCluster on loopback: ``workers`` (default:
    one per core) single-threaded worker processes that may start processes of their own (the standalone
    evaluation and probe builds), no memory limit (a run checks its own), the HTTP server on any free port.
    Stop signals are this process's: the workers start with them blocked and leave them to it
    (:func:`biograd.signals.dask_setup`; Ctrl-C reaches the whole process group). As the block ends the client
    closes, and the LocalCluster with it; by a stop (or an error), at once and quietly (:func:`end_client`)."""
    import dask
    from dask.distributed import Client, LocalCluster

    client = None
    try:
        if scheduler:
            client = Client(scheduler)
        else:
            # for this process's lifetime: a nanny reads it whenever it (re)starts a worker, e.g. one whose
            # heartbeat was lost, and a daemonic worker could not start the evaluation build's process
            dask.config.set({"distributed.worker.daemon": False})
            with stops_deferred_for_children():  # the cluster is made whole; a stop meanwhile acts after
                client = Client(LocalCluster(n_workers=workers or os.cpu_count(), threads_per_worker=1,
                                             processes=True, host="127.0.0.1", dashboard_address=":0",
                                             memory_limit=0, preload=["biograd.signals"]))
        yield client
    except BaseException:
        if client is not None:
            end_client(client, at_once=True)
        raise
    end_client(client)


async def _end_worker(dask_worker) -> None:
    """In a worker (``client.run``): close it without waiting for the task it runs; its process then exits with
    the usual clean-up, leaving that trial at its last checkpoint."""
    silence_logging()
    await dask_worker.close(nanny=True, executor_wait=False, reason="the sweep ended")


WORKERS_EXIT_S = 20.0  # how long the workers of a LocalCluster may take to exit before its nannies kill them


def end_client(client, at_once: bool = False) -> None:
    """Close ``client``, and its LocalCluster (none for someone else's cluster, ``--scheduler``, which stays).
    ``at_once`` (a stop): its workers first exit without waiting for the trials they run (:func:`_end_worker`;
    the cluster's nannies would wait 4 s for a running trial, then kill the worker, log it, and leave
    multiprocessing to warn of the semaphores it leaked), with distributed's log silenced."""
    cluster = client.cluster
    silenced = logging.root.manager.disable
    if at_once:
        logging.disable(logging.CRITICAL)
    try:
        if at_once and cluster is not None:
            with suppress(Exception):  # a worker that does not answer is ended by the cluster's close
                client.run(_end_worker, wait=False)
            deadline = time.monotonic() + WORKERS_EXIT_S
            while any(nanny.is_alive() for nanny in cluster.workers.values()) and time.monotonic() < deadline:
                time.sleep(0.05)
        client.close()
        if cluster is not None:
            cluster.close()
    finally:
        logging.disable(silenced)


def stopped_mid_task(run: RunDirectory | None, err: BaseException) -> None:
    """``run``'s status after the sweep (or study) ended while it trained on Dask (its worker ended under it):
    ``failed`` and why ("stopped by SIGINT" for a stop), as a trainer stopped mid-task writes it, unless it trains
    no more or another process holds it."""
    if run is None or not (run.path / "status.json").is_file() or \
            run.read_json("status.json").get("status") != "running":
        return
    why = f"stopped by {err.signal_name}" if isinstance(err, Terminated) else str(err) or type(err).__name__
    with suppress(RunLockedError), run.lock():
        run.set_status("failed", f"{why} during a task (the sweep ended); the last checkpoint is intact")


def _on_dask(groups: list[list[Trial]], builds: Path, scheduler: str | None, workers: int | None,
             progress: bool) -> list[dict]:
    """Packs of trials as Dask tasks, each retried once after an exception; a pack whose worker died is given
    to another worker by the scheduler and its trials continue from their checkpoints. A stop (or an error here)
    ends the workers at once; the trials they trained say so."""
    from dask.distributed import as_completed

    try:
        with dask_client(scheduler, workers) as client:
            futures = [client.submit(run_pack, group, builds, key=f"trial-{'-'.join(t.id for t in group)}",
                                     pure=False, retries=1) for group in groups]
            index = {future.key: group for future, group in zip(futures, groups, strict=True)}
            rows: list[dict] = []
            for future in progress_bar(as_completed(futures), progress, len(futures)):
                rows += _outcomes(index[future.key], future.result)
            return rows
    except BaseException as err:
        for trial in (trial for group in groups for trial in group):
            stopped_mid_task(trial_run(trial), err)
        raise


@dataclass(frozen=True)
class SweepResult:
    trials: pd.DataFrame
    summary: pd.DataFrame
    best: dict


def _values(series: pd.Series) -> str:
    return " / ".join("n/a" if pd.isna(v) else f"{v:.4f}" for v in series)


def summarise(sweep: SweepFile, trials: pd.DataFrame, out: Path, record: dict | None = None) -> SweepResult:
    """trials.csv, summary.csv (mean, sd and per-seed values per setting), best.json (with ``record``) and
    sweep.png, each written whole or not at all (:func:`biograd.rundir.atomic_path`). The best setting is chosen
    among those whose every seed finished."""
    keys = sweep.searched
    with atomic_path(out / "trials.csv") as tmp:
        trials.to_csv(tmp, index=False)
    rows = []
    for setting, group in trials.groupby("setting", sort=True):
        row = {"setting": setting, **{key: group[key].iloc[0] for key in keys}, "seeds": len(group),
               "finished": int((group.status == "finished").sum())}
        for split in ("validation", "test"):
            values = group[f"{split} accuracy"].astype(float)
            row |= {f"{split} mean": values.mean(), f"{split} sd": values.std(ddof=1) if len(values) > 1 else None,
                    f"{split} per seed": _values(values)}
        rows.append(row)
    summary = pd.DataFrame(rows)
    with atomic_path(out / "summary.csv") as tmp:
        summary.to_csv(tmp, index=False)
    complete = summary[summary.finished == summary.seeds].dropna(subset=["validation mean"])
    best = {}
    if len(complete):
        top = complete.loc[complete["validation mean"].idxmax()]
        best = {"setting": int(top.setting), "values": {key: _plain(top[key]) for key in keys},
                "overrides": [override(key, _plain(top[key])) for key in keys],
                "validation mean": float(top["validation mean"]),
                "validation sd": None if pd.isna(top["validation sd"]) else float(top["validation sd"]),
                "seeds": int(top.seeds), "chosen on": "mean validation accuracy over seeds"}
    best |= record or {}
    atomic_write(out / "best.json", (json.dumps(best, indent=2) + "\n").encode())
    if len(trials.dropna(subset=["validation accuracy"])):
        from biograd.analysis.figures import sweep_figure

        with atomic_path(out / "sweep.png") as tmp:
            sweep_figure(trials, keys, tmp)
    return SweepResult(trials, summary, best)


def _plain(value):
    """numpy scalars as Python ones (JSON, overrides)."""
    return value.item() if isinstance(value, np.generic) else value
