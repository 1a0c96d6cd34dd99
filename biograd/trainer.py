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
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from tqdm import tqdm

from biograd.analysis.backprop import angle_deg
from biograd.analysis.figures import learning_curve
from biograd.chunks import ChunkRun, predict, predict_replicas, run_tasks
from biograd.config import RunConfig, TrainConfig
from biograd.data.splits import Split, Splits, load_splits
from biograd.models.backend import Backend
from biograd.models.composition import check_composition_units
from biograd.models.network import BioGradNetwork, PlasticState, estimated_bytes, synapse_count
from biograd.models.spec import NetworkSpec
from biograd.packing import varied_parameters
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
    """Predicts named splits with one inference-only build of ``spec`` on ``backend`` (default: Brian2's active
    device), ``chunk`` samples per run."""

    def __init__(self, spec: NetworkSpec, splits: dict[str, Split], chunk: int, seed: int | list[int],
                 equations: Path | None, backend: Backend | None = None):
        self.splits = splits
        self.net = BioGradNetwork(spec, slots=min(chunk, max(map(len, splits.values()))), seed=seed,
                                  equations=equations, inference=True, backend=backend)
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


def _start_worker(backend: Backend, factory, args: tuple) -> None:
    global _hosted
    for stop in STOP_SIGNALS:  # a signal to the process group is the trainer's to handle; the worker ends with it
        signal.signal(stop, signal.SIG_IGN)
    threading.Thread(target=_exit_with_parent, args=(os.getppid(),), daemon=True, name="parent-watch").start()
    backend.activate()
    _hosted = factory(*args, backend=backend)


def _call(method: str, *args):
    return getattr(_hosted, method)(*args)


class Worker:
    """``factory(*args, backend=backend)`` (an Evaluator or a Prober) in a worker process with its own ``backend``
    (a standalone device or GeNN); its methods are called through the process pool."""

    def __init__(self, backend: Backend, factory, *args):
        self.pool = ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn"), initializer=_start_worker,
                                        initargs=(backend, factory, args))
        self.pool.submit(int)  # start the worker now: it compiles while the training build compiles

    def __getattr__(self, method: str):
        return lambda *args: self.pool.submit(_call, method, *args).result()

    def close(self) -> None:
        self.pool.shutdown()


def hosted(backend: Backend, factory, *args):
    """``factory(*args, backend=backend)`` in this process (runtime device), or in a :class:`Worker` on a compiled
    ``backend`` (standalone or GeNN: a build of its own, compiled while the training build compiles)."""
    if not backend.compiled:
        return factory(*args, backend=backend)
    return Worker(backend, factory, *args)


# ---------------------------------------------------------------------- training
@dataclass
class Member:
    """One run of a build: its directory, task plan and progress. A build trains one run, or, as an ensemble
    (:mod:`biograd.packing`), several side by side, each recorded in its own run directory."""

    run: RunDirectory
    tasks: list[Task]
    progress: Progress
    values: dict[str, float]  # its own values of the chunk parameters that differ between the members
    earlier_sessions: list[dict]


@dataclass
class Session:
    """What one training session works with: the data, the members, the training build and its workers."""

    splits: Splits
    members: list[Member]
    net: BioGradNetwork
    evaluator: Evaluator | Worker
    prober: Prober | Worker | None
    timings: dict
    started: float = field(default_factory=time.perf_counter)

    def close(self) -> None:
        for worker in (self.evaluator, self.prober):
            if isinstance(worker, Worker):
                worker.close()


