"""Biological plausibility of a run: its rules' locality and triggers, and its activity against
the ranges its parameter tables declare.

* :func:`rule_summary` - per element, from the locality audit of the run's equation files: how
  many statements, how many event-driven / clock-driven, how many non-local (and declared so).
* :func:`plasticity_rules` - the statements that change a plastic variable (forward weight ``w``,
  feedback weight ``b``, sleep bias ``b_soma``), with their trigger and event.
* :func:`activity_by_layer` - rates, silent / saturated fractions, spikes and error events per
  sample and layer, at the first and last recorded epoch (training chunks, else probes).
* :func:`observable_checks` - each observable a table declares (``observables:`` in
  ``equations/<element>.yaml``) for every layer whose group uses the element, measured value
  against the declared range.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from biograd.analysis.activity import LAYER_METRICS
from biograd.analysis.locality import audit
from biograd.models.params import OBSERVABLES
from biograd.models.spec import NetworkSpec
from biograd.models.units import parse_unit

PLASTIC = {"w", "b", "b_soma"}  # forward weight, feedback weight, homeostatic sleep bias
MEASURED = {"rate": "rate_hz", "silent_fraction": "silent_fraction", "saturated_fraction": "saturated_fraction",
            "error_rate": "error_rate_hz", "error_saturated_fraction": "error_saturated_fraction"}


def rule_summary(equations: Path) -> pd.DataFrame:
    """Statements per element, by trigger, and the non-local ones (declared or not)."""
    df = audit(equations)
    df = df.assign(event_driven=df.trigger == "event-driven", clock_driven=df.trigger == "clock-driven",
                   nonlocal_=~df.local)
    summary = df.groupby(["element", "kind"], as_index=False).agg(
        statements=("statement", "size"), event_driven=("event_driven", "sum"), clock_driven=("clock_driven", "sum"),
        nonlocal_statements=("nonlocal_", "sum"), declared_nonlocal=("declared_exception", "any"))  # a flag
    return summary.rename(columns={"nonlocal_statements": "non_local"})


def plasticity_rules(equations: Path) -> pd.DataFrame:
    """Every statement that writes a plastic variable: element, section, event, trigger, local."""
    df = audit(equations)
    writes = df.writes.map(lambda w: bool(set(w) & PLASTIC))
    return df[writes][["element", "section", "event", "statement", "trigger", "local", "reason"]].reset_index(drop=True)


def _split_with(metrics: pd.DataFrame, metric: str) -> pd.DataFrame:
    """Rows of ``metric`` from training chunks, else from probes (training-time probes before posthoc ones)."""
    for split in ("train", "probe"):
        rows = metrics[(metrics.split == split) & (metrics.metric == metric) & metrics.layer.notna()]
        if "source" in rows and rows.source.nunique() > 1:
            rows = rows[rows.source == "training"]
        if len(rows):
            return rows
    return rows


def activity_by_layer(metrics: pd.DataFrame) -> pd.DataFrame:
    """Per layer and metric: the value at the first and at the last recorded epoch (means over chunks)."""
    rows = []
    for metric in LAYER_METRICS:
        found = _split_with(metrics, metric)
        if not len(found):
            continue
        first, last = found.epoch.min(), found.epoch.max()
        for layer, group in found.groupby("layer"):
            rows.append({"layer": int(layer), "metric": metric, "split": group.split.iloc[0],
                         "first_epoch": int(first), "first": group[group.epoch == first].value.mean(),
                         "last_epoch": int(last), "last": group[group.epoch == last].value.mean()})
    return pd.DataFrame(rows, columns=["layer", "metric", "split", "first_epoch", "first", "last_epoch", "last"])


def observable_checks(metrics: pd.DataFrame, spec: NetworkSpec) -> pd.DataFrame:
    """Measured observables (last recorded epoch) against the ranges the parameter tables of ``spec``'s
    equation files (a run's: ``RunDirectory.config.model``) declare."""
    activity = activity_by_layer(metrics).set_index(["layer", "metric"])
    composition = spec.composition
    rows = []
    for layer in range(spec.n_layers + 1):
        for element in composition.group_elements(composition.layer_kind(layer)):
            name = element.name
            for observable, declared in element.table.observables.items():
                unit = parse_unit(OBSERVABLES[observable])
                low, high = (None if b is None else float(b / unit) for b in declared.bounds())
                key = (layer, MEASURED[observable])
                value = activity.loc[key, "last"] if key in activity.index else float("nan")
                within = bool(value == value and (low is None or value >= low) and (high is None or value <= high))
                rows.append({"layer": layer, "element": name, "observable": observable,
                             "unit": OBSERVABLES[observable], "measured": value, "low": low, "high": high,
                             "within": within if value == value else None,
                             "reconstruction": declared.reconstruction, "reference": declared.reference})
    return pd.DataFrame(rows, columns=["layer", "element", "observable", "unit", "measured", "low", "high", "within",
                                       "reconstruction", "reference"])
