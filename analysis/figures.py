"""Figures from tidy metrics frames (``metrics.parquet`` of a run directory), drawn with seaborn."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402
import seaborn as sns  # noqa: E402


def learning_curve(metrics: pd.DataFrame, path: Path, window: int = 10) -> Path:
    """Accuracy against training samples: online training accuracy (mean over ``window`` chunks,
    the prediction made before each sample's update) and held-out test accuracy after each epoch;
    beside it angle(B_l, W_l^T) per feedback layer when the run has feedback weights."""
    acc = metrics[metrics.metric == "accuracy"].copy()
    train = acc[acc.split == "train"].sort_values("samples")
    train["value"] = train.value.rolling(window, min_periods=1).mean()
    curves = pd.concat([train.assign(curve=f"train (online, {window}-chunk mean)"), acc[acc.split == "test"]
                        .assign(curve="test")])
    angles = metrics[(metrics.metric == "angle_B_WT") & (metrics.split != "sleep")]
    fig, axes = plt.subplots(1, 2 if len(angles) else 1, figsize=(11 if len(angles) else 6, 4), squeeze=False)
    sns.lineplot(curves, x="samples", y="value", hue="curve", marker=None, ax=axes[0, 0])
    test = curves[curves.curve == "test"]
    axes[0, 0].scatter(test.samples, test.value, color="C1", zorder=3)
    axes[0, 0].set(xlabel="training samples", ylabel="accuracy", ylim=(0, 1), title="learning curve")
    if len(angles):
        sns.lineplot(angles.assign(layer=angles.layer.map(lambda l: f"B{int(l)}")), x="samples", y="value", hue="layer",
                     ax=axes[0, 1])
        axes[0, 1].set(xlabel="training samples", ylabel="angle(B, W^T) [deg]", ylim=(0, 95),
                       title="feedback alignment")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path