class Trainer:
    """Trains the run in ``runs`` from its config, or several runs in one ensemble build (configs that differ
    only in ``train.seed`` and chunk parameters, :func:`~biograd.packing.varied_parameters`); each run keeps
    its own directory, checkpoints and metrics. ``progress`` shows a bar over all samples. ``builds`` is
    the folder of the compiled projects (default: the first run directory); a sweep gives the trials of one
    worker process the same folder, so that a later trial of the same shape reuses the compiled code
    (Brian2 rewrites only changed source files and make recompiles only those)."""

    def __init__(self, runs: RunDirectory | list[RunDirectory], progress: bool = True, builds: Path | None = None):
        self.runs = [runs] if isinstance(runs, RunDirectory) else list(runs)
        self.run = self.runs[0]
        self.progress, self.builds = progress, builds or self.run.path
        self.config: RunConfig = self.run.config
        self.varied = varied_parameters([run.config for run in self.runs]) if len(self.runs) > 1 else set()
        if len(self.runs) > 1 and self.config.record.probe_samples:
            raise ValueError("record.probe_samples: probes need a build of their own per run; an ensemble "
                             "trains with record.probe_samples=0 (probe its runs afterwards: biograd probe)")
        self.stop_requested: list[str] = []  # signals that asked the run to stop (see stop_requests)

    def train(self) -> list[Progress]:
        """Run (or continue) every task of the plan; returns each run's final progress with all metrics rows.
        Holds the runs' locks: a second trainer of one of them raises RunLockedError at once."""
        with ExitStack() as locks:
            for run in self.runs:
                locks.enter_context(run.lock())
            try:
                with stop_requests() as self.stop_requested:
                    return self._train()
            except TrainingDiverged:
                raise
            except BaseException as err:  # the run directories say why they stopped (Ctrl-C included)
                stop = self._interruption(err)
                for run in self.runs:
                    run.set_status("failed", str(stop) if stop else f"{type(err).__name__}: {err}")
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

    def _train(self) -> list[Progress]:
        session = self._open()
        try:
            self._run_tasks(session)
        finally:
            session.close()
            self._write_timings(session)
        for member in session.members:
            learning_curve(member.run.metrics(), member.run.learning_curve_path)
            member.run.set_status("finished", f"{len(member.tasks)} tasks")
        return [member.progress for member in session.members]

    def _member(self, run: RunDirectory, spec: NetworkSpec, n_train: int, validation: bool) -> tuple[Member, object]:
        """A run's plan and progress (from its checkpoint if there is one), and its checkpointed state or None."""
        for stale in run.path.glob(".checkpoint.npz.*"):  # a kill during a checkpoint write
            stale.unlink()
        config = run.config
        member_spec = config.model.using(run.build_equations())
        tasks = plan_tasks(member_spec, config.train, n_train, validation=validation)
        state, progress = run.load_checkpoint() if run.checkpoint_path.is_file() else (None, Progress())
        table = member_spec.composition.chunk_parameters()
        return Member(run, tasks, progress, {name: table[name] for name in self.varied},
                      run.read_json("timings.json").get("sessions", [])), state

    def _open(self) -> Session:
        """Data, plans and builds of this session, each run continuing from its checkpoint if it has one."""
        cfg, run = self.config, self.run
        equations = run.build_equations()
        spec, train_cfg = cfg.model.using(equations), cfg.train
        splits = load_splits(cfg.data, spec)
        members, states = [], []
        for member_run in self.runs:
            member_run.check_splits(splits.record())
            member, state = self._member(member_run, spec, len(splits.train), splits.validation is not None)
            members.append(member)
            states.append(state)
        self.chunks_per_epoch = math.ceil(len(splits.train) / train_cfg.chunk)
        self.recorder = Recorder(cfg.record, train_cfg)
        backend = train_cfg.backend_in(self.builds / run.build_dir.name)
        backend.activate()
        seeds = [member.run.config.train.seed for member in members]
        net = build(spec, train_cfg, seeds=seeds, varied=self.varied, report=train_cfg.report, backend=backend)
        net.states = [net.initial_states[k] if state is None else state for k, state in enumerate(states)]
        for member, state in zip(members, states, strict=True):
            if state is not None:
                member.run.save_checkpoint(state, member.progress)  # tables too, in case a crash came between the two
        evaluated = {name: split for name, split in splits.named().items() if name != "train"}
        evaluator = hosted(train_cfg.backend_in(self.builds / "build_eval"), Evaluator, spec, evaluated,
                           train_cfg.eval_chunk, seeds, equations)
        prober = hosted(train_cfg.backend_in(self.builds / "build_probe"), Prober, cfg, equations, run.path) \
            if cfg.record.probe_samples else None
        timings = {"command": shlex.join(sys.argv), "started": time.strftime("%FT%T"),
                   "resumed_at_task": min(member.progress.task for member in members), "build_s": 0.0,
                   "train_s": 0.0, "evaluate_s": 0.0, "test_s": 0.0, "warmup_s": 0.0, "probe_s": 0.0, "samples": 0}
        if len(members) > 1:
            timings["ensemble"] = [member.run.path.name for member in members]  # the times are the whole build's
        session = Session(splits, members, net, evaluator, prober, timings)
        for member in members:
            member.run.set_status("running", f"task {member.progress.task} of {len(member.tasks)}")
        t0 = time.perf_counter()
        net.compile()
        timings["build_s"] = time.perf_counter() - t0
        return session

    def _write_timings(self, session: Session) -> None:
        """After every task, so that a killed session is recorded too."""
        session.timings["wall_s"] = time.perf_counter() - session.started
        for member in session.members:
            member.run.write_json("timings.json", {"sessions": [*member.earlier_sessions, session.timings]})

    def _run_tasks(self, s: Session) -> None:
        """Every task not yet done: run it, probe after it if due, check, checkpoint, report. A member whose
        checkpoint is ahead (a kill between two members' checkpoints) sits out the tasks it has done."""
        tasks = s.members[0].tasks
        first = min(member.progress.task for member in s.members)
        done = sum(len(task.samples) for task in tasks[:first])
        bar = tqdm(total=sum(len(task.samples) for task in tasks) * len(s.members), initial=done * len(s.members),
                   unit="sample", disable=not self.progress, desc=self.config.name, dynamic_ncols=True)
        try:
            for index in range(first, len(tasks)):
                task = tasks[index]
                t0 = time.perf_counter()
                rows = self._do(index, s, done)
                elapsed = time.perf_counter() - t0
                s.timings[f"{task.kind}_s"] += elapsed
                if self.recorder.probes_after(task, self.chunks_per_epoch):
                    rows[0] += self._probe(s, rows[0][0])
                if task.kind == "train":
                    done += len(task.samples)
                    s.timings["samples"] += len(task.samples)
                    for member_rows in (member_rows for member_rows in rows if member_rows):
                        member_rows.append(member_rows[0] | {"metric": "samples_per_s",
                                                             "value": len(s.members) * len(task.samples) / elapsed})
                    bar.update(len(task.samples) * len(s.members))
                    progress = s.members[0].progress
                    bar.set_postfix(epoch=task.epoch, acc=f"{progress.epoch_correct / progress.epoch_seen:.3f}")
                for member, state in zip(s.members, s.net.states, strict=True):
                    if member.progress.task == index:
                        self._check(s, member, state, task)
                self._checkpoint(s, index, task, rows)
                if task.kind in ("evaluate", "test"):
                    bar.write(f"epoch {task.epoch}: {task.split} accuracy " +
                              ", ".join(f"{member_rows[0]['value']:.4f}" for member_rows in rows if member_rows))
        finally:
            bar.close()

    def _check(self, s: Session, member: Member, state, task: Task) -> None:
        """Stop the build when a member's weights diverged (its status says so; the others' say why they stopped)."""
        try:
            check_health(state, self.config.train.max_weight)
        except TrainingDiverged as err:
            member.run.set_status("diverged", f"task {member.progress.task} ({task.kind}, epoch {task.epoch}): "
                                  f"{err}; last good checkpoint: {member.run.checkpoint_path}")
            for other in s.members:
                if other is not member:
                    other.run.set_status("failed", f"stopped: {member.run.path.name}, trained in the same ensemble "
                                         "build, diverged; resume this run on its own or with other runs")
            raise

    def _probe(self, s: Session, base: dict) -> list[dict]:
        """Probe rows at the current weights (a single run; alignment rows go to their own table)."""
        t0 = time.perf_counter()
        progress = s.members[0].progress
        metrics, alignment = s.prober.rows(s.net.state, base, f"task{progress.task:05d}")
        progress.tables["alignment"] += alignment
        s.timings["probe_s"] += time.perf_counter() - t0
        return metrics

    def _checkpoint(self, s: Session, index: int, task: Task, rows: list[list[dict]]) -> None:
        """Record a finished task in every member that ran it: checkpoint, timings, status; stop here if a
        signal asked to."""
        for member, state, member_rows in zip(s.members, s.net.states, rows, strict=True):
            if member.progress.task != index:  # done before this session: its checkpoint is ahead
                continue
            run, progress = member.run, member.progress
            progress.rows.extend(member_rows)
            progress.task += 1
            run.save_checkpoint(state, progress)
            run.set_status("running", f"task {progress.task} of {len(member.tasks)}, epoch {task.epoch}")
            if task.kind == "evaluate":
                run.save_checkpoint(state, progress, run.path / f"weights_epoch{task.epoch}.npz")
        self._write_timings(s)
        if self.stop_requested:
            raise Terminated(f"stopped by {self.stop_requested[0]} after task {index + 1} of {len(s.members[0].tasks)}",
                             self.stop_requested[0])

    def _do(self, index: int, s: Session, done: int) -> list[list[dict]]:
        """Run task ``index`` in every member; returns each member's metrics rows. A member that has done it
        already (its checkpoint is ahead) runs along from its current weights, which it keeps, and gets no rows."""
        net, members = s.net, s.members
        tasks = [member.tasks[index] for member in members]
        task = tasks[0]
        behind = [member.progress.task == index for member in members]
        kept = list(net.states)
        if task.kind in ("evaluate", "test"):
            labels = s.splits.named()[task.split].labels
            base = {"epoch": task.epoch, "chunk": None, "samples": done, "split": task.split, "layer": None}
            rows = []
            for member, state, predicted, runs_it in zip(members, kept, s.evaluator.predict_replicas(kept, task.split),
                                                         behind, strict=True):
                if runs_it:
                    member.progress.epoch_correct = member.progress.epoch_seen = 0
                accuracy = base | {"metric": "accuracy", "value": float(np.mean(predicted == labels))}
                rows.append([] if not runs_it else
                            [accuracy, *feedback_rows(state, base)] if task.kind == "evaluate" else [accuracy])
            return rows
        runs = run_tasks(net, tasks, s.splits.train, self.config.train,
                         values=[member.values | task.values for member, task in zip(members, tasks, strict=True)])
        net.states = [new if runs_it else old for old, new, runs_it in zip(kept, net.states, behind, strict=True)]
        return [self._chunk_rows(member, member_task, run, state, done, net.spec) if runs_it else []
                for member, member_task, run, state, runs_it in zip(members, tasks, runs, net.states, behind,
                                                                   strict=True)]

    def _chunk_rows(self, member: Member, task: Task, run: ChunkRun, state, done: int, spec: NetworkSpec) -> list[dict]:
        """Metrics rows of one member's warm-up or training chunk."""
        progress = member.progress
        if task.kind == "warmup":
            base = {"epoch": 0, "chunk": task.index, "samples": 0, "split": "sleep", "layer": None}
            return [*feedback_rows(state, base), *self.recorder.chunk_rows(run, base, spec)]
        progress.epoch_correct += run.correct
        progress.epoch_seen += len(task.samples)
        base = {"epoch": task.epoch, "chunk": task.index, "samples": done + len(task.samples), "split": "train",
                "layer": None}
        if task.index == self.chunks_per_epoch - 1:
            progress.tables["neuron_rates"] += self.recorder.rate_rows(run, base, spec)
        return [base | {"metric": "accuracy", "value": run.correct / len(task.samples)},
                *feedback_rows(state, base), *self.recorder.chunk_rows(run, base, spec)]


