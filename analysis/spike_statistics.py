"""Spike statistics of a recording with Elephant, per layer and phase, against cortical reference ranges.

Input: the Neo segments of :func:`~biograd.analysis.spike_trains.neo_segments` (one per interval: a trial).
Per layer and phase, over the recorded neurons (``spike`` trains in the forward and sleep phases, signed
error events in the error phase; Elephant computes each neuron's value, the row is the summary over neurons):

    rate_hz              mean over neurons of its mean_firing_rate over the phase's trials (Hz)
    rate_median_hz       median over neurons of the same rates (the rate distribution: :func:`neuron_rates`)
    isi_cv               median over neurons of cv(isi): the ISIs within trials, pooled per neuron (neurons
                         with at least MIN_ISIS intervals)
    lv                   median over neurons of the local variation (Shinomoto et al. 2003),
                         Lv = 3/(n-1) sum_i ((I_i - I_{i+1})/(I_i + I_{i+1}))^2 over consecutive ISIs within a
                         trial: Elephant's lv per trial, weighted by its pairs (neurons with MIN_ISIS intervals)
    fano_factor          mean over neurons and conditions of fanofactor (var/mean of the spike counts) over the
                         trials of one condition: the repeats of one sample (forward), the slots of a sleep block
                         (sleep); conditions with at least two trials and a mean count above 0. Elephant divides
                         the sum of squares by the n trials; times n/(n-1) here (the unbiased variance), else two
                         repeats would halve it on average
    count_correlation    mean over pairs of neurons of the Pearson correlation of their spike counts per trial
                         (correlation_coefficient of the trains binned by trial); pooled over the samples, so it
                         includes stimulus-driven (signal) correlation
    error_rate_hz        error phase: mean over neurons of the rate of signed error events in its error window
    error_sign_balance   error phase: (N+ - N-)/(N+ + N-), the layer's positive and negative events

:func:`reference_checks` sets each against the ranges of ``cortical_references.yaml`` (each with its
citations) and says which the model meets.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import yaml
from pydantic import BaseModel, ConfigDict, ValidationError, model_validator

from biograd.models.errors import ModelFileError, read_model_file

REFERENCES = Path(__file__).with_name("cortical_references.yaml")
MIN_ISIS = 3  # ISIs a neuron needs for its CV and LV
UNITS = {"rate_hz": "Hz", "rate_median_hz": "Hz", "isi_cv": "1", "lv": "1", "fano_factor": "1",
         "count_correlation": "1", "error_rate_hz": "Hz", "error_sign_balance": "1"}
COLUMNS = ["measure", "layer", "phase", "value", "unit", "n"]


class Citation(BaseModel):
    model_config = ConfigDict(extra="forbid")
    short: str  # authors and year, as the report's table shows it
    full: str  # authors, year, title, journal, volume and pages


class Reference(BaseModel):
    model_config = ConfigDict(extra="forbid")
    description: str
    phases: list[str]  # the model's phases the range is set against
    low: float | None
    high: float | None
    unit: str
    approximate: bool  # the range summarises the cited findings rather than quoting one number
    summary: str  # what the cited work found
    citations: list[Citation]

    @model_validator(mode="after")
    def _range_has_citations(self) -> Reference:
        if (self.low is not None or self.high is not None) and not self.citations:
            raise ValueError("a range needs at least one citation")
        return self


def load_references(path: Path = REFERENCES) -> dict[str, Reference]:
    """The reference ranges by measure; a broken file raises ModelFileError naming it and the key."""
    try:
        data = yaml.safe_load(read_model_file(path, "reference table"))
        return {name: Reference.model_validate(entry) for name, entry in (data or {})["measures"].items()}
    except yaml.YAMLError as err:
        raise ModelFileError(path, f"invalid YAML: {err}") from err
    except (KeyError, TypeError) as err:
        raise ModelFileError(path, "expected a mapping with the key measures") from err
    except ValidationError as err:
        first = err.errors()[0]
        raise ModelFileError(path, f"{'.'.join(map(str, first['loc']))}: {first['msg']}") from err


def _trains(segments: list, layer: int, phase: str, kinds: tuple[str, ...]) -> dict[int, list]:
    """neuron -> its SpikeTrains of ``kinds`` in the segments of ``phase`` that concern ``layer``, trial by trial
    (the kinds of one trial merged)."""
    import neo

    found: dict[int, dict[int, list]] = {}
    for k, segment in enumerate(segments):
        if segment.annotations["phase"] != phase or segment.annotations["layer"] not in (-1, layer):
            continue
        for train in segment.spiketrains:
            if train.annotations["layer"] == layer and train.annotations["kind"] in kinds:
                found.setdefault(train.annotations["neuron"], {}).setdefault(k, []).append(train)
    merged = {}
    for neuron, trials in found.items():
        merged[neuron] = [parts[0] if len(parts) == 1 else
                          neo.SpikeTrain(np.sort(np.concatenate([p.times.rescale("s").magnitude for p in parts])),
                                         units="s", t_start=parts[0].t_start, t_stop=parts[0].t_stop,
                                         **parts[0].annotations)
                          for _, parts in sorted(trials.items())]
    return merged


def neuron_rates(segments: list) -> pd.DataFrame:
    """Every recorded neuron's mean rate (Hz) per phase: spikes (forward, sleep) and error events (error)."""
    from elephant.statistics import mean_firing_rate

    rows = []
    for layer, phase in _layers_and_phases(segments):
        kinds = ("err_pos", "err_neg") if phase == "error" else ("spike",)
        for neuron, trains in sorted(_trains(segments, layer, phase, kinds).items()):
            rows.append({"layer": layer, "phase": phase, "neuron": neuron,
                         "rate_hz": float(np.mean([mean_firing_rate(t).rescale("Hz").magnitude for t in trains]))})
    return pd.DataFrame(rows, columns=["layer", "phase", "neuron", "rate_hz"])


