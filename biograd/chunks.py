"""Running a :class:`BioGradNetwork` chunk by chunk: the warm-up and training tasks of a plan
(:mod:`biograd.plan`), probes of BioGrad's weight change, predictions (of an inference-only build:
:class:`Evaluator`), and sleep-only chunks with W frozen."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from biograd.analysis.alignment import ProbeSample
from biograd.analysis.sleep import feedback_alignment_rows
from biograd.config import TrainConfig
from biograd.data.splits import Split, chunk_stimulus
from biograd.models.backend import Backend
from biograd.models.network import BioGradNetwork, ChunkResult, PlasticState
from biograd.models.schedule import sleep_block
from biograd.models.spec import NetworkSpec
from biograd.plan import EVALUATION, PROBE, Task, chunk_slots, task_seed


def targets_for(labels: np.ndarray, n_out: int) -> np.ndarray:
    """Teacher input (the TimedArray ``target``): 1 for the label's output neuron, 0 for the others."""
    targets = np.zeros((len(labels), n_out))
    targets[np.arange(len(labels)), labels] = 1.0
    return targets


def target_rates(net: BioGradNetwork, labels: np.ndarray) -> np.ndarray:
    """The rates the teacher asks of the output layer: y_high (teacher.yaml) for the label, 0 for the others."""
    return targets_for(labels, net.spec.sizes[-1]) * float(net.composition.elements["teacher"].values["y_high"])


@dataclass
class ChunkRun:
    """What a warm-up or training chunk did: right predictions (of the forward phase, before the
    sample's own update), the slot kinds and what the network recorded."""

    correct: int
    kinds: np.ndarray
    result: ChunkResult


def run_task(net: BioGradNetwork, task: Task, split: Split, train: TrainConfig) -> ChunkRun:
    """Run a warm-up or training chunk."""
    return run_tasks(net, [task], split, train)[0]


def run_tasks(net: BioGradNetwork, tasks: list[Task], split: Split, train: TrainConfig,
              values: list[dict[str, float]] | None = None) -> list[ChunkRun]:
    """Run a warm-up or training chunk in every replica of ``net`` at once: ``tasks[k]`` is replica k's (its
    own samples, and chunk parameters ``values[k]``, default the task's; one schedule for all). Random
    numbers are seeded by the first task."""
    spec, n_out = net.spec, net.spec.sizes[-1]
    schedules = [chunk_slots(spec, train, task) for task in tasks]
    kinds = schedules[0][0]
    if any(not np.array_equal(other, kinds) for other, _ in schedules):
        raise ValueError("the replicas' tasks have different slot schedules (an ensemble runs one schedule)")
    stimuli, targets = [], []
    for _, shown in schedules:
        slots = shown >= 0
        target = np.zeros((len(kinds), n_out))
        target[slots] = targets_for(split.labels[shown[slots]], n_out)
        stimuli.append(chunk_stimulus(split, shown, net.n_slot))
        targets.append(target)
    values = [task.values for task in tasks] if values is None else values
    results = net.run_replicas(kinds, stimuli, targets, values=values, seed=tasks[0].seed)
    runs = []
    for (_, shown), result in zip(schedules, results, strict=True):
        slots = shown >= 0
        runs.append(ChunkRun(int(np.sum(result.predictions()[slots] == split.labels[shown[slots]])), kinds, result))
    return runs


def probe(net: BioGradNetwork, split: Split, indices: np.ndarray, state: PlasticState,
          seed: int) -> tuple[list[ProbeSample], ChunkResult]:
    """Measure BioGrad's weight change for each sample of ``indices``, every one from ``state``.

    Each sample is a training slot run on its own with learning rate 1 (the change per unit eta);
    dW_l = W_l after - W_l before. Returns the samples (rates, the somas' gates g_soma, target, dW) and the
    chunk results stacked slot by slot (for activity rows). The network's state is kept.
    """
    kept, samples, results = net.state, [], []
    for k, index in enumerate(np.asarray(indices)):
        result = net.run_chunk(np.array([net.composition.slot_train]),
                               chunk_stimulus(split, np.array([index]), net.n_slot),
                               targets_for(split.labels[[index]], net.spec.sizes[-1]), state, values={"eta": 1.0},
                               seed=task_seed(seed, PROBE, k))
        samples.append(ProbeSample(int(index), target_rates(net, split.labels[[index]])[0],
                                   [r[0] for r in result.rates],
                                   [None] + [result.gates[l][0].astype(float) for l in range(1, len(result.rates))],
                                   [w1 - w0 for w1, w0 in zip(net.state.W, state.W, strict=True)]))
        results.append(result)
    net.state = kept
    return samples, ChunkResult.concatenate(results)


