"""Activity and operation counts from the per-slot recordings equal hand counts of monitored spikes.

A tiny two-hidden-layer network in sleep mode runs training slots and a sleep block on the numpy
target with SpikeMonitors and EventMonitors added; every count of biograd.analysis.activity
(spikes, error events, learn events, sleep spikes, synaptic operations and updates) is compared
with the count made by hand from the monitors.
"""

import brian2 as b2
import numpy as np
import pytest
from sklearn.datasets import load_digits
from support import TRAIN, block, tiny_spec

from biograd.analysis.activity import layer_activity, neuron_rates, operation_counts
from biograd.models.network import BioGradNetwork

SIZES = (64, 12, 8, 10)
SLEEP_SLOTS = 2


@pytest.fixture(scope="module")
def monitored_chunk():
    b2.prefs.codegen.target = "numpy"
    spec = tiny_spec(SIZES, network={"n_f": 10, "n_e": 5, "init_scale": 2.0})
    kinds = np.concatenate([[TRAIN] * 4, block(spec, SLEEP_SLOTS), [TRAIN] * 3])
    net = BioGradNetwork(spec, slots=len(kinds), seed=1)
    spikes = [b2.SpikeMonitor(g, name=f"spikes{l}") for l, g in enumerate(net.layers)]
    events = {(l, e): b2.EventMonitor(g, e, name=f"{e}{l}") for l, g in enumerate(net.layers)
              for e in ("err_pos", "err_neg", "learn", "sleep_spike") if e in g.events}
    net.network.add(*spikes, *events.values())
    net.network.store("initial")
    images, labels = load_digits(return_X_y=True)
    shown = np.where(kinds == TRAIN, np.cumsum(kinds == TRAIN) - 1, -1)
    stimulus = np.where(shown[:, None] >= 0, images[np.maximum(shown, 0)] / 16, 0)
    targets = np.zeros((len(kinds), 10))
    targets[shown >= 0, labels[shown[shown >= 0]]] = 1.0
    result = net.run_chunk(kinds, stimulus, targets, values={"eta": 0.01}, seed=5)
    def slot_of(monitor):  # integer steps first: t / slot in floating point can fall just below a boundary
        return np.round(np.asarray(monitor.t / b2.ms)).astype(int) // spec.n_slot

    def per_slot(monitor):
        return np.bincount(slot_of(monitor), minlength=len(kinds))[: len(kinds)]

    hand = {"spikes": [per_slot(m) for m in spikes], "events": {k: per_slot(m) for k, m in events.items()},
            "spike_i": [(np.asarray(m.i), slot_of(m)) for m in spikes],
            "spike_step": [np.round(np.asarray(m.t / b2.ms)).astype(int) % spec.n_slot for m in spikes]}
    b2.device.reinit()
    return spec, kinds, result, hand


def test_spikes_and_error_events_match_monitors(monitored_chunk):
    spec, kinds, result, hand = monitored_chunk
    train = kinds == TRAIN
    for layer in range(spec.n_layers + 1):
        assert np.array_equal(result.spikes[layer].sum(axis=1), hand["spikes"][layer]), f"spikes of layer {layer}"
        # forward-phase spikes are what the rate counts: x_trace * n_f in training slots
        assert np.allclose(result.rates[layer][train].sum(axis=1) * spec.n_f, hand["spikes"][layer][train])
    for layer in range(1, spec.n_layers + 1):
        events = hand["events"][(layer, "err_pos")] + hand["events"][(layer, "err_neg")]
        assert np.array_equal(np.abs(result.errors[layer]).sum(axis=1), events), f"error events of layer {layer}"
        assert events[train].sum() > 0, "the chunk sends error events"
    activity = {(r["metric"], r["layer"]): r["value"] for r in layer_activity(result, kinds, spec)}
    assert activity[("spikes_per_sample", 1)] == pytest.approx(hand["spikes"][1][train].mean())
    assert activity[("error_events_per_sample", 2)] == pytest.approx(
        (hand["events"][(2, "err_pos")] + hand["events"][(2, "err_neg")])[train].mean())


def test_saturated_means_a_spike_in_every_forward_step_the_layer_can_fire_in(monitored_chunk):
    """Layer l's first forward spike comes at step l at the earliest (one step per layer), so a
    saturated neuron of layer l fires in each of steps l .. n_f - 1, n_f - l spikes, never n_f."""
    spec, kinds, result, hand = monitored_chunk
    activity = {(r["metric"], r["layer"]): r["value"] for r in layer_activity(result, kinds, spec)}
    train_slots = np.flatnonzero(kinds == TRAIN)
    for layer in range(spec.n_layers + 1):
        (i, slot), step = hand["spike_i"][layer], hand["spike_step"][layer]
        forward = np.isin(slot, train_slots) & (step < spec.n_f)
        assert not forward.any() or step[forward].min() >= layer, f"layer {layer} fires before step {layer}"
        steps = {}
        for n, s, t in zip(i[forward], slot[forward], step[forward], strict=True):
            steps.setdefault((s, n), set()).add(int(t))
        full = set(range(layer, spec.n_f))
        saturated = sum(seen == full for seen in steps.values())
        assert activity[("saturated_fraction", layer)] == pytest.approx(saturated / (len(train_slots) * SIZES[layer]))
        if layer:
            assert saturated > 0, f"the large init saturates some neurons of layer {layer}"


def test_operation_counts_match_hand_counts(monitored_chunk):
    spec, kinds, result, hand = monitored_chunk
    sizes, L = spec.sizes, spec.n_layers
    train, sleep = kinds == TRAIN, kinds >= spec.composition.slot_sleep(2)
    n_train, spikes, events = train.sum(), hand["spikes"], hand["events"]
    counts = operation_counts(result, kinds, spec, sleep_slots=SLEEP_SLOTS)
    expected_train = {
        "synops_forward": sum(spikes[l - 1][train].sum() * sizes[l] for l in range(1, L + 1)) / n_train,
        "synops_error": sum((events[(l, "err_pos")] + events[(l, "err_neg")])[train].sum() * sizes[l - 1]
                            for l in range(2, L + 1)) / n_train,
        "updates_learning": sum(events[(l - 1, "learn")].sum() * sizes[l] for l in range(1, L + 1)) / n_train,
        "neuron_updates": sum(sizes) * spec.n_slot,
    }
    assert counts["train"] == pytest.approx(expected_train)
    assert all(counts["train"][k] > 0 for k in expected_train)
    expected_sleep = {  # one block in the chunk
        "synops": sum(spikes[l - 1][sleep].sum() * sizes[l] for l in range(1, L + 1)),
        "updates": sum(events[(m, "sleep_spike")].sum() * sizes[m - 1] for m in range(2, L + 1)),
        "neuron_updates": sum(sizes) * spec.n_slot * sleep.sum(),
    }
    assert counts["sleep"] == pytest.approx(expected_sleep)
    assert counts["sleep"]["updates"] > 0, "sleep spikes update feedback synapses"


def test_neuron_rates_are_forward_spike_counts(monitored_chunk):
    spec, kinds, result, hand = monitored_chunk
    train_slots = np.flatnonzero(kinds == TRAIN)
    for layer, rates in enumerate(neuron_rates(result, kinds, spec)):
        i, slot = hand["spike_i"][layer]
        in_train = np.isin(slot, train_slots)
        counts = np.bincount(i[in_train], minlength=spec.sizes[layer])
        assert np.allclose(rates, counts / (len(train_slots) * spec.n_f) * 1000)

