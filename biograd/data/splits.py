"""Training, validation and test splits for a run, and the stimulus rows they give a chunk of slots.

The validation split is the last ``data.validation`` samples of the data set's training part (MNIST:
images 50,000-59,999 of the 60,000, as in the common 50k/10k split of the training file); the
training split is the rest, or its first ``data.n_train``. Sets without a test part (embedded and
sklearn digits) are split first into training and test parts, stratified by class with the fixed
``SPLIT_SEED`` (never the run's seed: every seed of a setting sees the same test set). Settings are
chosen on validation; the test split is evaluated once, at the end of a run.

Images (MNIST, embedded digits, sklearn digits) give one row of pixel intensities per slot.
N-MNIST events are binned so that the whole recording (``NMNIST_DURATION_US``) falls into the
``n_f`` forward steps (time compressed, bin width = duration / n_f), one row per time step.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np

from biograd.config import DataConfig
from biograd.data.embedded import SKLEARN_SHAPE, load_embedded_mnist, load_sklearn_digits, train_test_split_digits
from biograd.data.mnist import IMAGE_SHAPE, load_mnist_digits
from biograd.data.nmnist import SENSOR_SIZE, bin_events, load_nmnist
from biograd.models.spec import NetworkSpec

NMNIST_DURATION_US = 315_000  # three saccades of ~105 ms (Orchard et al. 2015)
SPLIT_SEED = 0  # the stratified test split of sets without one (independent of the run's seed)
DIGITS = 10  # classes of every data source: the digits 0-9


class DataShape(NamedTuple):
    """What a network must fit: inputs per sample (event data: per time step), classes (labels 0 ..
    classes - 1), and whether the samples are events."""

    inputs: int
    classes: int
    events: bool


def source_shape(source: str) -> DataShape:
    """The shape of ``source``'s samples, known without loading them (:func:`load_splits` checks the loaded ones):
    MNIST and embedded 28 x 28 pixels, sklearn 8 x 8, N-MNIST 34 x 34 pixels x 2 polarities, 10 classes each."""
    if source == "nmnist":
        return DataShape(int(np.prod(SENSOR_SIZE)), DIGITS, True)
    return DataShape(int(np.prod(SKLEARN_SHAPE if source == "sklearn" else IMAGE_SHAPE)), DIGITS, False)


def check_fits(source: str, shape: DataShape, spec: NetworkSpec) -> None:
    """Raise ValueError naming the key if ``spec`` does not fit data ``source`` of ``shape``: one input neuron per
    input, at least one output neuron per class, encoder ``events`` exactly for event data."""
    n_in, n_out = spec.sizes[0], spec.sizes[-1]
    if n_in != shape.inputs:
        raise ValueError(f"model.sizes: data source {source!r} has {shape.inputs} inputs per sample, but the model's "
                         f"input layer has {n_in} neurons (model.sizes[0] must be {shape.inputs})")
    if n_out < shape.classes:
        raise ValueError(f"model.sizes: data source {source!r} has {shape.classes} classes, but the model's output "
                         f"layer has {n_out} neurons (model.sizes[-1] must be at least {shape.classes})")
    if (spec.encoder == "events") != shape.events:
        raise ValueError(f"model.encoder: encoder {spec.encoder!r} does not fit data source {source!r} "
                         "(event data needs encoder: events, images need regular or poisson)")


@dataclass(frozen=True)
class Split:
    """Inputs of one split: images (n, n_in) in [0, 1], or event counts (n, n_f, n_in)."""

    inputs: np.ndarray
    labels: np.ndarray
    name: str

    @property
    def events(self) -> bool:
        return self.inputs.ndim == 3

    @property
    def n_inputs(self) -> int:
        return self.inputs.shape[-1]

    def __len__(self) -> int:
        return len(self.labels)

    def part(self, start: int | None, stop: int | None) -> Split:
        """Samples ``start:stop``, named after them."""
        return Split(self.inputs[start:stop], self.labels[start:stop],
                     f"{self.name}[{'' if start is None else start}:{'' if stop is None else stop}]")

    def record(self) -> dict:
        """What identifies the split in a run directory: its name, size and a hash of inputs and labels."""
        digest = hashlib.sha256(np.ascontiguousarray(self.inputs).tobytes())
        digest.update(np.ascontiguousarray(self.labels, np.int64).tobytes())
        return {"name": self.name, "samples": len(self), "sha256": digest.hexdigest()}


@dataclass(frozen=True)
class Splits:
    """The splits of a run; ``validation`` is None when ``data.validation`` is 0."""

    train: Split
    validation: Split | None
    test: Split

    @property
    def per_epoch(self) -> Split:
        """The split evaluated after every epoch: validation if there is one, else test."""
        return self.validation if self.validation is not None else self.test

    def named(self) -> dict[str, Split]:
        return {name: split for name, split in (("train", self.train), ("validation", self.validation),
                                                ("test", self.test)) if split is not None}

    def record(self) -> dict:
        return {name: split.record() for name, split in self.named().items()}


def _first(split: Split, n: int | None) -> Split:
    return split if n is None or n >= len(split) else split.part(None, n)


def _hold_out(split: Split, n: int) -> tuple[Split, Split | None]:
    """(the first len - n samples, the last n samples) of ``split``; (split, None) for n = 0."""
    if n == 0:
        return split, None
    if n >= len(split):
        raise ValueError(f"data.validation = {n} leaves no training samples ({split.name} has {len(split)})")
    k = len(split) - n
    return split.part(None, k), split.part(k, None)


def _nmnist(cfg: DataConfig, split: str, n_f: int, limit: int | None) -> Split:
    samples = load_nmnist(cfg.data_dir, split=split, limit=limit)
    dt_us = -(-NMNIST_DURATION_US // n_f)  # whole microseconds; the last bin may reach past 315 ms
    counts = np.stack([bin_events(s.events, dt_us=dt_us, n_bins=n_f, sensor=SENSOR_SIZE) for s in samples])
    return Split(counts, np.array([s.label for s in samples], np.int64), f"nmnist-{split}")


def _parts(cfg: DataConfig, spec: NetworkSpec) -> tuple[Split, Split]:
    """The data set's whole training part and its test part (``data.n_test`` applied)."""
    if cfg.source == "nmnist":
        limit = None if cfg.validation or cfg.n_train is None else cfg.n_train
        return _nmnist(cfg, "train", spec.n_f, limit), _nmnist(cfg, "test", spec.n_f, cfg.n_test)
    if cfg.source == "mnist":
        pair = (load_mnist_digits(cfg.data_dir, "train"), load_mnist_digits(cfg.data_dir, "test"))
    else:
        digits = load_embedded_mnist() if cfg.source == "embedded" else load_sklearn_digits()
        pair = train_test_split_digits(digits, test_fraction=cfg.test_fraction, seed=SPLIT_SEED)
    train, test = (Split(d.images, d.labels, d.name) for d in pair)
    return train, _first(test, cfg.n_test)


def load_splits(cfg: DataConfig, spec: NetworkSpec) -> Splits:
    """The splits a config asks for; raises ValueError if the network does not fit them (:func:`check_fits`)."""
    whole, test = _parts(cfg, spec)
    train, validation = _hold_out(whole, cfg.validation)
    train = _first(train, cfg.n_train)
    classes = int(max(whole.labels.max(initial=-1), test.labels.max(initial=-1))) + 1
    check_fits(cfg.source, DataShape(train.n_inputs, classes, train.events), spec)
    return Splits(train, validation, test)


def chunk_stimulus(split: Split, shown: np.ndarray, n_slot: int) -> np.ndarray:
    """Stimulus rows for slots showing the samples ``shown`` (-1: no input, e.g. a sleep slot):
    one row per slot for images, one row per time step (``n_slot`` per slot) for events."""
    slots = shown >= 0
    if not split.events:
        rows = np.zeros((len(shown), split.n_inputs))
        rows[slots] = split.inputs[shown[slots]]
        return rows
    rows = np.zeros((len(shown), n_slot, split.n_inputs))
    rows[slots, : split.inputs.shape[1]] = split.inputs[shown[slots]]
    return rows.reshape(-1, split.n_inputs)
