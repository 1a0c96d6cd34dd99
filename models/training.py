"""Online training and evaluation of a :class:`BioGradNetwork`, chunk by chunk (batch size 1).

A chunk is one sleep block (``sleep`` mode) followed by ``samples_per_chunk`` training samples;
the network is built for that many slots once, and every chunk only changes arrays.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from biograd.models.network import BioGradNetwork, PlasticState
from biograd.models.schedule import INFER, TRAIN, sleep_block
from biograd.models.spec import NetworkSpec


@dataclass(frozen=True)
class TrainingPlan:
    """How samples, sleep and learning rates are scheduled (values from docs/biograd-model.md)."""

    samples_per_chunk: int = 100
    sleep_slots: int = 13  # slots of sleep per feedback layer per block (13 x 40 steps ~ 500 steps)
    warmup_blocks: int = 0  # sleep blocks before the first sample (sleep mode)
    eta: float = 0.03
    eta_decay: float = 0.7  # eta is multiplied by this after every epoch

    def slots_per_chunk(self, spec: NetworkSpec) -> int:
        return self.samples_per_chunk + len(self.sleep(spec))

    def sleep(self, spec: NetworkSpec) -> np.ndarray:
        """Slot kinds of one sleep block (empty unless the feedback mode is ``sleep``)."""
        if spec.feedback != "sleep" or spec.n_layers < 2:
            return np.zeros(0, np.int64)
        return sleep_block(spec.n_layers, self.sleep_slots)


def targets_for(labels: np.ndarray, n_out: int, y_high: float) -> np.ndarray:
    """Teacher rates: y_high for the label's output neuron, 0 for the others."""
    targets = np.zeros((len(labels), n_out))
    targets[np.arange(len(labels)), labels] = y_high
    return targets


def build(spec: NetworkSpec, plan: TrainingPlan, seed: int = 0) -> BioGradNetwork:
    return BioGradNetwork(spec, n_slots=plan.slots_per_chunk(spec), seed=seed)


def warm_up(net: BioGradNetwork, plan: TrainingPlan) -> PlasticState:
    """Sleep blocks before training, so that B starts aligned (sleep mode only)."""
    block = plan.sleep(net.spec)
    per_chunk = max(1, net.n_slots // max(1, len(block)))
    for start in range(0, plan.warmup_blocks, per_chunk):
        kinds = np.tile(block, min(per_chunk, plan.warmup_blocks - start))
        net.run_chunk(kinds, np.zeros((len(kinds), net.spec.sizes[0])), np.zeros((len(kinds), net.spec.sizes[-1])),
                      eta=0.0, seed=net.seed + 7919 * (start + 1))
    return net.state


def train_epoch(net: BioGradNetwork, images: np.ndarray, labels: np.ndarray, plan: TrainingPlan, *,
                epoch: int = 0, rng: np.random.Generator | None = None, progress=None) -> float:
    """One pass over the data in random order; returns the running training accuracy."""
    spec = net.spec
    order = (rng or np.random.default_rng(epoch)).permutation(len(images))
    eta = plan.eta * plan.eta_decay**epoch
    block = plan.sleep(spec)
    correct = 0
    for chunk, start in enumerate(range(0, len(order), plan.samples_per_chunk)):
        idx = order[start : start + plan.samples_per_chunk]
        kinds = np.concatenate([block, np.full(len(idx), TRAIN)])
        stim = np.zeros((len(kinds), spec.sizes[0]))
        stim[len(block):] = images[idx]
        tgt = np.zeros((len(kinds), spec.sizes[-1]))
        tgt[len(block):] = targets_for(labels[idx], spec.sizes[-1], spec.y_high)
        result = net.run_chunk(kinds, stim, tgt, eta=eta, seed=net.seed + 1_000_003 * epoch + chunk)
        correct += int(np.sum(result.predictions()[len(block):] == labels[idx]))
        if progress is not None:
            progress(len(idx))
    return correct / len(images)


def predict(net: BioGradNetwork, images: np.ndarray) -> np.ndarray:
    """Class predictions with learning off (inference slots), state unchanged."""
    state, out = net.state, []
    for start in range(0, len(images), net.n_slots):
        batch = images[start : start + net.n_slots]
        result = net.run_chunk(np.full(len(batch), INFER), batch, np.zeros((len(batch), net.spec.sizes[-1])), state)
        out.append(result.predictions())
    net.state = state
    return np.concatenate(out)


def accuracy(net: BioGradNetwork, images: np.ndarray, labels: np.ndarray) -> float:
    return float(np.mean(predict(net, images) == labels))
