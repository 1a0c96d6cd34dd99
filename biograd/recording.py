"""What a run records besides accuracy and angle(B, W^T): the ``record`` section of its config.

    activity  after every training chunk: per-layer rates, spikes, error events and operation
              counts (metrics rows, :mod:`biograd.analysis.activity`); after the last chunk of an
              epoch also every neuron's mean rate (table ``neuron_rates``)
    probes    after the warm-up, after every epoch and every ``probe_every`` training chunks: the
              weight change BioGrad makes for ``probe_samples`` fixed training samples, each from
              the current weights, against backprop and feedback alignment (table ``alignment``);
              the probes' activity and operation counts go to metrics with split ``probe`` (and,
              in sleep mode, one sleep block's counts with split ``probe_sleep``)
    arrays    at every probe point W, B and the samples' dW, rates and gates in recording/*.npz
    spikes    at every probe point the spike times of a few samples, neurons and phases, as ``spikes.nwb``
              (:mod:`biograd.spikes`; the file holds the last probe point's)

Activity is computed from per-slot counts every training build records (the spike counter of
``equations/activity.eqs`` and ``n_error``), with a few array reductions per chunk. Probes run in
a small training build of their own (:class:`Prober`; on cpp_standalone in a worker process),
one run per sample; they never change the run's weights or random numbers, so a run with probes
trains exactly like one without.
"""

from __future__ import annotations

import dataclasses
import io
import re
import shutil
import tempfile
from pathlib import Path

import numpy as np

from biograd.analysis.activity import activity_rows, neuron_rates
from biograd.analysis.alignment import ProbeSample, probe_alignment_rows
from biograd.chunks import ChunkRun, probe
from biograd.config import RecordConfig, RunConfig, TrainConfig, dump_config, override_config
from biograd.data.splits import load_splits
from biograd.models.backend import Backend
from biograd.models.network import BioGradNetwork, PlasticState
from biograd.plan import PROBE, Task, sleep_kinds, sleep_slots, task_seed
from biograd.rundir import METRIC_SCHEMA, TABLES, RunDirectory, atomic_write, write_parquet
from biograd.spikes import monitored, record_spikes, write_spikes

PROBE_SELECTION = 7  # second entry of the seed that picks the probed samples


def _position(base: dict) -> dict:
    """Where in the run a row belongs: epoch, chunk and samples of a metrics row ``base``."""
    return {k: base[k] for k in ("epoch", "chunk", "samples")}


def probe_indices(n_train: int, n: int, seed: int) -> np.ndarray:
    """The ``n`` training samples every probe point uses (the same ones throughout a run)."""
    if n > n_train:
        raise ValueError(f"cannot probe {n} samples of a training split of {n_train}")
    return np.random.default_rng([seed, PROBE_SELECTION]).permutation(n_train)[:n]


class Recorder:
    """Makes the activity rows of a run's chunks and says when a probe point comes."""

    def __init__(self, record: RecordConfig, train: TrainConfig):
        self.record, self.train = record, train

    def chunk_rows(self, run: ChunkRun, base: dict, spec) -> list[dict]:
        """Activity and operation-count rows of a warm-up or training chunk (nothing if activity is off)."""
        if not self.record.activity:
            return []
        return [base | row for row in activity_rows(run.result, run.kinds, spec, sleep_slots(spec, self.train))]

    def rate_rows(self, run: ChunkRun, base: dict, spec) -> list[dict]:
        """Every neuron's mean forward rate over the chunk's training slots."""
        if not self.record.activity:
            return []
        return [_position(base) | {"layer": layer, "neuron": i, "rate_hz": float(r)}
                for layer, rates in enumerate(neuron_rates(run.result, run.kinds, spec)) for i, r in enumerate(rates)]

    def probes_after(self, step: Task, chunks_per_epoch: int) -> bool:
        """Whether ``step`` is followed by a probe point: evaluations, and every ``probe_every`` chunks."""
        if not self.record.probe_samples:
            return False
        if step.kind == "evaluate":
            return True
        every = self.record.probe_every
        done = step.index + 1
        return step.kind == "train" and every > 0 and done % every == 0 and done < chunks_per_epoch


