"""Training runs: a config in, a run directory out, resumable after a kill at any point.

The trainer walks the task plan of :mod:`biograd.plan` and, after every task, writes
an atomic checkpoint (weights + progress + metrics), so ``train(resume=True)`` continues from the
last finished task and ends bit-identical to an uninterrupted run. Weights that become NaN or
exceed ``train.max_weight`` stop the run (status ``diverged``) before they are checkpointed.

Evaluation uses an inference-only build (slots of ``n_f`` steps, no error phases, no feedback),
probes (``record.probe_samples``) a small training build of their own. On cpp_standalone the
training build owns this process's device, so each of those lives in a worker process, compiled
once (while the training build compiles) and rerun with ``run_args`` like the training build.
"""

from __future__ import annotations

import math
import multiprocessing
import os
import shlex
import signal
import sys
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from tqdm import tqdm

from biograd.analysis.backprop import angle_deg
from biograd.analysis.figures import learning_curve
from biograd.chunks import predict, predict_replicas, run_task
from biograd.config import RunConfig, TrainConfig
from biograd.data.splits import Split, Splits, load_splits
from biograd.models.composition import check_composition_units
from biograd.models.network import BioGradNetwork, PlasticState, estimated_bytes, synapse_count
from biograd.models.runners import STANDALONE, use_backend
from biograd.models.spec import NetworkSpec
from biograd.plan import Task, build, plan_tasks, slots_per_chunk
from biograd.recording import Prober, Recorder
from biograd.rundir import Progress, RunDirectory


class TrainingDiverged(RuntimeError):
    """Weights became NaN/inf or exceeded ``max_weight``; the run directory keeps the last good checkpoint."""


class Terminated(BaseException):
    """SIGINT (Ctrl-C) or SIGTERM (``kill``, ``timeout``, a batch scheduler), to the trainer or to its whole
    process group, stops a run: after the current task and its checkpoint, or, when the signal also
    ended a compiled binary, make or a worker of that task, at once with the last checkpoint intact.
    Status ``failed`` with the signal's name, workers closed, ``--resume`` ready."""

    def __init__(self, message: str, signal_name: str):
        super().__init__(message)
        self.signal_name = signal_name

    @property
    def exit_code(self) -> int:
        """128 + the signal's number (130 for SIGINT, 143 for SIGTERM), as a shell reports it."""
        return 128 + signal.Signals[self.signal_name].value


STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


@contextmanager
def stop_requests() -> Iterator[list[str]]:
    """Within the block, SIGINT or SIGTERM appends its name to the yielded list instead of interrupting
    the process (the caller stops at a safe point); a second one acts as usual (KeyboardInterrupt, or
    the end of the process). Raising from the handler instead could land inside a finaliser, where
    Python ignores the exception."""
    requested: list[str] = []
    if threading.current_thread() is not threading.main_thread():
        yield requested
        return

    def request(signum, frame):
        requested.append(signal.Signals(signum).name)
        for stop in STOP_SIGNALS:
            signal.signal(stop, previous[stop])
        print(f"{signal.Signals(signum).name}: stopping after this task (send it again to stop at once)",
              file=sys.stderr, flush=True)

    previous = {stop: signal.signal(stop, request) for stop in STOP_SIGNALS}
    try:
        yield requested
    finally:
        for stop, handler in previous.items():
            signal.signal(stop, handler)


def check_health(state: PlasticState, max_weight: float) -> None:
    for name, values in state.named().items():
        if not np.all(np.isfinite(values)):
            raise TrainingDiverged(f"{name} has {np.sum(~np.isfinite(values))} NaN/inf entries")
        if name[0] in "WB" and np.max(np.abs(values)) > max_weight:
            raise TrainingDiverged(f"max |{name}| = {np.max(np.abs(values)):.3g} exceeds train.max_weight = "
                                   f"{max_weight} (exploding weights; lower train.eta?)")


def feedback_rows(state: PlasticState, base: dict) -> list[dict]:
    """angle(B_l, W_l^T) in degrees and the norms |B_l|, |W_l| for every layer with feedback weights."""
    return [base | {"metric": metric, "layer": l, "value": value} for l, b in sorted(state.B.items())
            for metric, value in [("angle_B_WT", angle_deg(b, state.W[l - 1].T)), ("norm_B", float(np.linalg.norm(b))),
                                  ("norm_W", float(np.linalg.norm(state.W[l - 1])))]]


