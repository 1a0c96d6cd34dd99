"""Shared test helpers: tiny network specs and the slot codes of the model's composition file."""

from __future__ import annotations

import numpy as np

from biograd.models.schedule import sleep_block
from biograd.models.spec import NetworkSpec

CODES = NetworkSpec(sizes=(2, 2, 2)).composition  # the slot codes of equations/network.yaml
TRAIN, INFER = CODES.slot_train, CODES.slot_infer


def tiny_spec(sizes=(6, 5, 4), feedback: str = "sleep", *, network: dict | None = None, **params) -> NetworkSpec:
    """A small network; ``network`` overrides network.yaml, ``params`` an element's table by name."""
    overrides = ({"network": network} if network else {}) | params
    return NetworkSpec(sizes=tuple(sizes), feedback=feedback, params=overrides)


def block(spec: NetworkSpec, slots_per_layer: int) -> np.ndarray:
    """One sleep block of ``spec`` (``slots_per_layer`` slots per feedback layer)."""
    return sleep_block(spec.composition, slots_per_layer)


def one_hot(labels: np.ndarray, n_out: int) -> np.ndarray:
    """Teacher input rows: 1 for the label's output neuron (teacher.yaml scales it by y_high)."""
    targets = np.zeros((len(labels), n_out))
    targets[np.arange(len(labels)), labels] = 1.0
    return targets


def y_high(spec: NetworkSpec) -> float:
    return float(spec.composition.elements["teacher"].values["y_high"])
