"""Markdown table of finished runs, for runs/RESULTS.md: accuracy, speed, time, command, machine.

    python runs/summarize.py runs/out/*mnist_1h*    # one row per run directory
"""

from __future__ import annotations

import sys
from pathlib import Path

import pandas as pd

from biograd.rundir import RunDirectory


def summary(path: Path) -> dict:
    run = RunDirectory(path)
    cfg, metrics = run.config, run.metrics()
    test = run.accuracy("test")
    speed = metrics[metrics.metric == "samples_per_s"].value
    angles = metrics[(metrics.metric == "angle_B_WT") & metrics.split.isin(["validation", "test"])]
    sessions = run.read_json("timings.json").get("sessions", [])
    train = metrics[(metrics.split == "train") & (metrics.metric == "accuracy") & (metrics.epoch == 1)]
    n_train, n_test = int(train.samples.max()) if len(train) else "?", cfg.data.n_test or "all"
    versions = run.read_json("versions.json")
    return {
        "run": path.name, "network": "-".join(map(str, cfg.model.sizes)), "feedback": cfg.model.feedback,
        "data": f"{cfg.data.source} ({n_train} train / {n_test} test)",
        "epochs": int(test.index.max()), "test accuracy": f"{test.iloc[-1]:.2%}",
        "angle(B,W^T) start -> end": " / ".join(f"{g.value.iloc[0]:.0f} -> {g.value.iloc[-1]:.0f}"
                                                 for _, g in angles.groupby("layer")) or "n/a",
        "samples/s (median)": f"{speed.median():.0f}", "build s": f"{sessions[0]['build_s']:.0f}" if sessions else "",
        "wall min": f"{sum(s.get('wall_s', 0) for s in sessions) / 60:.1f}",
        "status": run.read_json("status.json").get("status"), "command": f"`{versions.get('command', '')}`",
        "commit": (versions.get("git", {}).get("commit") or "")[:8],
        "machine": f"{versions['machine']['node']}, {versions['machine']['cpus']} cpus",
    }


if __name__ == "__main__":
    rows = [summary(Path(p)) for p in sys.argv[1:] if (Path(p) / "metrics.parquet").is_file()
            and (RunDirectory(p).metrics().split == "test").any()]
    print(pd.DataFrame(rows).to_markdown(index=False))