class Prober:
    """A training build of its own, one sleep block long (at least one slot), that measures probes.

    Small, so that a probe sample costs one short run of the binary rather than a run of the whole
    training build. ``record`` defaults to the run config's; ``directory`` receives arrays files and
    ``spikes.nwb``; ``backend`` builds it (default: Brian2's active device). With ``record.spikes`` the build
    has EventMonitors (:func:`biograd.spikes.monitored`); without, none.
    """

    def __init__(self, config: RunConfig, equations: Path, directory: Path, record: RecordConfig | None = None,
                 backend: Backend | None = None):
        self.config, self.train, self.record, self.directory = config, config.train, record or config.record, directory
        spec = config.model.using(equations)
        self.split = split = load_splits(config.data, spec).train
        self.indices = probe_indices(len(split), self.record.probe_samples, self.train.seed)
        spikes = self.record.spikes
        if spikes is not None and (backend or Backend.active()).name == "genn":
            raise ValueError("record.spikes: the genn backend cannot record spike times (an EventMonitor has no GeNN "
                             "translation); record them with backend cpp_standalone or numpy")
        self.spike_indices = probe_indices(len(split), spikes.samples, self.train.seed) if spikes else None
        self.net = BioGradNetwork(spec, slots=max(1, len(sleep_kinds(spec, self.train))), seed=self.train.seed,
                                  backend=backend, spikes=monitored(spec, spikes) if spikes else None)
        self.net.compile()

    def rows(self, state: PlasticState, base: dict, name: str) -> tuple[list[dict], list[dict]]:
        """(metrics rows, alignment rows) of a probe point at weights ``state``; ``base`` gives
        epoch, chunk and samples; ``name`` names the arrays file (and the probe point in spikes.nwb)."""
        net, spec = self.net, self.net.spec
        seed = task_seed(self.train.seed, PROBE, base["samples"])
        samples, result = probe(net, self.split, self.indices, state, seed)
        kinds = np.full(len(samples), spec.composition.slot_train)
        metrics = [base | row | {"split": "probe"} for row in activity_rows(result, kinds, spec)]
        block = sleep_kinds(spec, self.train)
        if len(block):  # the operations of one sleep block (the state is kept)
            sleep = net.run_chunk(block, np.zeros((0, spec.sizes[0])), np.zeros((len(block), spec.sizes[-1])),
                                  state, seed=seed)
            net.state = state
            metrics += [base | row | {"split": "probe_sleep"}
                        for row in activity_rows(sleep, block, spec, sleep_slots(spec, self.train))]
        feedback = net.feedback_weights(state)  # B, or s W^T in transpose mode
        alignment = [_position(base) | row for row in probe_alignment_rows(samples, state.W, feedback)]
        if self.record.arrays:
            write_probe_arrays(self.directory / "recording" / f"{name}.npz", state, samples)
        if self.record.spikes:
            recording = record_spikes(net, self.split, self.spike_indices, state, seed, self.record.spikes, block)
            write_spikes(self.directory, recording, self.config, name)
        return metrics, alignment


def write_probe_arrays(path: Path, state: PlasticState, samples: list[ProbeSample]) -> None:
    """W, B, biases and the probed samples' dW (float32), rates and gates in one compressed .npz."""
    path.parent.mkdir(exist_ok=True)
    arrays = state.named() | {"sample": np.array([s.index for s in samples])}
    for layer in range(len(state.W)):
        arrays[f"dW{layer + 1}"] = np.stack([s.dW[layer] for s in samples]).astype(np.float32)
    for layer in range(len(state.W) + 1):
        arrays[f"rate{layer}"] = np.stack([s.rates[layer] for s in samples])
        if layer:
            arrays[f"gate{layer}"] = np.stack([s.gates[layer] for s in samples])
    buffer = io.BytesIO()
    np.savez_compressed(buffer, **arrays)
    atomic_write(path, buffer.getvalue())



