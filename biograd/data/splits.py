"""Training and test splits for a run, and the stimulus rows they give a chunk of slots.

Images (MNIST, embedded digits, sklearn digits) give one row of pixel intensities per slot.
N-MNIST events are binned so that the whole recording (``NMNIST_DURATION_US``) falls into the
``n_f`` forward steps (time compressed, bin width = duration / n_f), one row per time step.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from biograd.config import DataConfig
from biograd.data.embedded import load_embedded_mnist, load_sklearn_digits, train_test_split_digits
from biograd.data.mnist import load_mnist_digits
from biograd.data.nmnist import SENSOR_SIZE, bin_events, load_nmnist
from biograd.models.spec import NetworkSpec

NMNIST_DURATION_US = 315_000  # three saccades of ~105 ms (Orchard et al. 2015)


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


def _first(split: Split, n: int | None) -> Split:
    return split if n is None else Split(split.inputs[:n], split.labels[:n], f"{split.name}[:{n}]")


def _nmnist(cfg: DataConfig, split: str, n_f: int, limit: int | None) -> Split:
    samples = load_nmnist(cfg.data_dir, split=split, limit=limit)
    dt_us = -(-NMNIST_DURATION_US // n_f)  # whole microseconds; the last bin may reach past 315 ms
    counts = np.stack([bin_events(s.events, dt_us=dt_us, n_bins=n_f, sensor=SENSOR_SIZE) for s in samples])
    return Split(counts, np.array([s.label for s in samples], np.int64), f"nmnist-{split}")


def load_splits(cfg: DataConfig, spec: NetworkSpec, seed: int = 0) -> tuple[Split, Split]:
    """The (train, test) splits a config asks for; raises ValueError if the input size does not fit."""
    if cfg.source == "nmnist":
        train = _nmnist(cfg, "train", spec.n_f, cfg.n_train)
        test = _nmnist(cfg, "test", spec.n_f, cfg.n_test)
    else:
        if cfg.source == "mnist":
            pair = (load_mnist_digits(cfg.data_dir, "train"), load_mnist_digits(cfg.data_dir, "test"))
        else:
            digits = load_embedded_mnist() if cfg.source == "embedded" else load_sklearn_digits()
            pair = train_test_split_digits(digits, test_fraction=cfg.test_fraction, seed=seed)
        train, test = (_first(Split(d.images, d.labels, d.name), n) for d, n in zip(pair, (cfg.n_train, cfg.n_test),
                                                                                  strict=True))
    if train.n_inputs != spec.sizes[0]:
        raise ValueError(f"data source {cfg.source!r} has {train.n_inputs} inputs per sample, but the model's "
                         f"input layer has {spec.sizes[0]} neurons (model.sizes[0])")
    if (spec.encoder == "events") != train.events:
        raise ValueError(f"encoder {spec.encoder!r} does not fit data source {cfg.source!r} "
                         "(event data needs encoder: events, images need regular or poisson)")
    return train, test


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
