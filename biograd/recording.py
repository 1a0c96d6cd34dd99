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

Everything is computed from what a chunk records anyway (one row per slot), so recording that is
off costs nothing, and activity costs a few array reductions per chunk. Probes rerun the training
build once per sample; they never change the run's weights or random numbers, so a run with
probes trains exactly like one without.
"""

from __future__ import annotations

import io
import shutil
import tempfile
from pathlib import Path

import numpy as np

from biograd.analysis.activity import activity_rows, neuron_rates, operation_counts
from biograd.analysis.alignment import alignment_rows
from biograd.config import RecordConfig, TrainConfig
from biograd.datasets import Split, load_splits
from biograd.elements import equations_dir
from biograd.models.network import BioGradNetwork, use_backend
from biograd.models.training import PROBE, Step, StepRun, probe, sleep_kinds, step_seed
from biograd.rundir import METRIC_SCHEMA, TABLES, RunDirectory, atomic_write, write_parquet

PROBE_SELECTION = 7  # second entry of the seed that picks the probed samples


def probe_indices(n_train: int, n: int, seed: int) -> np.ndarray:
    """The ``n`` training samples every probe point uses (the same ones throughout a run)."""
    return np.random.default_rng([seed, PROBE_SELECTION]).permutation(n_train)[:n]


class Recorder:
    """Makes the recording rows of a run's steps; ``directory`` receives the arrays files."""

    def __init__(self, record: RecordConfig, train: TrainConfig, split: Split, directory: Path):
        self.record, self.train, self.split, self.directory = record, train, split, directory
        self.indices = probe_indices(len(split), record.probe_samples, train.seed)

    def chunk_rows(self, run: StepRun, base: dict, spec) -> list[dict]:
        """Activity and operation-count rows of a warm-up or training chunk (nothing if activity is off)."""
        if not self.record.activity:
            return []
        return [base | row for row in activity_rows(run.result, run.kinds, spec, self.train.sleep_slots(spec))]

    def rate_rows(self, run: StepRun, base: dict) -> list[dict]:
        """Every neuron's mean forward rate over the chunk's training slots."""
        if not self.record.activity:
            return []
        return [{k: base[k] for k in ("epoch", "chunk", "samples")} | {"layer": layer, "neuron": i, "rate_hz": float(r)}
                for layer, rates in enumerate(neuron_rates(run.result, run.kinds)) for i, r in enumerate(rates)]

    def probes_after(self, step: Step, steps_in_epoch: int) -> bool:
        """Whether ``step`` is followed by a probe point: evaluations, and every ``probe_every`` chunks."""
        if not self.record.probe_samples:
            return False
        if step.kind == "evaluate":
            return True
        every = self.record.probe_every
        return step.kind == "train" and every > 0 and (step.index + 1) % every == 0 and step.index + 1 < steps_in_epoch

    def probe_rows(self, net: BioGradNetwork, base: dict, name: str) -> tuple[list[dict], list[dict]]:
        """(metrics rows, alignment rows) of a probe point at the network's current weights."""
        spec, state = net.spec, net.state
        seed = step_seed(self.train.seed, PROBE, base["samples"])
        samples, result = probe(net, self.split, self.indices, state, seed)
        kinds = np.ones(len(samples), np.int64)
        metrics = [base | row | {"split": "probe"} for row in activity_rows(result, kinds, spec)]
        block = sleep_kinds(spec, self.train)
        if len(block) and net.n_slots >= len(block):  # one sleep block's operations (state restored)
            sleep = net.run_chunk(block, np.zeros((0, spec.sizes[0])), np.zeros((len(block), spec.sizes[-1])),
                                  state, eta=0.0, seed=seed)
            net.state = state
            counts = operation_counts(sleep, block, spec, self.train.sleep_slots(spec))["sleep"]
            metrics += [base | {"split": "probe_sleep", "metric": k, "layer": None, "value": v}
                        for k, v in counts.items()]
        keys = {k: base[k] for k in ("epoch", "chunk", "samples")}
        alignment = [keys | row for row in alignment_rows(samples, state.W, state.B)]
        if self.record.arrays:
            self._write_arrays(name, state, samples)
        return metrics, alignment

    def _write_arrays(self, name: str, state, samples) -> None:
        folder = self.directory / "recording"
        folder.mkdir(exist_ok=True)
        arrays = {f"{k}": v for k, v in state.named().items()} | {"sample": np.array([s.index for s in samples])}
        for layer in range(len(state.W)):
            arrays[f"dW{layer + 1}"] = np.stack([s.dW[layer] for s in samples]).astype(np.float32)
        for layer in range(len(state.W) + 1):
            arrays[f"rate{layer}"] = np.stack([s.rates[layer] for s in samples])
            if layer:
                arrays[f"gate{layer}"] = np.stack([s.gates[layer] for s in samples])
        buffer = io.BytesIO()
        np.savez_compressed(buffer, **arrays)
        atomic_write(folder / f"{name}.npz", buffer.getvalue())