def probe_run(run: RunDirectory, n_samples: int, backend: str | None = None, overrides: list[str] = (),
              epochs: list[int] | None = None) -> Path:
    """Probe a finished (or any) run afterwards at its saved epoch weights (``weights_epoch<k>.npz``).

    Writes ``posthoc/alignment.parquet`` and ``posthoc/metrics.parquet`` (split ``probe`` and
    ``probe_sleep``) into the run directory, as a run with ``record.probe_samples = n_samples``
    would have recorded them during training; returns the folder. ``overrides`` (``key.sub=value``,
    as ``biograd train --set``) probe the same weights with another network setting, e.g. an error
    gain; they go to ``posthoc_<overrides>/`` with the probe's resolved ``config.yaml`` and are not
    mixed into the run's own tables. ``epochs`` restricts the probe to those epochs' weights. The
    folder appears complete or not at all, and an existing one is never overwritten.
    """
    out = run.path / "_".join(["posthoc", *(re.sub(r"[^A-Za-z0-9_.=-]", "-", o) for o in overrides)])
    if out.exists():
        raise FileExistsError(f"{out} exists; move it away to probe again")
    if n_samples < 1:
        raise ValueError(f"--samples must be at least 1, got {n_samples}")
    trained = run.config  # read from the run's config.yaml
    config = override_config(trained, list(overrides), run.path / "config.yaml") if overrides else trained
    if config.model.sizes != trained.model.sizes:
        raise ValueError(f"--set cannot change model.sizes: the weights of {run.path} are {trained.model.sizes}")
    saved = {int(p.stem.removeprefix("weights_epoch")): p for p in run.path.glob("weights_epoch*.npz")}
    if missing := sorted(set(epochs or ()) - set(saved)):
        raise FileNotFoundError(f"{run.path}: no weights_epoch<k>.npz for epoch(s) {missing}")
    chosen = sorted(epochs or saved)
    if not chosen:
        raise FileNotFoundError(f"{run.path}: no weights_epoch<k>.npz to probe")
    for epoch in chosen:  # each file refused (CheckpointError: NaN, shapes) before anything is built
        run.load_checkpoint(saved[epoch])
    held_out = run.metrics().query("split in ('validation', 'test') and metric == 'accuracy'")
    samples_at = held_out.groupby("epoch").samples.max()  # training samples seen when each epoch was evaluated
    metrics, alignment = [], []
    with run.build_folder(out.name.replace("posthoc", "build_probe", 1)) as folder:  # private beside a trainer
        chosen_backend = config.train.backend_in(folder)
        if backend:
            chosen_backend = dataclasses.replace(chosen_backend, name=backend)
        chosen_backend.activate()
        prober = Prober(config, run.build_equations(), out,
                        config.record.model_copy(update={"probe_samples": n_samples, "arrays": False, "spikes": None}),
                        chosen_backend)
        for epoch in chosen:
            base = {"epoch": epoch, "chunk": None, "samples": int(samples_at.get(epoch, 0)), "split": "probe",
                    "layer": None}
            m, a = prober.rows(run.load_checkpoint(saved[epoch])[0], base, f"epoch{epoch}")
            metrics += m
            alignment += a
    staging = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=run.path))
    try:
        write_parquet(staging / "metrics.parquet", metrics, METRIC_SCHEMA)
        write_parquet(staging / "alignment.parquet", alignment, TABLES["alignment"])
        if overrides:
            atomic_write(staging / "config.yaml", dump_config(config).encode())
        staging.rename(out)
    except BaseException:  # a full disk, a stop: no half folder left
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return out
