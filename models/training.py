"""Online training of a :class:`BioGradNetwork` as a fixed sequence of steps (batch size 1).

A run is the same list of steps every time for the same config, data and seed:

    warm-up chunks   sleep blocks only (sleep mode), so that B starts aligned with W^T
    evaluate         test accuracy of the untrained network (epoch 0)
    per epoch e      train chunks of ``chunk`` samples in random order, a sleep block before every
                     ``sleep_every``-th sample of the epoch, learning rate eta * eta_decay^(e-1);
                     then one evaluate step (epoch e)

Every step carries its own seed (from the run seed, epoch and chunk), so a run resumed at step k
repeats exactly what the uninterrupted run did from step k on. One chunk is one network run:
the build has room for ``chunk`` samples and their sleep blocks, and every chunk only changes arrays.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Literal

import numpy as np

from biograd.analysis.alignment import ProbeSample
from biograd.config import TrainConfig
from biograd.datasets import Split, chunk_stimulus
from biograd.models.network import BioGradNetwork, ChunkResult, PlasticState
from biograd.models.schedule import INFER, TRAIN, sleep_block, training_schedule
from biograd.models.spec import NetworkSpec

EVALUATION = 2**32 - 1  # the "epoch" entry of evaluation seeds (used only by Poisson inputs)
PROBE = 2**32 - 2  # the "epoch" entry of probe seeds


@dataclass(frozen=True)
class Step:
    """One step of a run: a warm-up chunk, a training chunk, or an evaluation."""

    kind: Literal["warmup", "train", "evaluate"]
    epoch: int  # epoch in progress (train), epochs completed (evaluate), 0 (warm-up)
    index: int  # chunk within the epoch or the warm-up
    seed: int = 0
    eta: float = 0.0
    blocks: int = 0  # sleep blocks (warm-up)
    samples: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))  # training sample indices
    first: int = 0  # position of samples[0] in the epoch (sleep blocks precede positions k*sleep_every)


def step_seed(seed: int, epoch: int, index: int) -> int:
    """A 32-bit seed of its own for every (run seed, epoch, chunk)."""
    return int(np.random.SeedSequence([seed, epoch, index]).generate_state(1)[0])


def sleep_kinds(spec: NetworkSpec, train: TrainConfig) -> np.ndarray:
    """Slot kinds of one sleep block (empty unless the feedback mode is ``sleep``)."""
    if spec.feedback != "sleep" or spec.n_layers < 2:
        return np.zeros(0, np.int64)
    return sleep_block(spec.n_layers, train.sleep_slots(spec))


def slots_per_chunk(spec: NetworkSpec, train: TrainConfig) -> int:
    """Build size: ``chunk`` samples and the (at most ceil(chunk/sleep_every)) sleep blocks among them."""
    return train.chunk + math.ceil(train.chunk / train.sleep_every) * len(sleep_kinds(spec, train))


def chunk_slots(spec: NetworkSpec, train: TrainConfig, step: Step) -> tuple[np.ndarray, np.ndarray]:
    """Slot kinds of a step and the sample each slot shows (-1: none, in sleep slots)."""
    block = sleep_kinds(spec, train)
    if step.kind == "warmup":
        kinds = np.tile(block, step.blocks)
        return kinds, np.full(len(kinds), -1)
    kinds, position = training_schedule(len(step.samples), spec.n_layers, sleep_every=train.sleep_every if len(block)
                                        else 0, sleep_slots=train.sleep_slots(spec), start_index=step.first)
    return kinds, np.where(position >= 0, step.samples[np.maximum(position - step.first, 0)], -1)


def plan_steps(spec: NetworkSpec, train: TrainConfig, n_train: int) -> list[Step]:
    """The whole run, step by step (see the module docstring)."""
    steps = []
    block = len(sleep_kinds(spec, train))
    if block and train.warmup_sleep_blocks:
        per_chunk = max(1, slots_per_chunk(spec, train) // block)
        for index in range(math.ceil(train.warmup_sleep_blocks / per_chunk)):
            blocks = min(per_chunk, train.warmup_sleep_blocks - index * per_chunk)
            steps.append(Step("warmup", 0, index, step_seed(train.seed, 0, index), blocks=blocks))
    steps.append(Step("evaluate", 0, 0))
    for epoch in range(1, train.epochs + 1):
        order = np.random.default_rng([train.seed, epoch]).permutation(n_train)
        eta = train.eta * train.eta_decay ** (epoch - 1)
        for index, start in enumerate(range(0, n_train, train.chunk)):
            steps.append(Step("train", epoch, index, step_seed(train.seed, epoch, index), eta,
                              samples=order[start : start + train.chunk], first=start))
        steps.append(Step("evaluate", epoch, 0))
    return steps


def targets_for(labels: np.ndarray, n_out: int, y_high: float) -> np.ndarray:
    """Teacher rates: y_high for the label's output neuron, 0 for the others."""
    targets = np.zeros((len(labels), n_out))
    targets[np.arange(len(labels)), labels] = y_high
    return targets


