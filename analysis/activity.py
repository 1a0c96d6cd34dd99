"""What the network did in a chunk: rates, spikes, error events, and how many operations they cost.

Input: a :class:`~biograd.models.network.ChunkResult` of a training build (it records, per slot
and neuron, the rate ``x_trace``, the spikes ``n_spikes`` of any phase, the signed error events
``n_error`` and the sleep-rule events ``n_sleep_events``) and the slot kinds of the chunk. Training
slots hold one sample each; sleep slots for W_m (code slot_sleep + m) drive layer m-1 with noise while layer m responds.

Per layer l (training slots only), with r = x_trace and n = |n_error|:

    rate_hz                   mean r / dt                    (r = forward spikes / n_f)
    silent_fraction           mean 1[r = 0]
    saturated_fraction        mean 1[r n_f >= n_f - l]       (a spike in every forward step it can fire in:
                                                             a spike reaches the next layer's soma one
                                                             step later, so layer l fires from step l on)
    spikes_per_sample         mean over samples of sum_i n_spikes_i
    error_rate_hz             mean n / (n_e dt)              (layers that send error events)
    error_saturated_fraction  mean 1[n >= n_e]
    error_events_per_sample   mean over samples of sum_i n_i

Operations (all-to-all synapses, so a spike of layer l-1 is N_l synaptic operations):

    per training sample (split "train")
      synops_forward    sum_l spikes(l-1) N_l                          forward phase
      synops_error      sum_{l>=2} errors(l) N_{l-1}                   error events through B_l (or W_l^T)
      updates_learning  sum_l #{pre neurons of W_l with r > 0} N_l     one `learn` event per active pre neuron
      neuron_updates    sum_l N_l * n_slot                             every neuron steps every time step
    per sleep block (split "sleep")
      synops            sum_l spikes(l-1) N_l over the block's slots   noise and responses through W
      updates           sum_m sleep_events(m) N_{m-1} in slots of kind 1+m  a sleep-rule event (a spike after
                                                                 the block's settling time) updates B_m's synapses
      neuron_updates    sum_l N_l * n_slot * slots
"""

from __future__ import annotations

import numpy as np

from biograd.models.network import ChunkResult
from biograd.models.spec import NetworkSpec

LAYER_METRICS = ("rate_hz", "silent_fraction", "saturated_fraction", "spikes_per_sample", "error_rate_hz",
                 "error_saturated_fraction", "error_events_per_sample")


def layer_activity(result: ChunkResult, kinds: np.ndarray, spec: NetworkSpec) -> list[dict]:
    """Rows ``{metric, layer, value}`` of the per-layer quantities (module docstring), training slots only."""
    train = np.asarray(kinds) == spec.composition.slot_train
    if not train.any():
        return []
    dt = float(spec.composition.dt)
    rows = []
    for layer, rates in enumerate(result.rates):
        r = rates[train]
        values = {"rate_hz": r.mean() / dt, "silent_fraction": np.mean(r == 0),
                  "saturated_fraction": np.mean(np.rint(r * spec.n_f) >= spec.n_f - layer)}
        if layer in result.spikes:
            values["spikes_per_sample"] = result.spikes[layer][train].sum(axis=1).mean()
        if layer in result.errors:
            n = np.abs(result.errors[layer][train])
            values |= {"error_rate_hz": n.mean() / (spec.n_e * dt),
                       "error_saturated_fraction": np.mean(n >= spec.n_e),
                       "error_events_per_sample": n.sum(axis=1).mean()}
        rows += [{"metric": name, "layer": layer, "value": float(v)} for name, v in values.items()]
    return rows


def operation_counts(result: ChunkResult, kinds: np.ndarray, spec: NetworkSpec,
                     sleep_slots: int = 1) -> dict[str, dict[str, float]]:
    """``{"train": per training sample, "sleep": per sleep block}`` operation counts (module docstring).

    A part is missing when the chunk has no slot of that kind. ``sleep_slots``: slots per feedback
    layer in one block (``biograd.plan.sleep_slots``), which gives the number of blocks in the chunk.
    """
    kinds = np.asarray(kinds)
    sizes, L = spec.sizes, spec.n_layers
    spikes = [result.spikes[l].sum(axis=1) for l in range(L + 1)]  # per slot
    counts: dict[str, dict[str, float]] = {}
    codes = spec.composition
    train = kinds == codes.slot_train
    if train.any():
        n = train.sum()
        counts["train"] = {
            "synops_forward": sum(spikes[l - 1][train].sum() * sizes[l] for l in range(1, L + 1)) / n,
            "synops_error": sum(np.abs(result.errors[l][train]).sum() * sizes[l - 1] for l in range(2, L + 1)) / n,
            "updates_learning": sum((result.rates[l - 1][train] > 0).sum() * sizes[l] for l in range(1, L + 1)) / n,
            "neuron_updates": float(sum(sizes) * spec.n_slot),
        }
    sleep = kinds >= codes.slot_sleep(2)
    if sleep.any():
        blocks = np.sum(kinds == kinds[sleep].min()) / sleep_slots
        counts["sleep"] = {
            "synops": sum(spikes[l - 1][sleep].sum() * sizes[l] for l in range(1, L + 1)) / blocks,
            "updates": sum(result.sleep_events[m][kinds == codes.slot_sleep(m)].sum() * sizes[m - 1]
                           for m in range(2, L + 1)) / blocks,
            "neuron_updates": sum(sizes) * spec.n_slot * sleep.sum() / blocks,
        }
    return {part: {k: float(v) for k, v in c.items()} for part, c in counts.items()}


def activity_rows(result: ChunkResult, kinds: np.ndarray, spec: NetworkSpec, sleep_slots: int = 1) -> list[dict]:
    """Per-layer rows (split ``train``) and operation-count rows (split ``train`` per sample,
    ``sleep`` per block, layer None) of one chunk, ready for metrics.parquet."""
    rows = [row | {"split": "train"} for row in layer_activity(result, kinds, spec)]
    for part, counts in operation_counts(result, kinds, spec, sleep_slots).items():
        rows += [{"split": part, "metric": name, "layer": None, "value": value} for name, value in counts.items()]
    return rows


def neuron_rates(result: ChunkResult, kinds: np.ndarray, spec: NetworkSpec) -> list[np.ndarray]:
    """Mean forward-phase rate (Hz) of every neuron over the chunk's training slots, per layer."""
    train = np.asarray(kinds) == spec.composition.slot_train
    return [rates[train].mean(axis=0) / float(spec.composition.dt) for rates in result.rates]
