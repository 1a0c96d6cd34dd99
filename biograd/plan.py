"""The task plan of a training run: online training of a :class:`BioGradNetwork` (batch size 1) as a
fixed sequence of tasks.

A run is the same list of tasks every time for the same config, data and seed:

    warm-up chunks   sleep blocks only (sleep mode), so that B starts aligned with W^T
    evaluate         accuracy of the untrained network (epoch 0) on the per-epoch split
    per epoch e      train chunks of ``chunk`` samples in random order, a sleep block before every
                     ``sleep_every``-th sample of the epoch, each chunk parameter p of
                     ``train.decay`` at p_table * decay_p^(e-1) (e.g. the learning rate eta);
                     then one evaluate task (epoch e) on the per-epoch split
    test             with a validation split, the per-epoch split is validation and the run ends by
                     evaluating the test split once (unless ``train.final_test`` is off); without
                     one, the per-epoch split is test

Every task carries its own seed (from the run seed, epoch and chunk), so a run resumed at task k
repeats exactly what the uninterrupted run did from task k on. One chunk is one network run:
the build has room for ``chunk`` samples and their sleep blocks, and every chunk only changes arrays.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Literal

import numpy as np

from biograd.config import TrainConfig
from biograd.models.network import BioGradNetwork
from biograd.models.schedule import sleep_block, training_schedule
from biograd.models.spec import NetworkSpec
from biograd.models.units import parse_quantity

EVALUATION = 2**32 - 1  # the "epoch" entry of evaluation seeds (used only by Poisson inputs)
PROBE = 2**32 - 2  # the "epoch" entry of probe seeds


@dataclass(frozen=True)
class Task:
    """One task of a run: a warm-up chunk, a training chunk, an evaluation, or the final test."""

    kind: Literal["warmup", "train", "evaluate", "test"]
    epoch: int  # epoch in progress (train), epochs completed (evaluate), 0 (warm-up)
    index: int  # chunk within the epoch or the warm-up
    split: Literal["train", "validation", "test"] = "train"  # the split evaluated or trained on
    seed: int = 0
    values: dict[str, float] = field(default_factory=dict)  # chunk parameters of this chunk (train)
    blocks: int = 0  # sleep blocks (warm-up)
    samples: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))  # training sample indices
    first: int = 0  # position of samples[0] in the epoch (sleep blocks precede positions k*sleep_every)


def task_seed(seed: int, epoch: int, index: int) -> int:
    """A 32-bit seed of its own for every (run seed, epoch, chunk)."""
    return int(np.random.SeedSequence([seed, epoch, index]).generate_state(1)[0])


def sleep_slots(spec: NetworkSpec, train: TrainConfig) -> int:
    """Slots of sleep per feedback layer per block: sleep_duration / (n_slot * dt), rounded up."""
    steps = float(parse_quantity(train.sleep_duration) / spec.composition.dt)
    return max(1, math.ceil(steps / spec.n_slot))


def sleep_kinds(spec: NetworkSpec, train: TrainConfig) -> np.ndarray:
    """Slot kinds of one sleep block (empty unless the feedback mode is ``sleep``)."""
    if spec.feedback != "sleep" or spec.n_layers < 2:
        return np.zeros(0, np.int64)
    return sleep_block(spec.composition, sleep_slots(spec, train))


def slots_per_chunk(spec: NetworkSpec, train: TrainConfig) -> int:
    """Build size: ``chunk`` samples and the (at most ceil(chunk/sleep_every)) sleep blocks among them."""
    return train.chunk + math.ceil(train.chunk / train.sleep_every) * len(sleep_kinds(spec, train))


def chunk_slots(spec: NetworkSpec, train: TrainConfig, task: Task) -> tuple[np.ndarray, np.ndarray]:
    """Slot kinds of a task and the sample each slot shows (-1: none, in sleep slots)."""
    block = sleep_kinds(spec, train)
    if task.kind == "warmup":
        kinds = np.tile(block, task.blocks)
        return kinds, np.full(len(kinds), -1)
    kinds, position = training_schedule(spec.composition, len(task.samples),
                                        sleep_every=train.sleep_every if len(block) else 0,
                                        sleep_slots=sleep_slots(spec, train), start_index=task.first)
    return kinds, np.where(position >= 0, task.samples[np.maximum(position - task.first, 0)], -1)


def epoch_values(spec: NetworkSpec, train: TrainConfig, epoch: int) -> dict[str, float]:
    """Chunk parameters of ``train.decay`` in ``epoch``: table value * decay^(epoch - 1)."""
    table = spec.composition.chunk_parameters()
    return {name: table[name] * decay ** (epoch - 1) for name, decay in train.decay.items()}


def plan_tasks(spec: NetworkSpec, train: TrainConfig, n_train: int, validation: bool = False) -> list[Task]:
    """The whole run, task by task (see the module docstring); ``validation``: the data has that split."""
    per_epoch = "validation" if validation else "test"
    tasks = []
    block = len(sleep_kinds(spec, train))
    if block and train.warmup_sleep_blocks:
        per_chunk = max(1, slots_per_chunk(spec, train) // block)
        for index in range(math.ceil(train.warmup_sleep_blocks / per_chunk)):
            blocks = min(per_chunk, train.warmup_sleep_blocks - index * per_chunk)
            tasks.append(Task("warmup", 0, index, seed=task_seed(train.seed, 0, index), blocks=blocks))
    tasks.append(Task("evaluate", 0, 0, split=per_epoch))
    for epoch in range(1, train.epochs + 1):
        order = np.random.default_rng([train.seed, epoch]).permutation(n_train)
        values = epoch_values(spec, train, epoch)
        for index, start in enumerate(range(0, n_train, train.chunk)):
            tasks.append(Task("train", epoch, index, seed=task_seed(train.seed, epoch, index), values=values,
                              samples=order[start : start + train.chunk], first=start))
        tasks.append(Task("evaluate", epoch, 0, split=per_epoch))
    if validation and train.final_test:
        tasks.append(Task("test", train.epochs, 0, split="test"))
    return tasks


def build(spec: NetworkSpec, train: TrainConfig, seeds: list[int] | None = None, **kwargs) -> BioGradNetwork:
    """The training build: room for one chunk (``chunk`` samples and their sleep blocks); an ensemble of one
    replica per seed of ``seeds`` (default: a single network of ``train.seed``)."""
    return BioGradNetwork(spec, slots=slots_per_chunk(spec, train), seed=train.seed if seeds is None else seeds,
                          **kwargs)