# ---------------------------------------------------------------------- evaluation
class Evaluator:
    """Predicts named splits with one inference-only build of ``spec``, ``chunk`` samples per run."""

    def __init__(self, spec: NetworkSpec, splits: dict[str, Split], chunk: int, seed: int | list[int],
                 equations: Path | None):
        self.splits = splits
        self.net = BioGradNetwork(spec, slots=min(chunk, max(map(len, splits.values()))), seed=seed,
                                  equations=equations, inference=True)
        self.net.compile()

    def predict(self, state: PlasticState, split: str) -> np.ndarray:
        return predict(self.net, self.splits[split], state)

    def predict_replicas(self, states: list[PlasticState], split: str) -> list[np.ndarray]:
        """Predictions of every replica of an ensemble build (``seed`` a list), replica k with ``states[k]``."""
        return predict_replicas(self.net, self.splits[split], states)


_hosted = None  # the object a worker process serves
PARENT_POLL_S = 1.0  # how often a worker checks that the trainer still lives


def _exit_with_parent(parent: int) -> None:
    """Daemon thread of a worker: end the worker once its trainer is gone (even after a SIGKILL,
    which leaves the process pool no chance to shut it down)."""
    while os.getppid() == parent:
        time.sleep(PARENT_POLL_S)
    os._exit(1)


def _start_worker(backend: str, directory: Path, factory, args: tuple) -> None:
    global _hosted
    for stop in STOP_SIGNALS:  # a signal to the process group is the trainer's to handle; the worker ends with it
        signal.signal(stop, signal.SIG_IGN)
    threading.Thread(target=_exit_with_parent, args=(os.getppid(),), daemon=True, name="parent-watch").start()
    use_backend(backend, directory)
    _hosted = factory(*args)


def _call(method: str, *args):
    return getattr(_hosted, method)(*args)


class Worker:
    """``factory(*args)`` (an Evaluator or a Prober) in a worker process with its own standalone
    ``backend`` device, built in ``directory``; its methods are called through the process pool."""

    def __init__(self, backend: str, directory: Path, factory, *args):
        self.pool = ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn"), initializer=_start_worker,
                                        initargs=(backend, directory, factory, args))
        self.pool.submit(int)  # start the worker now: it compiles while the training build compiles

    def __getattr__(self, method: str):
        return lambda *args: self.pool.submit(_call, method, *args).result()

    def close(self) -> None:
        self.pool.shutdown()


def hosted(backend: str, directory: Path, factory, *args):
    """``factory(*args)`` in this process (runtime device), or in a :class:`Worker` (standalone)."""
    return Worker(backend, directory, factory, *args) if backend in STANDALONE else factory(*args)


# ---------------------------------------------------------------------- training
@dataclass
class Session:
    """What one training session works with: the data, the plan, the training build and its workers."""

    splits: Splits
    tasks: list[Task]
    net: BioGradNetwork
    progress: Progress
    evaluator: Evaluator | Worker
    prober: Prober | Worker | None
    timings: dict
    started: float = field(default_factory=time.perf_counter)

    def close(self) -> None:
        for worker in (self.evaluator, self.prober):
            if isinstance(worker, Worker):
                worker.close()