def build(spec: NetworkSpec, train: TrainConfig, **kwargs) -> BioGradNetwork:
    """The training build: room for one chunk (``chunk`` samples and their sleep blocks)."""
    return BioGradNetwork(spec, n_slots=slots_per_chunk(spec, train), seed=train.seed, **kwargs)


@dataclass
class StepRun:
    """What a warm-up or training chunk did: right predictions (of the forward phase, before the
    sample's own update), the slot kinds and what the network recorded."""

    correct: int
    kinds: np.ndarray
    result: ChunkResult


def run_step(net: BioGradNetwork, step: Step, split: Split, train: TrainConfig) -> StepRun:
    """Run a warm-up or training chunk."""
    spec = net.spec
    kinds, shown = chunk_slots(spec, train, step)
    slots = shown >= 0
    targets = np.zeros((len(kinds), spec.sizes[-1]))
    targets[slots] = targets_for(split.labels[shown[slots]], spec.sizes[-1], spec.y_high)
    result = net.run_chunk(kinds, chunk_stimulus(split, shown, net.slot_steps), targets, eta=step.eta, seed=step.seed)
    return StepRun(int(np.sum(result.predictions()[slots] == split.labels[shown[slots]])), kinds, result)


def probe(net: BioGradNetwork, split: Split, indices: np.ndarray, state: PlasticState,
          seed: int) -> tuple[list[ProbeSample], ChunkResult]:
    """Measure BioGrad's weight change for each sample of ``indices``, every one from ``state``.

    Each sample is a training slot run on its own with learning rate 1 (the change per unit eta);
    dW_l = W_l after - W_l before. Returns the samples (rates, the somas' gates g_soma, target, dW) and the
    chunk results stacked slot by slot (for activity rows). The network's state is kept.
    """
    kept, samples, results = net.state, [], []
    for k, index in enumerate(np.asarray(indices)):
        target = targets_for(split.labels[[index]], net.spec.sizes[-1], net.spec.y_high)
        result = net.run_chunk(np.array([TRAIN]), chunk_stimulus(split, np.array([index]), net.slot_steps), target,
                               state, eta=1.0, seed=step_seed(seed, PROBE, k))
        samples.append(ProbeSample(int(index), target[0], [r[0] for r in result.rates],
                                   [None] + [result.gates[l][0].astype(float) for l in range(1, len(result.rates))],
                                   [w1 - w0 for w1, w0 in zip(net.state.W, state.W, strict=True)]))
        results.append(result)
    net.state = kept
    return samples, ChunkResult.concatenate(results)


def predict(net: BioGradNetwork, split: Split, state: PlasticState | None = None) -> np.ndarray:
    """Class predictions for every sample of ``split`` (inference slots; the network's state is kept)."""
    kept = net.state
    state = kept if state is None else state
    out = []
    for start in range(0, len(split), net.n_slots):
        index = np.arange(start, min(start + net.n_slots, len(split)))
        stimulus = chunk_stimulus(split, index, net.slot_steps)  # every slot shows a sample
        result = net.run_chunk(np.full(len(index), INFER), stimulus, np.zeros((len(index), net.spec.sizes[-1])),
                               state, seed=step_seed(net.seed, EVALUATION, start))
        out.append(result.predictions())
    net.state = kept
    return np.concatenate(out) if out else np.zeros(0, np.int64)


def accuracy(net: BioGradNetwork, split: Split, state: PlasticState | None = None) -> float:
    return float(np.mean(predict(net, split, state) == split.labels))
