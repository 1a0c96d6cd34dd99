"""Measured energy per training sample on a GPU, next to the Loihi estimate (the paper's comparison).

scripts/gpu_check.sh logs the board's power while runs/benchmark.py trains (``unix_s,watts`` rows, from
``nvidia-smi --query-gpu=power.draw``); each benchmark row records its training window. Per row:

    J per sample = integral of P(t) over the training window / training samples

This is the whole board's draw (static power included), against a Loihi figure that is a lower bound on
dynamic energy (analysis/loihi_energy.yaml): the ratio is an upper bound on Loihi's advantage for that
network and batch. Usage:

    python runs/gpu_energy.py SPEED_CSV POWER_CSV --loihi-uj 37.5
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import pandas as pd
import typer

from biograd.analysis.energy import measured_joules


def energy_rows(speed: pd.DataFrame, power: pd.DataFrame, loihi_uj: float) -> pd.DataFrame:
    """The benchmark rows whose training window the power log covers, with mean watts, mJ per sample and
    the ratio to the Loihi estimate."""
    rows = []
    for row in speed.dropna(subset=["train_start_unix", "train_end_unix"]).to_dict("records"):
        start, end = row["train_start_unix"], row["train_end_unix"]
        try:
            joules = measured_joules(power, start, end)
        except ValueError:
            continue  # measured outside this log
        per_sample = joules / row["train_samples"]
        rows.append({"sizes": row["sizes"], "backend": row["backend"], "replicas": row["replicas"],
                     "train_samples_per_s": row["train_samples_per_s"], "mean_watts": joules / (end - start),
                     "mJ_per_sample": per_sample * 1e3, "vs_loihi_estimate": per_sample / (loihi_uj * 1e-6)})
    return pd.DataFrame(rows)


def main(speed_csv: Path, power_csv: Path,
         loihi_uj: Annotated[float, typer.Option(help="Loihi estimate per training sample, uJ (runs/RESULTS.md)")]
         ) -> None:
    power = pd.read_csv(power_csv, names=["unix_s", "watts"], comment="#").apply(pd.to_numeric, errors="coerce")
    power = power.dropna()  # nvidia-smi writes [N/A] where a board does not report its power
    table = energy_rows(pd.read_csv(speed_csv), power, loihi_uj)
    if table.empty:
        raise typer.BadParameter(f"{power_csv}: covers none of the training windows in {speed_csv}")
    out = power_csv.with_name("gpu_energy.csv")
    table.to_csv(out, index=False)
    print(f"{table.to_string(index=False)}\nwritten to {out}")


if __name__ == "__main__":
    typer.run(main)
