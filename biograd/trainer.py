"""Training runs: a config in, a run directory out, resumable after a kill at any point.

The trainer walks the step plan of :mod:`biograd.models.training` and, after every step, writes
an atomic checkpoint (weights + progress + metrics), so ``train(resume=True)`` continues from the
last finished step and ends bit-identical to an uninterrupted run. Weights that become NaN or
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
from pathlib import Path

import numpy as np
from tqdm import tqdm

from biograd.analysis.backprop import angle_deg
from biograd.analysis.figures import learning_curve
from biograd.config import RunConfig
from biograd.datasets import Split, load_splits
from biograd.models.network import STANDALONE, BioGradNetwork, PlasticState, use_backend
from biograd.models.spec import NetworkSpec
from biograd.models.training import Step, build, plan_steps, predict, run_step
from biograd.recording import Prober, Recorder
from biograd.rundir import Progress, RunDirectory


class TrainingDiverged(RuntimeError):
    """Weights became NaN/inf or exceeded ``max_weight``; the run directory keeps the last good checkpoint."""


class Terminated(BaseException):
    """SIGTERM (``kill``, ``timeout``, a batch scheduler) stops a run at the next step boundary, after
    that step's checkpoint: status ``failed`` with the signal's name, workers closed, ``--resume`` ready."""


@contextmanager
def stop_requests() -> Iterator[list[str]]:
    """Within the block, a SIGTERM appends its name to the yielded list instead of killing the
    process (the caller stops at a safe point); a second SIGTERM kills as usual. Raising from the
    handler instead could land inside a finaliser, where Python ignores the exception."""
    requested: list[str] = []
    if threading.current_thread() is not threading.main_thread():
        yield requested
        return

    def request(signum, frame):
        requested.append(signal.Signals(signum).name)
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        print(f"{signal.Signals(signum).name}: stopping after this step (send it again to stop at once)",
              file=sys.stderr, flush=True)

    previous = signal.signal(signal.SIGTERM, request)
    try:
        yield requested
    finally:
        signal.signal(signal.SIGTERM, previous)


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
    """Predicts a split with an inference-only build of ``spec``, ``chunk`` samples per run."""

    def __init__(self, spec: NetworkSpec, split: Split, chunk: int, seed: int, equations: Path | None):
        self.split = split
        self.net = BioGradNetwork(spec, n_slots=min(chunk, len(split)), seed=seed, equations=equations,
                                  inference=True)
        self.net.compile()

    def predict(self, state: PlasticState) -> np.ndarray:
        return predict(self.net, self.split, state)


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
class Trainer:
    """Trains the run in ``run`` from its config; ``progress`` shows a bar over all samples."""

    def __init__(self, run: RunDirectory, progress: bool = True):
        self.run, self.progress = run, progress
        self.config: RunConfig = run.config
        self.stop_requested: list[str] = []  # signals that asked the run to stop (see stop_requests)

    def train(self) -> Progress:
        """Run (or continue) every step of the plan; returns the final progress with all metrics rows."""
        try:
            with stop_requests() as self.stop_requested:
                return self._train()
        except TrainingDiverged:
            raise
        except BaseException as err:  # the run directory says why it stopped (Ctrl-C included)
            self.run.set_status("failed", f"{type(err).__name__}: {err}")
            raise

    def _train(self) -> Progress:
        cfg, run = self.config, self.run
        spec, train_cfg = cfg.model, cfg.train
        t_start = time.perf_counter()
        for stale in run.path.glob(".checkpoint.npz.*"):  # a kill during a checkpoint write
            stale.unlink()
        train_split, test_split = load_splits(cfg.data, spec, seed=train_cfg.seed)
        steps = plan_steps(spec, train_cfg, len(train_split))
        self.chunks_per_epoch = math.ceil(len(train_split) / train_cfg.chunk)
        self.recorder = Recorder(cfg.record, train_cfg)
        equations = run.build_equations()
        use_backend(train_cfg.backend, run.build_dir)
        net = build(spec, train_cfg, equations=equations, report=train_cfg.report)
        progress = Progress()
        if run.checkpoint_path.is_file():
            net.state, progress = run.load_checkpoint()
            run.save_checkpoint(net.state, progress)  # tables too, in case a crash came between the two
        backend = train_cfg.backend
        workers = [hosted(backend, run.path / "build_eval", Evaluator, spec, test_split, train_cfg.eval_chunk,
                          train_cfg.seed, equations)]
        if cfg.record.probe_samples:
            workers.append(hosted(backend, run.path / "build_probe", Prober, cfg, equations, run.path))
        evaluator, prober = workers[0], workers[-1]
        timings = {"command": shlex.join(sys.argv), "started": time.strftime("%FT%T"),
                   "resumed_at_step": progress.step, "build_s": 0.0,
                   "train_s": 0.0, "evaluate_s": 0.0, "warmup_s": 0.0, "probe_s": 0.0, "samples": 0}
        sessions = run.read_json("timings.json").get("sessions", [])

        def write_timings() -> None:  # after every step, so that a killed session is recorded too
            timings["wall_s"] = time.perf_counter() - t_start
            run.write_json("timings.json", {"sessions": [*sessions, timings]})

        run.set_status("running", f"step {progress.step} of {len(steps)}")
        t0 = time.perf_counter()
        net.compile()
        timings["build_s"] = time.perf_counter() - t0
        done = sum(len(s.samples) for s in steps[: progress.step])
        bar = tqdm(total=sum(len(s.samples) for s in steps), initial=done, unit="sample", disable=not self.progress,
                   desc=cfg.name, dynamic_ncols=True)
        try:
            for step in steps[progress.step :]:
                t0 = time.perf_counter()
                rows = self._do(step, net, evaluator, train_split, test_split, progress, done)
                elapsed = time.perf_counter() - t0
                timings[f"{step.kind}_s"] += elapsed
                if self.recorder.probes_after(step, self.chunks_per_epoch):
                    t0 = time.perf_counter()
                    metrics, alignment = prober.rows(net.state, rows[0], f"step{progress.step:05d}")
                    rows += metrics
                    progress.tables["alignment"] += alignment
                    timings["probe_s"] += time.perf_counter() - t0
                if step.kind == "train":
                    done += len(step.samples)
                    timings["samples"] += len(step.samples)
                    rows.append(rows[0] | {"metric": "samples_per_s", "value": len(step.samples) / elapsed})
                    bar.update(len(step.samples))
                    bar.set_postfix(epoch=step.epoch, acc=f"{progress.epoch_correct / progress.epoch_seen:.3f}")
                check_health(net.state, train_cfg.max_weight)
                progress.rows.extend(rows)
                progress.step += 1
                run.save_checkpoint(net.state, progress)
                write_timings()
                run.set_status("running", f"step {progress.step} of {len(steps)}, epoch {step.epoch}")
                if self.stop_requested:
                    raise Terminated(f"stopped by {self.stop_requested[0]} after step {progress.step} of {len(steps)}")
                if step.kind == "evaluate":
                    run.save_checkpoint(net.state, progress, run.path / f"weights_epoch{step.epoch}.npz")
                    bar.write(f"epoch {step.epoch}: test accuracy {rows[0]['value']:.4f}")
        except TrainingDiverged as err:
            run.set_status("diverged", f"step {progress.step} ({steps[progress.step].kind}, epoch "
                           f"{steps[progress.step].epoch}): {err}; last good checkpoint: {run.checkpoint_path}")
            raise
        finally:
            bar.close()
            for worker in workers:
                if isinstance(worker, Worker):
                    worker.close()
            write_timings()
        learning_curve(run.metrics(), run.learning_curve_path)
        run.set_status("finished", f"{len(steps)} steps")
        return progress

    def _do(self, step: Step, net: BioGradNetwork, evaluator, train_split: Split, test_split: Split,
            progress: Progress, done: int) -> list[dict]:
        """Run one step; returns its metrics rows."""
        if step.kind == "evaluate":
            correct = evaluator.predict(net.state) == test_split.labels
            progress.epoch_correct = progress.epoch_seen = 0
            base = {"epoch": step.epoch, "chunk": None, "samples": done, "split": "test", "layer": None}
            return [base | {"metric": "accuracy", "value": float(np.mean(correct))}, *feedback_rows(net.state, base)]
        run = run_step(net, step, train_split, self.config.train)
        if step.kind == "warmup":
            base = {"epoch": 0, "chunk": step.index, "samples": 0, "split": "sleep", "layer": None}
            return [*feedback_rows(net.state, base), *self.recorder.chunk_rows(run, base, net.spec)]
        progress.epoch_correct += run.correct
        progress.epoch_seen += len(step.samples)
        base = {"epoch": step.epoch, "chunk": step.index, "samples": done + len(step.samples), "split": "train",
                "layer": None}
        if step.index == self.chunks_per_epoch - 1:
            progress.tables["neuron_rates"] += self.recorder.rate_rows(run, base)
        return [base | {"metric": "accuracy", "value": run.correct / len(step.samples)},
                *feedback_rows(net.state, base), *self.recorder.chunk_rows(run, base, net.spec)]


def start_run(config: RunConfig, equations: Path | None = None, root: Path = Path("runs/out")) -> RunDirectory:
    """A new run directory for ``config`` (equation files copied from ``equations``, default the model's)."""
    from biograd.elements import equations_dir

    return RunDirectory.create(config, equations or equations_dir(), root)