class Trainer:
    """Trains the run in ``run`` from its config; ``progress`` shows a bar over all samples. ``builds`` is
    the folder of the compiled projects (default: the run directory); a sweep gives the trials of one
    worker process the same folder, so that a later trial of the same shape reuses the compiled code
    (Brian2 rewrites only changed source files and make recompiles only those)."""

    def __init__(self, run: RunDirectory, progress: bool = True, builds: Path | None = None):
        self.run, self.progress, self.builds = run, progress, builds or run.path
        self.config: RunConfig = run.config
        self.stop_requested: list[str] = []  # signals that asked the run to stop (see stop_requests)

    def train(self) -> Progress:
        """Run (or continue) every task of the plan; returns the final progress with all metrics rows.
        Holds the run's lock: a second trainer of the same run raises RunLockedError at once."""
        with self.run.lock():
            try:
                with stop_requests() as self.stop_requested:
                    return self._train()
            except TrainingDiverged:
                raise
            except BaseException as err:  # the run directory says why it stopped (Ctrl-C included)
                stop = self._interruption(err)
                self.run.set_status("failed", str(stop) if stop else f"{type(err).__name__}: {err}")
                if stop:
                    raise stop from err
                raise

    def _interruption(self, err: BaseException) -> Terminated | None:
        """A stop signal and what it did: the clean stop itself, or the failure of a child process
        (binary, make, worker) that the same signal ended, seen as that stop."""
        if isinstance(err, Terminated):
            return err
        if not self.stop_requested:
            return None
        name = self.stop_requested[0]
        return Terminated(f"stopped by {name} during a task ({type(err).__name__}); the last checkpoint is intact",
                          name)

    def _train(self) -> Progress:
        session = self._open()
        try:
            self._run_tasks(session)
        finally:
            session.close()
            self._write_timings(session)
        learning_curve(self.run.metrics(), self.run.learning_curve_path)
        self.run.set_status("finished", f"{len(session.tasks)} tasks")
        return session.progress

    def _open(self) -> Session:
        """Data, plan and builds of this session, continuing from the checkpoint if there is one."""
        cfg, run = self.config, self.run
        for stale in run.path.glob(".checkpoint.npz.*"):  # a kill during a checkpoint write
            stale.unlink()
        equations = run.build_equations()
        spec, train_cfg = cfg.model.using(equations), cfg.train
        splits = load_splits(cfg.data, spec)
        run.check_splits(splits.record())
        tasks = plan_tasks(spec, train_cfg, len(splits.train), validation=splits.validation is not None)
        self.chunks_per_epoch = math.ceil(len(splits.train) / train_cfg.chunk)
        self.recorder = Recorder(cfg.record, train_cfg)
        state, progress = run.load_checkpoint() if run.checkpoint_path.is_file() else (None, Progress())
        use_backend(train_cfg.backend, self.builds / run.build_dir.name)
        net = build(spec, train_cfg, report=train_cfg.report)
        if state is not None:
            net.state = state
            run.save_checkpoint(net.state, progress)  # tables too, in case a crash came between the two
        backend = train_cfg.backend
        evaluated = {name: split for name, split in splits.named().items() if name != "train"}
        evaluator = hosted(backend, self.builds / "build_eval", Evaluator, spec, evaluated, train_cfg.eval_chunk,
                           train_cfg.seed, equations)
        prober = hosted(backend, self.builds / "build_probe", Prober, cfg, equations, run.path) \
            if cfg.record.probe_samples else None
        timings = {"command": shlex.join(sys.argv), "started": time.strftime("%FT%T"),
                   "resumed_at_task": progress.task, "build_s": 0.0,
                   "train_s": 0.0, "evaluate_s": 0.0, "test_s": 0.0, "warmup_s": 0.0, "probe_s": 0.0, "samples": 0}
        self.earlier_sessions = run.read_json("timings.json").get("sessions", [])
        session = Session(splits, tasks, net, progress, evaluator, prober, timings)
        run.set_status("running", f"task {progress.task} of {len(tasks)}")
        t0 = time.perf_counter()
        net.compile()
        timings["build_s"] = time.perf_counter() - t0
        return session

    def _write_timings(self, session: Session) -> None:
        """After every task, so that a killed session is recorded too."""
        session.timings["wall_s"] = time.perf_counter() - session.started
        self.run.write_json("timings.json", {"sessions": [*self.earlier_sessions, session.timings]})

    def _run_tasks(self, s: Session) -> None:
        """Every task not yet done: run it, probe after it if due, check, checkpoint, report."""
        run, progress, tasks = self.run, s.progress, s.tasks
        done = sum(len(task.samples) for task in tasks[: progress.task])
        bar = tqdm(total=sum(len(task.samples) for task in tasks), initial=done, unit="sample",
                   disable=not self.progress, desc=self.config.name, dynamic_ncols=True)
        try:
            for task in tasks[progress.task :]:
                t0 = time.perf_counter()
                rows = self._do(task, s, done)
                elapsed = time.perf_counter() - t0
                s.timings[f"{task.kind}_s"] += elapsed
                if self.recorder.probes_after(task, self.chunks_per_epoch):
                    rows += self._probe(s, rows[0])
                if task.kind == "train":
                    done += len(task.samples)
                    s.timings["samples"] += len(task.samples)
                    rows.append(rows[0] | {"metric": "samples_per_s", "value": len(task.samples) / elapsed})
                    bar.update(len(task.samples))
                    bar.set_postfix(epoch=task.epoch, acc=f"{progress.epoch_correct / progress.epoch_seen:.3f}")
                check_health(s.net.state, self.config.train.max_weight)
                self._checkpoint(s, task, rows)
                if task.kind in ("evaluate", "test"):
                    bar.write(f"epoch {task.epoch}: {task.split} accuracy {rows[0]['value']:.4f}")
        except TrainingDiverged as err:
            failed = tasks[progress.task]
            run.set_status("diverged", f"task {progress.task} ({failed.kind}, epoch {failed.epoch}): {err}; "
                           f"last good checkpoint: {run.checkpoint_path}")
            raise
        finally:
            bar.close()

    def _probe(self, s: Session, base: dict) -> list[dict]:
        """Probe rows at the current weights (alignment rows go to their own table)."""
        t0 = time.perf_counter()
        metrics, alignment = s.prober.rows(s.net.state, base, f"task{s.progress.task:05d}")
        s.progress.tables["alignment"] += alignment
        s.timings["probe_s"] += time.perf_counter() - t0
        return metrics

    def _checkpoint(self, s: Session, task: Task, rows: list[dict]) -> None:
        """Record a finished task: checkpoint, timings, status; stop here if a signal asked to."""
        run, progress = self.run, s.progress
        progress.rows.extend(rows)
        progress.task += 1
        run.save_checkpoint(s.net.state, progress)
        self._write_timings(s)
        run.set_status("running", f"task {progress.task} of {len(s.tasks)}, epoch {task.epoch}")
        if self.stop_requested:
            raise Terminated(f"stopped by {self.stop_requested[0]} after task {progress.task} of {len(s.tasks)}",
                             self.stop_requested[0])
        if task.kind == "evaluate":
            run.save_checkpoint(s.net.state, progress, run.path / f"weights_epoch{task.epoch}.npz")

    def _do(self, task: Task, s: Session, done: int) -> list[dict]:
        """Run one task; returns its metrics rows."""
        net, progress = s.net, s.progress
        if task.kind in ("evaluate", "test"):
            correct = s.evaluator.predict(net.state, task.split) == s.splits.named()[task.split].labels
            progress.epoch_correct = progress.epoch_seen = 0
            base = {"epoch": task.epoch, "chunk": None, "samples": done, "split": task.split, "layer": None}
            accuracy = base | {"metric": "accuracy", "value": float(np.mean(correct))}
            return [accuracy, *feedback_rows(net.state, base)] if task.kind == "evaluate" else [accuracy]
        run = run_task(net, task, s.splits.train, self.config.train)
        if task.kind == "warmup":
            base = {"epoch": 0, "chunk": task.index, "samples": 0, "split": "sleep", "layer": None}
            return [*feedback_rows(net.state, base), *self.recorder.chunk_rows(run, base, net.spec)]
        progress.epoch_correct += run.correct
        progress.epoch_seen += len(task.samples)
        base = {"epoch": task.epoch, "chunk": task.index, "samples": done + len(task.samples), "split": "train",
                "layer": None}
        if task.index == self.chunks_per_epoch - 1:
            progress.tables["neuron_rates"] += self.recorder.rate_rows(run, base, net.spec)
        return [base | {"metric": "accuracy", "value": run.correct / len(task.samples)},
                *feedback_rows(net.state, base), *self.recorder.chunk_rows(run, base, net.spec)]


