"""Slot sequences for a run: which slots train, infer, or sleep (the values of ``slot_kind``).

The codes come from the composition file (``network.yaml``: slot_infer, slot_train, slot_sleep).
"""

from __future__ import annotations

import numpy as np

from biograd.models.composition import Composition


def sleep_block(codes: Composition, slots_per_layer: int) -> np.ndarray:
    """One sleep block: ``slots_per_layer`` slots for each W_m that has feedback weights (m >= 2)."""
    return np.repeat([codes.slot_sleep(m) for m in range(2, codes.n_layers + 1)], slots_per_layer).astype(np.int64)


def training_schedule(codes: Composition, n_samples: int, *, sleep_every: int = 0, sleep_slots: int = 0,
                      start_index: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Slot kinds for ``n_samples`` training samples with a sleep block every ``sleep_every`` samples.

    Returns ``(kinds, sample_of_slot)`` where ``sample_of_slot`` is the sample index (offset by
    ``start_index``) a slot shows, or -1 for sleep slots. A block precedes sample s whenever
    ``(start_index + s) % sleep_every == 0``; no sleep when ``sleep_every`` or ``sleep_slots`` is 0.
    """
    kinds, samples = [], []
    block = sleep_block(codes, sleep_slots) if sleep_every and sleep_slots else np.zeros(0, np.int64)
    for s in range(n_samples):
        if len(block) and (start_index + s) % sleep_every == 0:
            kinds.extend(block)
            samples.extend([-1] * len(block))
        kinds.append(codes.slot_train)
        samples.append(start_index + s)
    return np.asarray(kinds, np.int64), np.asarray(samples, np.int64)