def _layers_and_phases(segments: list) -> list[tuple[int, str]]:
    """(layer, phase) pairs with recorded trains, in order."""
    pairs = set()
    for segment in segments:
        phase = segment.annotations["phase"]
        pairs |= {(train.annotations["layer"], phase) for train in segment.spiketrains
                  if segment.annotations["layer"] in (-1, train.annotations["layer"])
                  and (train.annotations["kind"] == "spike") == (phase != "error")}
    return sorted(pairs, key=lambda p: (p[0], ("forward", "error", "sleep").index(p[1])))


def _isi_measures(trains: dict[int, list]) -> tuple[list[float], list[float]]:
    """Per neuron with at least MIN_ISIS intervals within trials: cv of its pooled ISIs, and its Lv (per trial,
    weighted by the trial's pairs of consecutive ISIs)."""
    from elephant.statistics import cv, isi, lv

    cvs, lvs = [], []
    for neuron_trains in trains.values():
        per_trial = [isi(t).rescale("s").magnitude for t in neuron_trains]
        pooled = np.concatenate(per_trial)
        if len(pooled) < MIN_ISIS:
            continue
        cvs.append(float(cv(pooled)))
        weighted = [(lv(i) * (len(i) - 1), len(i) - 1) for i in per_trial if len(i) >= 2]
        if weighted and sum(w for _, w in weighted):
            lvs.append(sum(v for v, _ in weighted) / sum(w for _, w in weighted))
    return cvs, lvs


def _fano(segments: list, layer: int, phase: str, trains: dict[int, list]) -> tuple[float, int]:
    """Mean Fano factor (unbiased variance) over (neuron, condition) with two trials or more and a mean count
    above 0, and how many such pairs."""
    from elephant.statistics import fanofactor

    chosen = [k for k, s in enumerate(segments)
              if s.annotations["phase"] == phase and s.annotations["layer"] in (-1, layer)]
    conditions = np.array([segments[k].annotations["sample"] for k in chosen])
    values = []
    for neuron_trains in trains.values():
        for condition in np.unique(conditions):
            group = [t for t, c in zip(neuron_trains, conditions, strict=True) if c == condition]
            if len(group) >= 2 and sum(len(t) for t in group) > 0:
                values.append(float(fanofactor(group)) * len(group) / (len(group) - 1))
    return (float(np.mean(values)) if values else float("nan")), len(values)


