"""Recorded spike trains in the field's formats: NWB files (pynwb) and Neo segments (for Elephant).

A :class:`SpikeRecording` is three tidy frames:

    units      unit, layer, neuron, kind     one row per recorded neuron and event kind: ``spike`` (the soma's
                                             spikes) or a signed error event, ``err_pos`` / ``err_neg``
    spikes     unit, time_s                  every event, in seconds on the recording's time axis
    intervals  start_s, stop_s, phase,       the phases the times belong to: ``forward`` (a sample's forward
               layer, sample, repeat, role   phase, every layer: layer -1), ``error`` (a layer's error window),
                                             ``sleep`` (one slot of a sleep block, for the responding layer and
                                             for the noise-driven layer below it); sample: index in the training
                                             split (-1: none), repeat: run of that sample

As NWB: the units table (spike_times, columns layer, neuron, kind) and the epochs table (start_time,
stop_time, tags = [phase], columns phase, layer, sample, repeat, role); the writer's text goes to the
file's description, notes and source script (:func:`write_nwb`). :func:`read_nwb` reads it back;
:func:`neo_segments` turns a recording into one ``neo.Segment`` per interval whose SpikeTrains
(t_start, t_stop = the interval) carry the unit's layer, neuron and kind as annotations.
pynwb and neo are imported when used.
"""

from __future__ import annotations

import datetime
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

KINDS = ("spike", "err_pos", "err_neg")  # the soma's spikes, positive and negative error events
PHASES = ("forward", "error", "sleep")
UNIT_COLUMNS = {"layer": "layer index (0: input)", "neuron": "index of the neuron in its layer",
                "kind": "spike (the soma's spikes) or err_pos / err_neg (signed error events)"}
INTERVAL_COLUMNS = {"phase": "forward, error or sleep", "layer": "the layer it is about (-1: every layer)",
                    "sample": "index of the sample in the training split (-1: none)",
                    "repeat": "run of that sample (other random draws)",
                    "role": "sample, error window, sleep response or sleep noise"}


@dataclass
class SpikeRecording:
    """Spike and error-event times of recorded units and the phase intervals (module docstring); ``metadata``
    holds the NWB file's texts (description, identifier, notes, source_script)."""

    units: pd.DataFrame
    spikes: pd.DataFrame
    intervals: pd.DataFrame
    metadata: dict[str, str] = field(default_factory=dict)

    def times(self, unit: int) -> np.ndarray:
        """The sorted event times of ``unit`` (seconds)."""
        return np.sort(self.spikes.time_s.to_numpy()[self.spikes.unit.to_numpy() == unit])


def write_nwb(path: Path, recording: SpikeRecording, *, description: str, identifier: str, notes: str = "",
              source_script: str = "", source_script_file_name: str | None = None,
              start_time: datetime.datetime | None = None) -> None:
    """``recording`` as an NWB file at ``path`` (overwritten): units, epochs, and the texts as the file's
    session description, identifier, notes and source script."""
    from pynwb import NWBHDF5IO, NWBFile

    nwb = NWBFile(session_description=description, identifier=identifier,
                  session_start_time=start_time or datetime.datetime.now().astimezone(), notes=notes or None,
                  source_script=source_script or None, source_script_file_name=source_script_file_name,
                  related_publications=["arXiv:2110.14092"],
                  keywords=["simulation", "spiking neural network", "BioGrad", "Brian2"],
                  experiment_description="A simulated spiking network trained with BioGrad (Tang et al. 2021), "
                  "run in Brian2; times are simulated time.")
    for name, text in UNIT_COLUMNS.items():
        nwb.add_unit_column(name, text)
    for row in recording.units.itertuples():
        nwb.add_unit(spike_times=recording.times(row.unit), layer=int(row.layer), neuron=int(row.neuron),
                     kind=str(row.kind), id=int(row.unit))
    for name, text in INTERVAL_COLUMNS.items():
        nwb.add_epoch_column(name, text)
    for row in recording.intervals.itertuples():
        nwb.add_epoch(start_time=float(row.start_s), stop_time=float(row.stop_s), tags=[str(row.phase)],
                      phase=str(row.phase), layer=int(row.layer), sample=int(row.sample), repeat=int(row.repeat),
                      role=str(row.role))
    with NWBHDF5IO(str(path), "w") as io:
        io.write(nwb)


def read_nwb(path: Path) -> SpikeRecording:
    """The recording of an NWB file written by :func:`write_nwb`."""
    from pynwb import NWBHDF5IO

    with NWBHDF5IO(str(path), "r") as io:
        nwb = io.read()
        table = nwb.units.to_dataframe()
        epochs = nwb.epochs.to_dataframe()
        metadata = {"description": nwb.session_description, "identifier": nwb.identifier, "notes": nwb.notes or "",
                    "source_script": nwb.source_script or ""}
    units = pd.DataFrame({"unit": table.index.to_numpy(np.int64), "layer": table.layer.to_numpy(np.int64),
                          "neuron": table.neuron.to_numpy(np.int64), "kind": table.kind.astype(str).to_numpy()})
    times = [np.asarray(t, float) for t in table.spike_times]
    spikes = pd.DataFrame({"unit": np.repeat(units.unit.to_numpy(), [len(t) for t in times]),
                           "time_s": np.concatenate(times) if times else np.zeros(0)})
    intervals = pd.DataFrame({"start_s": epochs.start_time.to_numpy(float), "stop_s": epochs.stop_time.to_numpy(float),
                              **{name: epochs[name].to_numpy() for name in INTERVAL_COLUMNS}})
    return SpikeRecording(units, spikes, intervals.astype({"layer": np.int64, "sample": np.int64,
                                                            "repeat": np.int64}), metadata)


def neo_segments(recording: SpikeRecording, phases: tuple[str, ...] = PHASES) -> list:
    """One ``neo.Segment`` per interval of ``phases``, annotated with phase, layer, sample, repeat and role,
    holding a ``neo.SpikeTrain`` (seconds) for every unit of the interval's layer (of every layer: -1), each
    annotated with unit_id, layer, neuron and kind."""
    import neo
    import quantities as pq

    times = dict(iter(recording.spikes.groupby("unit").time_s))
    segments = []
    for interval in recording.intervals[recording.intervals.phase.isin(phases)].itertuples():
        segment = neo.Segment(name=f"{interval.phase} layer {interval.layer} sample {interval.sample} "
                              f"repeat {interval.repeat}", phase=interval.phase, layer=int(interval.layer),
                              sample=int(interval.sample), repeat=int(interval.repeat), role=interval.role)
        units = recording.units if interval.layer < 0 else recording.units[recording.units.layer == interval.layer]
        for unit in units.itertuples():
            t = times.get(unit.unit)
            t = np.zeros(0) if t is None else np.sort(t[(t >= interval.start_s) & (t < interval.stop_s)].to_numpy())
            segment.spiketrains.append(neo.SpikeTrain(t * pq.s, t_start=interval.start_s * pq.s,
                                                      t_stop=interval.stop_s * pq.s, unit_id=int(unit.unit),
                                                      layer=int(unit.layer), neuron=int(unit.neuron), kind=unit.kind))
        segments.append(segment)
    return segments
