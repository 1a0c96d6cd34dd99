"""Run directories as tidy pandas frames, for reports, notebooks and comparisons.

Every frame gets the columns ``run`` (the run directory's name) and ``feedback`` (its feedback
mode), so frames of several runs concatenate and plot with ``hue="feedback"``. Tables a run made
afterwards with ``biograd probe`` (``posthoc/``) are appended to the ones recorded in training,
marked by ``source`` = ``posthoc`` (``training`` otherwise).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import pyarrow.parquet as pq

from biograd.config import RunConfig
from biograd.rundir import RunDirectory

RUNS_VARIABLE = "BIOGRAD_RUNS"  # run directories for the notebooks, separated by os.pathsep


@dataclass
class RunData:
    """One run's config and tidy tables."""

    path: Path
    config: RunConfig
    metrics: pd.DataFrame
    alignment: pd.DataFrame
    neuron_rates: pd.DataFrame

    @property
    def label(self) -> str:
        """The run directory's name (unique: time, config name and hash) and the feedback mode."""
        return f"{self.path.name} ({self.config.model.feedback})"


def _tag(frame: pd.DataFrame, run: RunDirectory, config: RunConfig, source: str) -> pd.DataFrame:
    return frame.assign(run=run.path.name, feedback=config.model.feedback, source=source)


def load_run(path: str | Path) -> RunData:
    run = RunDirectory(path)
    config = run.config
    tables = {"metrics": run.metrics()} | {name: run.table(name) for name in ("alignment", "neuron_rates")}
    tables = {name: _tag(frame, run, config, "training") for name, frame in tables.items()}
    for name in ("metrics", "alignment"):
        posthoc = run.path / "posthoc" / f"{name}.parquet"
        if posthoc.is_file():
            extra = _tag(pq.read_table(posthoc).to_pandas(), run, config, "posthoc")
            tables[name] = pd.concat([tables[name], extra], ignore_index=True) if len(tables[name]) else extra
    return RunData(run.path, config, **tables)


def load_runs(paths) -> list[RunData]:
    return [load_run(p) for p in paths]


def combined(runs: list[RunData], table: str) -> pd.DataFrame:
    """One table of several runs, one below the other."""
    frames = [getattr(r, table) for r in runs if len(getattr(r, table))]
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()


def runs_from_environment(default: str = "runs/out/*") -> list[Path]:
    """Run directories named in ``BIOGRAD_RUNS`` (os.pathsep-separated), else the finished runs matching
    ``default`` (a glob relative to the working directory)."""
    named = os.environ.get(RUNS_VARIABLE)
    if named:
        return [Path(p) for p in named.split(os.pathsep) if p]
    return sorted(p.parent for p in Path().glob(f"{default}/status.json")
                  if RunDirectory(p.parent).read_json("status.json").get("status") == "finished")