MEASUREMENT_ELEMENTS = {"activity"}  # elements that only count; a run made before they existed can use today's


def _equations_for(run: RunDirectory) -> Path:
    """The run's copy of the equation files, completed with measurement-only elements it predates."""
    missing = sorted(n for n in MEASUREMENT_ELEMENTS if not (run.equations / f"{n}.eqs").is_file())
    if not missing:
        return run.equations
    folder = Path(tempfile.mkdtemp(prefix="biograd_equations_"))
    shutil.copytree(run.equations, folder, dirs_exist_ok=True)
    for name in missing:
        for suffix in (".eqs", ".yaml"):
            shutil.copy2(equations_dir() / f"{name}{suffix}", folder)
    return folder


def probe_run(run: RunDirectory, n_samples: int, backend: str | None = None) -> Path:
    """Probe a finished (or any) run afterwards at its saved epoch weights (``weights_epoch<k>.npz``).

    Writes ``posthoc/alignment.parquet`` and ``posthoc/metrics.parquet`` (split ``probe`` and
    ``probe_sleep``) into the run directory, as a run with ``record.probe_samples = n_samples``
    would have recorded them during training; returns the folder. An existing posthoc folder is
    never overwritten. A run made before the spike counter existed gets today's ``activity``
    element (it only counts spikes) next to its own equation files.
    """
    cfg = run.config
    spec, train = cfg.model, cfg.train
    out = run.path / "posthoc"
    if out.exists():
        raise FileExistsError(f"{out} exists; move it away to probe again")
    epochs = sorted(run.path.glob("weights_epoch*.npz"), key=lambda p: int(p.stem.removeprefix("weights_epoch")))
    if not epochs:
        raise FileNotFoundError(f"{run.path}: no weights_epoch<k>.npz to probe")
    train_split, _ = load_splits(cfg.data, spec, seed=train.seed)
    backend = backend or train.backend
    use_backend(backend, run.path / "build_probe")
    net = BioGradNetwork(spec, n_slots=max(1, len(sleep_kinds(spec, train))), seed=train.seed,
                         equations=_equations_for(run))
    net.compile()
    record = cfg.record.model_copy(update={"probe_samples": n_samples, "arrays": False})
    recorder = Recorder(record, train, train_split, out)
    test = run.metrics().query("split == 'test' and metric == 'accuracy'").set_index("epoch").samples
    metrics, alignment = [], []
    for path in epochs:
        epoch = int(path.stem.removeprefix("weights_epoch"))
        net.state = run.load_checkpoint(path)[0]
        base = {"epoch": epoch, "chunk": None, "samples": int(test.get(epoch, 0)), "split": "probe", "layer": None}
        m, a = recorder.probe_rows(net, base, f"epoch{epoch}")
        metrics += m
        alignment += a
    out.mkdir()
    write_parquet(out / "metrics.parquet", metrics, METRIC_SCHEMA)
    write_parquet(out / "alignment.parquet", alignment, TABLES["alignment"])
    return out
