"""Spike trains of a few samples, recorded in the probe build (``record.spikes``) as ``<run>/spikes.nwb``.

At every probe point, from that point's weights: each of the first ``samples`` probed samples (the
probes' fixed order, :func:`~biograd.recording.probe_indices`) runs ``repeats`` times alone, one training
slot each with other random draws (error dither, Poisson input, sleep noise), then, in sleep mode, one
sleep block. EventMonitors of the probe build (``BioGradNetwork(spikes=...)``) record the spikes and
signed error events of the first ``neurons`` neurons of the chosen layers. The runs are placed one after
another on the recording's time axis (run j of a sample slot starts at j * n_slot * dt, the sleep block
after them), and the phases become intervals (:mod:`biograd.analysis.spike_trains`):

    forward   steps [0, n_f) of a sample's slot (every layer)
    error     layer l's error window, steps [n_f + (e_l - 1) n_e, n_f + e_l n_e), e_l = L - l + 1
    sleep     each slot of the block: for W_m, layer m responds and layer m - 1 is driven by noise

The chunk parameters are the build's; the weights are restored afterwards, so recording changes neither
the run nor its probes. The file holds the last probe point's recording (rewritten at each, atomically).
"""

from __future__ import annotations

import json
import uuid
from pathlib import Path

import brian2 as b2
import numpy as np
import pandas as pd

from biograd.analysis.spike_trains import INTERVAL_COLUMNS, SpikeRecording, write_nwb
from biograd.chunks import targets_for
from biograd.config import RunConfig, SpikeRecordConfig, dump_config
from biograd.data.splits import Split, chunk_stimulus
from biograd.models.network import BioGradNetwork, PlasticState
from biograd.models.spec import NetworkSpec
from biograd.plan import task_seed
from biograd.rundir import atomic_path

SPIKE_RUNS = 2**32 - 3  # the "epoch" entry of the seeds of spike runs (task_seed)
SPIKES_FILE = "spikes.nwb"


def monitored(spec: NetworkSpec, record: SpikeRecordConfig) -> dict[int, int]:
    """layer -> neurons recorded (the network's ``spikes``): the chosen layers (default: all but the input)."""
    layers = range(1, len(spec.sizes)) if record.layers is None else record.layers
    for layer in layers:
        if not 0 <= layer < len(spec.sizes):
            raise ValueError(f"record.spikes.layers: no layer {layer} in a network of sizes {list(spec.sizes)}")
    return {layer: min(record.neurons, spec.sizes[layer]) for layer in layers}


def record_spikes(net: BioGradNetwork, split: Split, indices: np.ndarray, state: PlasticState, seed: int,
                  record: SpikeRecordConfig, block: np.ndarray) -> SpikeRecording:
    """Run the samples ``indices`` (``record.repeats`` times each) and the sleep ``block`` (slot kinds; empty: none)
    from ``state`` in ``net`` (built with :func:`monitored` spikes) and return what its monitors recorded."""
    composition, phases = net.composition, set(record.phases)
    dt, slot = float(composition.dt / b2.second), net.n_slot * float(composition.dt / b2.second)
    kinds = ({"spike"} if phases & {"forward", "sleep"} else set()) | ({"err_pos", "err_neg"} if "error" in phases
                                                                         else set())
    units, first = [], {}
    for (layer, event), monitor in net.spike_monitors.items():
        if event in kinds:
            first[layer, event] = start = len(units)
            units += [(start + neuron, layer, neuron, event) for neuron in range(len(monitor.source))]
    layers = sorted({layer for layer, _ in first})
    error_layers = sorted({layer for layer, event in first if event != "spike"})
    spikes, intervals = [], []

    def collect(offset: float, duration: float) -> None:
        for key, (neurons, times) in net.spike_times().items():
            kept = times < duration - dt / 2  # a standalone build runs all its slots: the rest idles
            if key in first:
                spikes.append(pd.DataFrame({"unit": first[key] + neurons[kept], "time_s": offset + times[kept]}))

    kept_state, run = net.state, 0
    if phases & {"forward", "error"}:
        for index in np.asarray(indices):
            for repeat in range(record.repeats):
                net.run_chunk(np.array([composition.slot_train]), chunk_stimulus(split, np.array([index]), net.n_slot),
                              targets_for(split.labels[[index]], net.spec.sizes[-1]), state,
                              seed=task_seed(seed, SPIKE_RUNS, run))
                offset = run * slot
                collect(offset, slot)
                if "forward" in phases:
                    intervals.append((offset, offset + composition.n_f * dt, "forward", -1, index, repeat, "sample"))
                for layer in error_layers if "error" in phases else ():
                    start = offset + (composition.n_f + (composition.err_phase(layer) - 1) * composition.n_e) * dt
                    intervals.append((start, start + composition.n_e * dt, "error", layer, index, repeat,
                                      "error window"))
                run += 1
    if "sleep" in phases and len(block):
        offset = run * slot
        net.run_chunk(block, np.zeros((0, net.spec.sizes[0])), np.zeros((len(block), net.spec.sizes[-1])), state,
                      seed=task_seed(seed, SPIKE_RUNS, run))
        collect(offset, len(block) * slot)
        for k, code in enumerate(block):
            m = int(code) - composition.slot_sleep(0)  # the block's slots for W_m
            for layer, role in ((m, "sleep response"), (m - 1, "sleep noise")):
                if layer in layers:
                    intervals.append((offset + k * slot, offset + (k + 1) * slot, "sleep", layer, -1, 0, role))
    net.state = kept_state
    frame = pd.concat(spikes, ignore_index=True) if spikes else pd.DataFrame({"unit": [], "time_s": []})
    return SpikeRecording(pd.DataFrame(units, columns=["unit", "layer", "neuron", "kind"]),
                          frame.astype({"unit": np.int64, "time_s": float}).sort_values(["unit", "time_s"],
                                                                                          ignore_index=True),
                          pd.DataFrame(intervals, columns=["start_s", "stop_s", *INTERVAL_COLUMNS]))


def write_spikes(directory: Path, recording: SpikeRecording, config: RunConfig, point: str) -> Path:
    """``recording`` as ``<directory>/spikes.nwb``, with the run's config.yaml as the file's notes and its
    versions.json (where the directory has one) as its source script; ``point`` names the probe point."""
    versions = directory / "versions.json"
    record = config.record.spikes
    description = (f"BioGrad run {directory.name}, probe point {point}: spikes and signed error events of the first "
                   f"{record.neurons} neurons of layers {sorted(set(recording.units.layer))}, for "
                   f"{record.samples} training samples x "
                   f"{record.repeats} runs (phases {', '.join(record.phases)}), each run alone from the probe "
                   "point's weights and placed one after another on the time axis (biograd.spikes)")
    path = directory / SPIKES_FILE
    with atomic_path(path) as tmp:
        write_nwb(tmp, recording, description=description, identifier=f"{directory.name}/{point}/{uuid.uuid4()}",
                  notes="config.yaml of the run:\n" + dump_config(config),
                  source_script=json.dumps(json.loads(versions.read_text())) if versions.is_file() else "",
                  source_script_file_name="versions.json" if versions.is_file() else None)
    return path