def _count_correlation(trains: dict[int, list]) -> tuple[float, int]:
    """Mean pairwise correlation of spike counts per trial (trials of one length), and the number of pairs
    it averages (pairs of neurons whose counts vary)."""
    import neo
    import quantities as pq
    from elephant.conversion import BinnedSpikeTrain
    from elephant.spike_train_correlation import correlation_coefficient

    if len(trains) < 2:
        return float("nan"), 0
    first = next(iter(trains.values()))
    if len(first) < 3:
        return float("nan"), 0
    length = float((first[0].t_stop - first[0].t_start).rescale("s").magnitude)
    joined = []
    for neuron_trains in trains.values():  # trial k moved to [k*length, (k+1)*length)
        times = [(t - t.t_start).rescale("s").magnitude + k * length for k, t in enumerate(neuron_trains)]
        joined.append(neo.SpikeTrain(np.concatenate(times) * pq.s, t_start=0 * pq.s,
                                     t_stop=len(neuron_trains) * length * pq.s))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # silent neurons: their rows are NaN, and Elephant says so
        matrix = correlation_coefficient(BinnedSpikeTrain(joined, bin_size=length * pq.s))
    pairs = matrix[np.triu_indices(len(joined), k=1)]
    pairs = pairs[np.isfinite(pairs)]
    return (float(np.mean(pairs)) if len(pairs) else float("nan")), len(pairs)


def spike_statistics(segments: list) -> pd.DataFrame:
    """The measures of the module docstring per layer and phase: measure, layer, phase, value, unit, n (the
    neurons, conditions or pairs it summarises)."""
    rows = []

    def add(measure, layer, phase, value, n):
        rows.append({"measure": measure, "layer": layer, "phase": phase, "value": value, "unit": UNITS[measure],
                     "n": n})

    rates = neuron_rates(segments)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="The 'copy' argument in Quantity")  # quantities 0.16, in Elephant
        for layer, phase in _layers_and_phases(segments):
            layer_rates = rates[(rates.layer == layer) & (rates.phase == phase)].rate_hz
            if phase == "error":
                trains = _trains(segments, layer, phase, ("err_pos", "err_neg"))
                add("error_rate_hz", layer, phase, float(layer_rates.mean()), len(layer_rates))
                counts = {kind: sum(len(t) for ts in _trains(segments, layer, phase, (kind,)).values() for t in ts)
                          for kind in ("err_pos", "err_neg")}
                total = counts["err_pos"] + counts["err_neg"]
                add("error_sign_balance", layer, phase,
                    (counts["err_pos"] - counts["err_neg"]) / total if total else float("nan"), total)
                continue
            trains = _trains(segments, layer, phase, ("spike",))
            add("rate_hz", layer, phase, float(layer_rates.mean()), len(layer_rates))
            add("rate_median_hz", layer, phase, float(layer_rates.median()), len(layer_rates))
            cvs, lvs = _isi_measures(trains)
            add("isi_cv", layer, phase, float(np.median(cvs)) if cvs else float("nan"), len(cvs))
            add("lv", layer, phase, float(np.median(lvs)) if lvs else float("nan"), len(lvs))
            add("fano_factor", layer, phase, *_fano(segments, layer, phase, trains))
            add("count_correlation", layer, phase, *_count_correlation(trains))
    return pd.DataFrame(rows, columns=COLUMNS)


def reference_checks(statistics: pd.DataFrame, references: dict[str, Reference] | None = None) -> pd.DataFrame:
    """Each statistic against its reference range: measure, layer, phase, model (value), reference (range and
    unit), citation (short), meets (yes, no; n/a without a value or a range, or for a phase the range is not for)."""
    references = load_references() if references is None else references
    rows = []
    for row in statistics.itertuples():
        ref = references.get(row.measure)
        applies = ref is not None and row.phase in ref.phases and (ref.low is not None or ref.high is not None)
        if applies:
            low, high = (-np.inf if ref.low is None else ref.low), (np.inf if ref.high is None else ref.high)
            meets = "n/a" if not np.isfinite(row.value) else "yes" if low <= row.value <= high else "no"
            span = f"{'' if ref.low is None else f'{ref.low:g}'}-{'' if ref.high is None else f'{ref.high:g}'}"
            reference = f"{'~' if ref.approximate else ''}{span}{'' if ref.unit == '1' else ' ' + ref.unit}"
        else:
            meets, reference = "n/a", "none"
        rows.append({"measure": row.measure, "layer": row.layer, "phase": row.phase, "model": row.value,
                     "n": row.n, "reference": reference,
                     "citation": "; ".join(c.short for c in ref.citations) if applies else "", "meets": meets})
    return pd.DataFrame(rows, columns=["measure", "layer", "phase", "model", "n", "reference", "citation", "meets"])