def predict(net: BioGradNetwork, split: Split, state: PlasticState | None = None) -> np.ndarray:
    """Class predictions for every sample of ``split`` (inference slots; the network's state is kept)."""
    return predict_replicas(net, split, None if state is None else [state])[0]


def predict_replicas(net: BioGradNetwork, split: Split, states: list[PlasticState] | None = None) -> list[np.ndarray]:
    """:func:`predict` in every replica of ``net`` at once, replica k with ``states[k]`` (default: its own)."""
    kept = net.states
    states = kept if states is None else states
    out = []
    for start in range(0, len(split), net.slots):
        index = np.arange(start, min(start + net.slots, len(split)))
        stimulus = chunk_stimulus(split, index, net.n_slot)  # every slot shows a sample, the same in every replica
        kinds = np.full(len(index), net.composition.slot_infer)
        results = net.run_replicas(kinds, [stimulus] * net.replicas, [np.zeros((len(index), net.spec.sizes[-1]))] *
                                   net.replicas, states, seed=task_seed(net.seed, EVALUATION, start))
        out.append([result.predictions() for result in results])
    net.states = kept
    return [np.concatenate(column) for column in zip(*out, strict=True)] if out else \
        [np.zeros(0, np.int64)] * net.replicas


def accuracy(net: BioGradNetwork, split: Split, state: PlasticState | None = None) -> float:
    return float(np.mean(predict(net, split, state) == split.labels))


class Evaluator:
    """Predicts named splits with one inference-only build of ``spec`` on ``backend`` (default: Brian2's active
    device), ``chunk`` samples per run."""

    def __init__(self, spec: NetworkSpec, splits: dict[str, Split], chunk: int, seed: int | list[int],
                 equations: Path | None, backend: Backend | None = None):
        self.splits = splits
        self.net = BioGradNetwork(spec, slots=min(chunk, max(map(len, splits.values()))), seed=seed,
                                  equations=equations, inference=True, backend=backend)
        self.net.compile()

    def predict(self, state: PlasticState, split: str) -> np.ndarray:
        return predict(self.net, self.splits[split], state)

    def predict_replicas(self, states: list[PlasticState], split: str) -> list[np.ndarray]:
        """Predictions of every replica of an ensemble build (``seed`` a list), replica k with ``states[k]``."""
        return predict_replicas(self.net, self.splits[split], states)


def sleep_alignment_curve(net: BioGradNetwork, n_chunks: int, *, sleep: bool = True,
                          eta_sleep: float | None = None) -> pd.DataFrame:
    """Run ``n_chunks`` chunks of sleep (or of idle slots, ``sleep=False``) with W frozen, from
    ``net.state`` (a random start, or a trained state assigned to it).

    Every chunk is one sleep block of ``net.slots`` slots shared among the feedback layers;
    ``eta_sleep`` overrides the build's rate (no rebuild). Returns a tidy frame: one row per
    (chunk, layer) with :func:`~biograd.analysis.sleep.feedback_alignment_rows` and the simulated
    sleep steps so far. Chunk 0 is the starting point.
    """
    spec, n = net.spec, net.slots
    layers = sorted(net.feedback)
    per_layer = max(1, n // len(layers))
    kinds = sleep_block(spec.composition, per_layer) if sleep else \
        np.full(per_layer * len(layers), spec.composition.slot_infer)
    zeros_in, zeros_out = np.zeros((len(kinds), spec.sizes[0])), np.zeros((len(kinds), spec.sizes[-1]))
    rows = []
    for chunk in range(n_chunks + 1):
        if chunk:
            values = {"eta": 0.0} | ({"eta_sleep": eta_sleep} if eta_sleep is not None else {})
            net.run_chunk(kinds, zeros_in, zeros_out, values=values, seed=net.seed + chunk)
        rows += [{"chunk": chunk, "sleep": sleep, "sleep_steps": chunk * per_layer * spec.n_slot} | row
                 for row in feedback_alignment_rows(net.state.W, net.state.B)]
    frame = pd.DataFrame(rows)
    return frame.assign(eta_sleep=eta_sleep) if eta_sleep is not None else frame
