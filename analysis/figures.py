"""Figures from tidy metrics frames (``metrics.parquet`` of a run directory), drawn with seaborn and saved as files.

Each is a :class:`matplotlib.figure.Figure` of its own, made without pyplot: no backend is chosen or
changed (a notebook keeps its inline figures, a headless process needs no display) and nothing global is kept."""

from __future__ import annotations

from pathlib import Path
from typing import get_args

import pandas as pd
import seaborn as sns
from matplotlib.figure import Figure

from biograd.models.spec import FeedbackMode


def _axes(nrows: int, ncols: int, figsize: tuple[float, float], **kwargs) -> tuple[Figure, object]:
    """A figure of its own and its grid of axes (always 2-D)."""
    fig = Figure(figsize=figsize)
    return fig, fig.subplots(nrows, ncols, squeeze=False, **kwargs)


def _save(fig: Figure, path: Path) -> Path:
    fig.tight_layout()
    fig.savefig(path, dpi=120, bbox_inches="tight")
    return path


def learning_curve(metrics: pd.DataFrame, path: Path, window: int = 10) -> Path:
    """Accuracy against training samples: online training accuracy (mean over ``window`` chunks,
    the prediction made before each sample's update), held-out accuracy after each epoch (validation,
    or test for runs without a validation split) and the final test accuracy as a point;
    beside it angle(B_l, W_l^T) per feedback layer when the run has feedback weights."""
    acc = metrics[metrics.metric == "accuracy"].copy()
    train = acc[acc.split == "train"].sort_values("samples")
    train["value"] = train.value.rolling(window, min_periods=1).mean()
    held_out = acc[acc.split.isin(["validation", "test"])].assign(curve=lambda a: a.split)
    curves = pd.concat([train.assign(curve=f"train (online, {window}-chunk mean)"), held_out])
    angles = metrics[(metrics.metric == "angle_B_WT") & (metrics.split != "sleep")]
    fig, axes = _axes(1, 2 if len(angles) else 1, (11 if len(angles) else 6, 4))
    sns.lineplot(curves, x="samples", y="value", hue="curve", marker=None, ax=axes[0, 0])
    for colour, split in enumerate(["validation", "test"], start=1):
        points = held_out[held_out.split == split]
        axes[0, 0].scatter(points.samples, points.value, color=f"C{colour}", zorder=3)
    axes[0, 0].set(xlabel="training samples", ylabel="accuracy", ylim=(0, 1), title="learning curve")
    if len(angles):
        sns.lineplot(angles.assign(layer=angles.layer.map(lambda l: f"B{int(l)}")), x="samples", y="value", hue="layer",
                     ax=axes[0, 1])
        axes[0, 1].set(xlabel="training samples", ylabel="angle(B, W^T) [deg]", ylim=(0, 95),
                       title="feedback alignment")
    return _save(fig, path)


def accuracy_curves(metrics: pd.DataFrame, path: Path) -> Path:
    """Held-out accuracy after each epoch, one line per run (``run``/``feedback`` columns, see
    biograd.runs): validation where a run has that split, else test."""
    held_out = metrics[metrics.split.isin(["validation", "test"]) & (metrics.metric == "accuracy")]
    per_epoch = held_out[held_out.split == "validation"]
    per_epoch = pd.concat([per_epoch, held_out[(held_out.split == "test") & ~held_out.run.isin(per_epoch.run)]])
    fig, ((ax,),) = _axes(1, 1, (6, 4))
    sns.lineplot(per_epoch, x="epoch", y="value", hue="feedback", style="run", markers=True, dashes=False, ax=ax)
    ax.set(ylabel="validation (or test) accuracy", title="accuracy after each epoch")
    ax.legend(fontsize=7)
    return _save(fig, path)


def sweep_figure(trials: pd.DataFrame, keys: list[str], path: Path) -> Path:
    """Validation accuracy of every trial (points, one per seed) and each setting's mean (bar), settings
    labelled by their searched values (a sweep's trials.csv)."""
    label = trials[keys].astype(str).agg(", ".join, axis=1) if keys else trials.setting.astype(str)
    frame = trials.assign(setting_label=label.to_numpy(), accuracy=trials["validation accuracy"].astype(float))
    fig, ((ax,),) = _axes(1, 1, (7, 1.2 + 0.35 * frame.setting_label.nunique()))
    sns.barplot(frame, y="setting_label", x="accuracy", errorbar=None, color="0.85", ax=ax)
    sns.stripplot(frame, y="setting_label", x="accuracy", hue="seed", ax=ax)
    low = frame.accuracy.min()
    ax.set(xlabel="validation accuracy (bar: mean over seeds)", ylabel=", ".join(k.rsplit(".", 1)[-1] for k in keys)
           or "setting",
           xlim=(max(0.0, low - 0.05), min(1.0, frame.accuracy.max() + 0.01)))
    return _save(fig, path)


