"""Depth: per-layer diagnostics of runs over training, one row per run, epoch and weight layer.

Derived from the tidy frames of several runs (:func:`biograd.runs.combined`; columns ``run`` and
``feedback``), nothing re-recorded. Weight layer l = 1..L is W_l (neuron layer l-1 -> l); its update
is dW_l = eta delta_l r_{l-1}^T, with delta_l carried by layer l's error events and gated by layer
l's rates, and B_l (l >= 2) sends delta_l back to layer l-1 in place of W_l^T. At epoch e (0: after
the warm-up, before training; e >= 1: after training epoch e):

    accuracy                  held-out accuracy of the evaluation after epoch e: validation where the
                              run has that split, else test (``accuracy_split`` says which)
    angle_B_WT                angle(B_l, W_l^T) = arccos(<B_l, W_l^T> / (|B_l| |W_l|)) in degrees at that
                              evaluation; NaN for l = 1 and for transpose feedback (no B)
    update_angle_deg          mean over the probed samples s of angle(dW_l^BioGrad(s), dW_l^BP(s)),
                              the weights as at the evaluation (probe point after epoch e;
                              :mod:`biograd.analysis.alignment`, mode ``biograd_vs_backprop``);
                              samples with an undefined angle (a zero update) are left out
    update_norm_ratio         mean over the probed samples of |dW_l^BioGrad(s)| / |dW_l^BP(s)|
    saturated_fraction        mean over epoch e's training chunks of the fraction of (sample, neuron)
                              pairs of layer l that fire in every forward step they can
                              (:mod:`biograd.analysis.activity`); NaN at epoch 0 (no training chunk)
    error_saturated_fraction  the same for layer l's error events: |n_error| >= n_e

Probes recorded during training (``source`` = ``training``) are used where a run has them at that
epoch, else those of ``biograd probe`` (``posthoc``); the update columns are NaN without probes,
the saturation columns without activity recording (``record.activity``).
"""

from __future__ import annotations

from collections.abc import Mapping

import pandas as pd

COLUMNS = ["run", "feedback", "epoch", "samples", "layer", "accuracy", "accuracy_split", "angle_B_WT",
           "update_angle_deg", "update_norm_ratio", "saturated_fraction", "error_saturated_fraction"]
SATURATION = ("saturated_fraction", "error_saturated_fraction")
KEYS = ["run", "epoch", "layer"]


def _by_layer(rows: pd.DataFrame) -> pd.DataFrame:
    """``run, epoch, layer, value`` of metrics rows, the layer as an integer (metrics store it as float)."""
    return rows[[*KEYS, "value"]].astype({"epoch": int, "layer": int})


def _held_out(metrics: pd.DataFrame) -> pd.DataFrame:
    """The per-epoch evaluations: validation accuracy rows, or test for runs without validation."""
    accuracy = metrics[(metrics.metric == "accuracy") & metrics.split.isin(["validation", "test"])
                       & metrics.chunk.isna()]
    with_validation = accuracy[accuracy.split == "validation"].run.unique()
    kept = accuracy[(accuracy.split == "validation") | ~accuracy.run.isin(with_validation)]
    return kept.rename(columns={"value": "accuracy", "split": "accuracy_split"}).astype({"epoch": int})[
        ["run", "feedback", "epoch", "samples", "accuracy", "accuracy_split"]]


def _update_alignment(alignment: pd.DataFrame) -> pd.DataFrame:
    """Mean angle and norm ratio against backprop per run, epoch and layer at the end-of-epoch probe points."""
    columns = [*KEYS, "update_angle_deg", "update_norm_ratio"]
    if not len(alignment):
        return pd.DataFrame(columns=columns).astype({"epoch": int, "layer": int})
    probes = alignment[alignment.chunk.isna() & (alignment["mode"] == "biograd_vs_backprop")]
    rank = probes.source.map({"training": 0}).fillna(1)  # training probes before posthoc ones
    preferred = probes[rank == rank.groupby([probes.run, probes.epoch]).transform("min")]
    means = preferred.groupby(KEYS)[["angle_deg", "norm_ratio"]].mean().reset_index()
    return means.rename(columns={"angle_deg": "update_angle_deg", "norm_ratio": "update_norm_ratio"})[columns]


def depth_table(metrics: pd.DataFrame, alignment: pd.DataFrame,
                n_layers: Mapping[str, int] | None = None) -> pd.DataFrame:
    """The per-layer-per-epoch table of the module docstring (columns :data:`COLUMNS`), from the
    combined ``metrics`` and ``alignment`` frames of one or several runs. ``n_layers``: weight layers L
    per run (``len(sizes) - 1``); without it, the layers any of the run's rows name."""
    held_out = _held_out(metrics)
    if n_layers is not None:
        layers = pd.DataFrame([{"run": run, "layer": l} for run, L in n_layers.items() for l in range(1, L + 1)])
    else:
        named = metrics[metrics.metric.isin(["angle_B_WT", *SATURATION]) & (metrics.layer >= 1)]
        layers = pd.concat([named[["run", "layer"]], alignment[["run", "layer"]] if len(alignment) else None])
        layers = layers.drop_duplicates().astype({"layer": int})
    frame = held_out.merge(layers, on="run")
    evaluated = metrics[(metrics.metric == "angle_B_WT") & metrics.split.isin(["validation", "test"])]
    frame = frame.merge(_by_layer(evaluated).rename(columns={"value": "angle_B_WT"}), on=KEYS, how="left")
    frame = frame.merge(_update_alignment(alignment), on=KEYS, how="left")
    for metric in SATURATION:
        chunks = _by_layer(metrics[(metrics.metric == metric) & (metrics.split == "train")])
        frame = frame.merge(chunks.groupby(KEYS).value.mean().rename(metric).reset_index(), on=KEYS, how="left")
    values = ["angle_B_WT", "update_angle_deg", "update_norm_ratio", *SATURATION]
    frame[values] = frame[values].astype(float)
    return frame[COLUMNS].sort_values(["feedback", "run", "layer", "epoch"]).reset_index(drop=True)
