"""Training runs: a config in, a run directory out, resumable after a kill at any point.

The trainer walks the task plan of :mod:`biograd.plan` and, after every task, writes
an atomic checkpoint (weights + progress + metrics), so ``train(resume=True)`` continues from the
last finished task and ends bit-identical to an uninterrupted run. Weights that become NaN or
exceed ``train.max_weight`` stop the run (status ``diverged``) before they are checkpointed.

Evaluation uses an inference-only build (slots of ``n_f`` steps, no error phases, no feedback,
:class:`~biograd.chunks.Evaluator`), probes (``record.probe_samples``) a small training build of their
own (:class:`~biograd.recording.Prober`); on a compiled backend each lives in a worker process
(:mod:`biograd.workers`). Runs start with :mod:`biograd.launch`; signals stop them (:mod:`biograd.signals`).
"""

from __future__ import annotations

import math
import shlex
import sys
import time
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from tqdm import tqdm

from biograd.analysis.backprop import angle_deg
from biograd.analysis.figures import learning_curve
from biograd.chunks import ChunkRun, Evaluator, run_tasks
from biograd.config import RunConfig
from biograd.data.splits import Splits, load_splits
from biograd.models.network import BioGradNetwork, PlasticState
from biograd.models.spec import NetworkSpec
from biograd.packing import check_no_probes, varied_parameters
from biograd.plan import Task, build, plan_tasks
from biograd.recording import Prober, Recorder
from biograd.rundir import DiskFullError, LockLostError, Progress, RunDirectory, atomic_path
from biograd.signals import Terminated, stop_requests
from biograd.workers import Worker, hosted


class TrainingDiverged(RuntimeError):
    """Weights became NaN/inf or exceeded ``max_weight``; the run directory keeps the last good checkpoint."""


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

    def close(self, at_once: bool = False) -> None:
        """End the worker processes (builds in this process need nothing); ``at_once``: also while they work."""
        for worker in (self.evaluator, self.prober):
            if isinstance(worker, Worker):
                worker.close(at_once)