def start_run(config: RunConfig, equations: Path | None = None, root: Path = Path("runs/out")) -> RunDirectory:
    """A new run directory for ``config`` (equation files copied from ``equations``, default the model's),
    made only once the data loads (checksums included) and the network fits in this machine's memory."""
    return start_runs(config, equations, root)[0]


def start_runs(config: RunConfig, equations: Path | None = None, root: Path = Path("runs/out")) -> list[RunDirectory]:
    """:func:`start_run` for each replica of ``model.replicas``: runs of seeds train.seed, train.seed + 1, ...,
    each an ordinary single-network run (its config.yaml has no replicas), to train in one ensemble build."""
    from biograd.models.elements import equations_dir

    equations = equations or equations_dir()
    spec = config.model.using(equations)
    check_composition_units(spec.composition)
    check_memory(spec, config.train, replicas=spec.replicas)
    splits = load_splits(config.data, spec)
    runs = []
    for k in range(spec.replicas):
        member = config.model_copy(update={"train": config.train.model_copy(update={"seed": config.train.seed + k})})
        run = RunDirectory.create(member, equations, root)
        run.check_splits(splits.record())
        runs.append(run)
    return runs


def check_memory(spec: NetworkSpec, train: TrainConfig, total: int | None = None, replicas: int = 1) -> None:
    """Refuse a network (an ensemble of ``replicas``) whose estimated memory
    (:func:`~biograd.models.network.estimated_bytes`, for the training build and the evaluation and probe
    builds) exceeds 80% of this machine's memory."""
    total = total or os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    need = estimated_bytes(spec, slots_per_chunk(spec, train), replicas) + \
        2 * estimated_bytes(spec, train.eval_chunk, replicas)
    if need > 0.8 * total:
        network = f"{replicas} x " * (replicas > 1) + "-".join(map(str, spec.sizes))
        raise TooLargeError(f"the network {network} needs about {need / 2**30:.1f} GiB "
                            f"(training, evaluation and probe builds; {synapse_count(spec):,} synapses in training), "
                            f"more than 80% of this machine's {total / 2**30:.1f} GiB")


class TooLargeError(ValueError):
    """The configured network would not fit in this machine's memory."""