def alignment_over_training(alignment: pd.DataFrame, path: Path) -> Path:
    """Angle between BioGrad's weight change and backprop (solid) or feedback alignment (dashed),
    per layer, against training samples; mean and 95% interval over the probed samples."""
    shown = alignment[alignment["mode"] != "feedback_alignment_vs_backprop"]
    layers = sorted(shown.layer.unique())
    fig, (axes,) = _axes(1, len(layers), (3.9 * len(layers) + 2, 3.5))
    for ax, layer in zip(axes, layers, strict=True):
        sns.lineplot(shown[shown.layer == layer], x="samples", y="angle_deg", hue="feedback", style="mode",
                     errorbar=("ci", 95), markers=True, legend=ax is axes[-1], ax=ax)
        ax.set(xlabel="training samples", ylabel="angle [deg]", ylim=(0, 95), title=f"W{layer}")
    sns.move_legend(axes[-1], "upper left", bbox_to_anchor=(1.02, 1), frameon=False)
    fig.suptitle("BioGrad's weight change against backprop and feedback alignment")
    return _save(fig, path)


def sleep_alignment(metrics: pd.DataFrame, path: Path) -> Path:
    """angle(B_l, W_l^T) through the warm-up sleep blocks (left) and over training (right)."""
    angles = metrics[metrics.metric == "angle_B_WT"].assign(layer=lambda d: d.layer.map(lambda l: f"B{int(l)}"))
    warmup, training = angles[angles.split == "sleep"], angles[angles.split.isin(["train", "test"])]
    fig, (axes,) = _axes(1, 2, (11, 4), sharey=True)
    if len(warmup):
        sns.lineplot(warmup.assign(chunk=warmup.chunk + 1), x="chunk", y="value", hue="feedback", style="layer",
                     ax=axes[0])
    axes[0].set(xlabel="warm-up sleep chunks", ylabel="angle(B, W^T) [deg]", ylim=(0, 95), title="warm-up sleep")
    if len(training):
        sns.lineplot(training, x="samples", y="value", hue="feedback", style="layer", ax=axes[1])
    axes[1].set(xlabel="training samples", title="during training (sleep every sleep_every samples)")
    return _save(fig, path)


def rate_distributions(rates: pd.DataFrame, path: Path) -> Path:
    """Distribution of per-neuron forward rates per layer, after each run's first and last epoch."""
    by_run = rates.groupby("run").epoch
    kept = rates[(rates.epoch == by_run.transform("min")) | (rates.epoch == by_run.transform("max"))]
    kept = kept.assign(epoch=kept.epoch.map(lambda e: f"epoch {e}"))
    feedbacks, layers = sorted(kept.feedback.unique()), sorted(kept.layer.unique())
    fig, axes = _axes(len(feedbacks), len(layers), (3.6 * len(layers) + 1.5, 3 * len(feedbacks)))
    legend_ax = axes[0, layers.index(kept[kept.feedback == feedbacks[0]].layer.max())]  # runs may differ in depth
    for row, feedback in zip(axes, feedbacks, strict=True):
        for ax, layer in zip(row, layers, strict=True):
            cell = kept[(kept.feedback == feedback) & (kept.layer == layer)]
            if not len(cell):  # no such layer in this mode's runs
                ax.set_axis_off()
                continue
            sns.histplot(cell, x="rate_hz", hue="epoch", hue_order=sorted(kept.epoch.unique()), element="step",
                         stat="probability", common_norm=False, bins=20, legend=ax is legend_ax, ax=ax)
            ax.set(xlabel="forward rate per neuron [Hz]", ylabel="fraction of neurons",
                   title=f"feedback = {feedback} | layer = {layer}")
    sns.move_legend(legend_ax, "upper left", bbox_to_anchor=(1.02, 1), frameon=False)
    return _save(fig, path)


def depth_alignment(table: pd.DataFrame, path: Path) -> Path:
    """:func:`depth_alignment_figure` saved as ``path``."""
    return _save(depth_alignment_figure(table), path)


def depth_alignment_figure(table: pd.DataFrame) -> Figure:
    """Held-out accuracy against the angle of each layer's update to backprop's over training, one panel
    per weight layer, one line per run through its epochs (first and last labelled), coloured by feedback
    mode (a :func:`biograd.analysis.depth.depth_table`; rows without probes are left out)."""
    shown = table.dropna(subset=["update_angle_deg"]).sort_values(["run", "epoch"])
    layers = sorted(shown.layer.unique())
    palette = {mode: f"C{i}" for i, mode in enumerate(get_args(FeedbackMode))}  # a mode's colour in any subset
    modes = [m for m in palette if m in set(shown.feedback)]
    fig, (axes,) = _axes(1, len(layers), (3.9 * len(layers) + 2, 3.6), sharey=True)
    for ax, layer in zip(axes, layers, strict=True):
        cell = shown[shown.layer == layer]
        sns.lineplot(cell, x="update_angle_deg", y="accuracy", hue="feedback", hue_order=modes, palette=palette,
                     units="run", estimator=None, sort=False, marker="o", legend=ax is axes[-1], ax=ax)
        for _, run in cell.groupby("run"):
            for point in (run.iloc[0], run.iloc[-1]):
                ax.annotate(f"e{point.epoch}", (point.update_angle_deg, point.accuracy), fontsize=7,
                            xytext=(3, 3), textcoords="offset points")
        ax.set(xlabel="angle(update, backprop) [deg]", ylabel="validation (or test) accuracy", title=f"W{layer}")
        ax.set_xlim(left=0)
    sns.move_legend(axes[-1], "upper left", bbox_to_anchor=(1.02, 1), frameon=False)
    fig.suptitle("accuracy against each layer's alignment with backprop, over the epochs")
    fig.tight_layout()
    return fig