class Trainer:
    """Trains the run in ``runs`` from its config, or several runs in one ensemble build (configs that differ
    only in ``train.seed`` and chunk parameters, :func:`~biograd.packing.varied_parameters`); each run keeps
    its own directory, checkpoints and metrics. ``progress`` shows a bar over all samples. ``builds`` is
    the folder of the compiled projects (default: the first run directory); a sweep gives the trials of one
    worker process the same folder, so that a later trial of the same shape reuses the compiled code
    (Brian2 rewrites only changed source files and make recompiles only those). ``until_epoch``: stop after
    that epoch's evaluation, status ``paused`` (a sweep's rung; training again continues the plan)."""

    def __init__(self, runs: RunDirectory | list[RunDirectory], progress: bool = True, builds: Path | None = None,
                 until_epoch: int | None = None):
        self.runs = [runs] if isinstance(runs, RunDirectory) else list(runs)
        self.run = self.runs[0]
        self.progress, self.builds, self.until_epoch = progress, builds or self.run.path, until_epoch
        self.config: RunConfig = self.run.config
        self.varied = varied_parameters([run.config for run in self.runs]) if len(self.runs) > 1 else set()
        check_no_probes(len(self.runs), self.config.record.probe_samples, f"{len(self.runs)} runs in one build")
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
            except (TrainingDiverged, LockLostError):  # the run says why; or it may be another process's now
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
        session = self._open_session()
        full = stopped = False
        try:
            self._run_tasks(session)
        except BaseException as err:  # a stop or an error: the workers end at once, also while they compile
            full = isinstance(err, DiskFullError)  # timings.json would not fit either: the error names the file
            stopped = True
            raise
        finally:
            session.close(at_once=stopped)
            if not full:
                self._write_timings(session)
        for member in session.members:
            with atomic_path(member.run.learning_curve_path) as tmp:  # the old figure or the new, never half
                learning_curve(member.run.metrics(), tmp)
            if member.progress.task < len(member.tasks):
                member.run.set_status("paused", f"after epoch {self.until_epoch} of {self.config.train.epochs} "
                                      f"(task {member.progress.task} of {len(member.tasks)}); training again continues")
            else:
                member.run.set_status("finished", f"{len(member.tasks)} tasks")
        return [member.progress for member in session.members]

    def _end(self, tasks: list[Task]) -> int:
        """The index after this session's last task: the plan's end, or after the evaluation of ``until_epoch``."""
        return next((index + 1 for index, task in enumerate(tasks) if self.until_epoch is not None
                     and task.kind == "evaluate" and task.epoch == self.until_epoch), len(tasks))

    def _load_member(self, run: RunDirectory, n_train: int, validation: bool) -> tuple[Member, PlasticState | None]:
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

    def _open_session(self) -> Session:
        """Data, plans and builds of this session (compiled), each run continuing from its checkpoint if it has one."""
        config, run = self.config, self.run
        equations = run.build_equations()
        spec, train = config.model.using(equations), config.train
        splits = load_splits(config.data, spec)
        members, states = [], []
        for member_run in self.runs:
            member_run.check_splits(splits.record())
            member, state = self._load_member(member_run, len(splits.train), splits.validation is not None)
            members.append(member)
            states.append(state)
        self.chunks_per_epoch = math.ceil(len(splits.train) / train.chunk)
        self.recorder = Recorder(config.record, train)
        backend = train.backend_in(self.builds / run.build_dir.name)
        backend.activate()
        seeds = [member.run.config.train.seed for member in members]
        net = build(spec, train, seeds=seeds, varied=self.varied, report=train.report, backend=backend)
        net.states = [net.initial_states[k] if state is None else state for k, state in enumerate(states)]
        for member, state in zip(members, states, strict=True):
            if state is not None:
                member.run.save_checkpoint(state, member.progress)  # tables too, in case a crash came between the two
        evaluated = {name: split for name, split in splits.named().items() if name != "train"}
        evaluator = hosted(train.backend_in(self.builds / "build_eval"), Evaluator, spec, evaluated, train.eval_chunk,
                           seeds, equations)
        prober = hosted(train.backend_in(self.builds / "build_probe"), Prober, config, equations, run.path) \
            if config.record.probe_samples else None
        timings = {"command": shlex.join(sys.argv), "started": time.strftime("%FT%T"),
                   "resumed_at_task": min(member.progress.task for member in members), "build_s": 0.0,
                   "train_s": 0.0, "evaluate_s": 0.0, "test_s": 0.0, "warmup_s": 0.0, "probe_s": 0.0, "samples": 0}
        if len(members) > 1:
            timings["ensemble"] = [member.run.path.name for member in members]  # the times are the whole build's
        session = Session(splits, members, net, evaluator, prober, timings)
        for member in members:
            member.run.set_status("running", f"task {member.progress.task} of {len(member.tasks)}")
        t0 = time.perf_counter()
        try:
            net.compile()
        except BaseException:
            session.close(at_once=True)  # the workers: nothing else would end them
            raise
        timings["build_s"] = time.perf_counter() - t0
        return session

    def _write_timings(self, session: Session) -> None:
        """After every task, so that a killed session is recorded too."""
        session.timings["wall_s"] = time.perf_counter() - session.started
        for member in session.members:
            member.run.write_json("timings.json", {"sessions": [*member.earlier_sessions, session.timings]})

    def _run_tasks(self, session: Session) -> None:
        """Every task not yet done: run it, probe after it if due, check, checkpoint, report. A member whose
        checkpoint is ahead (a kill between two members' checkpoints) sits out the tasks it has done."""
        members = session.members
        tasks = members[0].tasks
        first = min(member.progress.task for member in members)
        done = sum(len(task.samples) for task in tasks[:first])
        bar = tqdm(total=sum(len(task.samples) for task in tasks) * len(members), initial=done * len(members),
                   unit="sample", disable=not self.progress, desc=self.config.name, dynamic_ncols=True)
        try:
            for index in range(first, self._end(tasks)):
                task = tasks[index]
                t0 = time.perf_counter()
                rows = self._run_task(session, index, done)
                elapsed = time.perf_counter() - t0
                session.timings[f"{task.kind}_s"] += elapsed
                if self.recorder.probes_after(task, self.chunks_per_epoch):
                    rows[0] += self._probe(session, rows[0][0])
                if task.kind == "train":
                    done += len(task.samples)
                    session.timings["samples"] += len(task.samples)
                    for member_rows in (member_rows for member_rows in rows if member_rows):
                        member_rows.append(member_rows[0] | {"metric": "samples_per_s",
                                                             "value": len(members) * len(task.samples) / elapsed})
                    bar.update(len(task.samples) * len(members))
                    progress = members[0].progress
                    bar.set_postfix(epoch=task.epoch, acc=f"{progress.epoch_correct / progress.epoch_seen:.3f}")
                for member, state in zip(members, session.net.states, strict=True):
                    if member.progress.task == index:
                        self._check_health(session, member, state, task)
                self._checkpoint(session, index, task, rows)
                if task.kind in ("evaluate", "test"):
                    bar.write(f"epoch {task.epoch}: {task.split} accuracy " +
                              ", ".join(f"{member_rows[0]['value']:.4f}" for member_rows in rows if member_rows))
        finally:
            bar.close()

    def _check_health(self, session: Session, member: Member, state: PlasticState, task: Task) -> None:
        """Stop the build when a member's weights diverged (its status says so; the others' say why they stopped)."""
        try:
            check_health(state, self.config.train.max_weight)
        except TrainingDiverged as err:
            member.run.set_status("diverged", f"task {member.progress.task} ({task.kind}, epoch {task.epoch}): "
                                  f"{err}; last good checkpoint: {member.run.checkpoint_path}")
            for other in session.members:
                if other is not member:
                    other.run.set_status("failed", f"stopped: {member.run.path.name}, trained in the same ensemble "
                                         "build, diverged; resume this run on its own or with other runs")
            raise

    def _probe(self, session: Session, base: dict) -> list[dict]:
        """Probe rows at the current weights (a single run; alignment rows go to their own table)."""
        t0 = time.perf_counter()
        progress = session.members[0].progress
        metrics, alignment = session.prober.rows(session.net.state, base, f"task{progress.task:05d}")
        progress.tables["alignment"] += alignment
        session.timings["probe_s"] += time.perf_counter() - t0
        return metrics

    def _checkpoint(self, session: Session, index: int, task: Task, rows: list[list[dict]]) -> None:
        """Record a finished task in every member that ran it: checkpoint, timings, status; stop here if a
        signal asked to."""
        for member, state, member_rows in zip(session.members, session.net.states, rows, strict=True):
            if member.progress.task != index:  # done before this session: its checkpoint is ahead
                continue
            run, progress = member.run, member.progress
            progress.rows.extend(member_rows)
            progress.task += 1
            run.save_checkpoint(state, progress)
            run.set_status("running", f"task {progress.task} of {len(member.tasks)}, epoch {task.epoch}")
            if task.kind == "evaluate":
                run.save_checkpoint(state, progress, run.path / f"weights_epoch{task.epoch}.npz")
        self._write_timings(session)
        if self.stop_requested:
            raise Terminated(f"stopped by {self.stop_requested[0]} after task {index + 1} of "
                             f"{len(session.members[0].tasks)}", self.stop_requested[0])

    def _run_task(self, session: Session, index: int, done: int) -> list[list[dict]]:
        """Run task ``index`` in every member; returns each member's metrics rows. A member that has done it
        already (its checkpoint is ahead) runs along from its current weights, which it keeps, and gets no rows."""
        net, members = session.net, session.members
        tasks = [member.tasks[index] for member in members]
        task = tasks[0]
        behind = [member.progress.task == index for member in members]
        kept = list(net.states)
        if task.kind in ("evaluate", "test"):
            labels = session.splits.named()[task.split].labels
            base = {"epoch": task.epoch, "chunk": None, "samples": done, "split": task.split, "layer": None}
            rows = []
            predictions = session.evaluator.predict_replicas(kept, task.split)
            for member, state, predicted, runs_it in zip(members, kept, predictions, behind, strict=True):
                if runs_it:
                    member.progress.epoch_correct = member.progress.epoch_seen = 0
                accuracy = base | {"metric": "accuracy", "value": float(np.mean(predicted == labels))}
                rows.append([] if not runs_it else
                            [accuracy, *feedback_rows(state, base)] if task.kind == "evaluate" else [accuracy])
            return rows
        runs = run_tasks(net, tasks, session.splits.train, self.config.train,
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