def start_run(config: RunConfig, equations: Path | None = None, root: Path = Path("runs/out")) -> RunDirectory:
    """A new run directory for ``config`` (equation files copied from ``equations``, default the model's),
    made only once the data loads (checksums included) and the network fits in this machine's memory."""
    from biograd.models.elements import equations_dir

    equations = equations or equations_dir()
    spec = config.model.using(equations)
    check_composition_units(spec.composition)
    check_memory(spec, config.train)
    splits = load_splits(config.data, spec)
    run = RunDirectory.create(config, equations, root)
    run.check_splits(splits.record())
    return run


def check_memory(spec: NetworkSpec, train: TrainConfig, total: int | None = None) -> None:
    """Refuse a network whose estimated memory (:func:`~biograd.models.network.estimated_bytes`, for the
    training build and the evaluation and probe builds) exceeds 80% of this machine's memory."""
    total = total or os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    need = estimated_bytes(spec, slots_per_chunk(spec, train)) + 2 * estimated_bytes(spec, train.eval_chunk)
    if need > 0.8 * total:
        raise TooLargeError(f"the network {'-'.join(map(str, spec.sizes))} needs about {need / 2**30:.1f} GiB "
                            f"(training, evaluation and probe builds; {synapse_count(spec):,} synapses in training), "
                            f"more than 80% of this machine's {total / 2**30:.1f} GiB")


class TooLargeError(ValueError):
    """The configured network would not fit in this machine's memory."""

