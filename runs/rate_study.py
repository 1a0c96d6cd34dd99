"""Accuracy against firing rate (runs/RESULTS.md, "Rates"): per setting of the given sweep folders, the held-out
accuracies and the activity behind them, mean and sd over seeds with the per-seed values, as a markdown table,
and accuracy against the mean hidden rate as a figure.

    python runs/rate_study.py runs/sweeps/out/mnist_1h_rates_final [...] --figure runs/sweeps/out/rates.png

Activity is the training chunks' mean over the last epoch (biograd.recording): rate_hz and saturated_fraction of
the hidden layer (layer 1) and the output layer, the hidden layer's error events (error_rate_hz,
error_saturated_fraction). A run with ``spikes.nwb`` (record.spikes) adds Elephant's median CV of the inter-spike
intervals and the Fano factor of the hidden layer's forward phase (biograd.analysis.spike_statistics).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import matplotlib.ticker  # noqa: E402
import pandas as pd  # noqa: E402
import yaml  # noqa: E402

from biograd.rundir import RunDirectory  # noqa: E402

SETTING = {"input_regular.r_max": "r_max", "teacher.y_high": "y_high", "network.n_f": "n_f",
           "forward_synapse.eta": "eta", "network.gain_hidden": "gain_hidden"}  # config key -> column


def activity(run: RunDirectory) -> dict[str, float]:
    """The last epoch's mean activity per layer (module docstring) and, with spikes.nwb, Elephant's measures."""
    metrics = run.metrics()
    train = metrics[(metrics.split == "train") & (metrics.epoch == metrics.epoch.max())]
    mean = train.groupby(["metric", "layer"]).value.mean()
    out_layer = int(train.layer.max())
    row = {"hidden Hz": mean["rate_hz", 1], "output Hz": mean["rate_hz", out_layer],
           "hidden saturated": mean["saturated_fraction", 1], "hidden error Hz": mean["error_rate_hz", 1],
           "hidden error saturated": mean["error_saturated_fraction", 1]}
    if (run.path / "spikes.nwb").is_file():
        from biograd.analysis.spike_statistics import spike_statistics
        from biograd.analysis.spike_trains import neo_segments, read_nwb

        stats = spike_statistics(neo_segments(read_nwb(run.path / "spikes.nwb")))
        forward = stats[(stats.layer == 1) & (stats.phase == "forward")].set_index("measure").value
        row |= {"hidden ISI CV": forward.get("isi_cv"), "hidden Fano": forward.get("fano_factor")}
    return row


def setting_value(run: RunDirectory, key: str):
    """``element.parameter`` as the run had it: its config's model.params, else its equation table's value."""
    element, name = key.split(".")
    value = run.config.model.params.get(element, {}).get(name)
    if value is None:
        value = yaml.safe_load((run.equations / f"{element}.yaml").read_text())["parameters"][name]["value"]
    return f"{value:g}" if isinstance(value, float | int) else value


def runs_table(sweeps: list[Path]) -> pd.DataFrame:
    """One row per finished trial of ``sweeps``: its setting, seed, accuracies and activity."""
    rows = []
    for out in sweeps:
        for trial in pd.read_csv(out / "trials.csv", dtype={"trial": str, "run": str}).to_dict("records"):
            if trial["status"] != "finished" or not (out / trial["run"] / "config.yaml").is_file():
                continue  # a trial still training, or one whose run directory is not here (git-ignored)
            run = RunDirectory(out / trial["run"])
            setting = {column: setting_value(run, key) for key, column in SETTING.items()}
            rows.append({"sweep": out.name, **{k: str(v) for k, v in setting.items()}, "seed": trial["seed"],
                         "validation": trial["validation accuracy"], "test": trial["test accuracy"],
                         **activity(run)})
    return pd.DataFrame(rows)


def per_setting(table: pd.DataFrame) -> pd.DataFrame:
    """Per setting: accuracies as mean ± sd over seeds (percent) with the per-seed test values, and the mean
    activity over seeds."""
    keys = ["sweep", *SETTING.values()]
    grouped = table.groupby(keys, sort=False)
    out = pd.DataFrame(index=grouped.size().index)
    for accuracy in ("validation", "test"):
        out[accuracy] = grouped[accuracy].apply(lambda s: f"{100 * s.mean():.2f} ± {100 * s.std():.2f}%")
    out["test per seed"] = grouped.test.apply(lambda s: ", ".join(f"{100 * v:.2f}" for v in s))
    out["seeds"] = grouped.seed.apply(lambda s: ", ".join(map(str, s)))
    activity_columns = [c for c in table.columns if c not in [*keys, "seed", "validation", "test"]]
    out[activity_columns] = grouped[activity_columns].mean().round(3)
    return out.reset_index()


def figure(table: pd.DataFrame, path: Path) -> None:
    """Test accuracy against the hidden layer's mean rate, one point per run, one colour per setting."""
    fig, ax = plt.subplots(figsize=(5, 3.5))
    for label, group in table.groupby(["r_max", "n_f"], sort=False):
        ax.scatter(group["hidden Hz"], 100 * group["test"], label=f"r_max {label[0]}, n_f {label[1]}")
    ax.set_xlabel("hidden layer's mean forward-phase rate (Hz)")
    ax.set_ylabel("test accuracy (%)")
    ax.set_xscale("log")
    ax.xaxis.set_major_formatter(matplotlib.ticker.ScalarFormatter())
    ax.xaxis.set_minor_formatter(matplotlib.ticker.ScalarFormatter())
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=150)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("sweeps", nargs="+", type=Path, help="sweep output folders (with trials.csv)")
    parser.add_argument("--figure", type=Path, help="where to write the figure (png)")
    args = parser.parse_args()
    table = runs_table(args.sweeps)
    print(per_setting(table).to_markdown(index=False))
    if args.figure:
        figure(table, args.figure)


if __name__ == "__main__":
    main()
