"""Energy estimate: the operations one sample costs, priced with Loihi's per-operation energies.

Operation counts come from a run's metrics (:mod:`biograd.analysis.activity`): per training sample
from the training chunks (split ``train``) or, for runs trained without activity recording, from
probes (``probe``); per sleep block from ``sleep`` or ``probe_sleep``. With a sleep block every
``sleep_every`` samples:

    training sample   synaptic ops      = synops_forward + synops_error + synops_sleep / sleep_every
                      synaptic updates  = updates_learning + updates_sleep / sleep_every
                      neuron updates    = neuron_updates + neuron_updates_sleep / sleep_every
    inference         synaptic ops      = synops_forward  (the forward phase is the same network run)
                      neuron updates    = sum_l N_l * n_f

    energy = sum_op count_op * E_op            (E_op from analysis/loihi_energy.yaml)

This prices the operations the Brian2 model performs, on all-to-all synapses, with one update per
neuron and time step, each at its smallest Table 2 figure: a lower bound on dynamic energy. It leaves
out spike routing, static power, barrier synchronisation, the extra compartments of a multi-compartment
neuron and host I/O, which a measurement on the chip includes (the table's ``bound`` says so).
"""

from __future__ import annotations

from pathlib import Path

import brian2 as b2
import numpy as np
import pandas as pd
import yaml
from pydantic import BaseModel, ConfigDict, ValidationError, field_validator

from biograd.models.errors import ModelFileError, read_model_file
from biograd.models.spec import NetworkSpec
from biograd.models.units import parse_as, parse_quantity

ENERGY_TABLE = Path(__file__).with_name("loihi_energy.yaml")
PARTS = {  # (phase, operation, part) -> (split kinds, metric, divide by sleep_every)
    ("training", "synaptic_op", "forward"): ("train", "synops_forward", False),
    ("training", "synaptic_op", "error"): ("train", "synops_error", False),
    ("training", "synaptic_op", "sleep"): ("sleep", "synops", True),
    ("training", "synaptic_update", "learning"): ("train", "updates_learning", False),
    ("training", "synaptic_update", "sleep"): ("sleep", "updates", True),
    ("training", "neuron_update", "slot"): ("train", "neuron_updates", False),
    ("training", "neuron_update", "sleep"): ("sleep", "neuron_updates", True),
    ("inference", "synaptic_op", "forward"): ("train", "synops_forward", False),
}
SOURCES = {"train": ("train", "probe"), "sleep": ("sleep", "probe_sleep")}  # preferred first


class Operation(BaseModel):
    model_config = ConfigDict(extra="forbid")
    energy: str
    description: str

    @field_validator("energy")
    @classmethod
    def _is_energy(cls, value: str) -> str:
        parse_as(value, b2.joule, "energy must be an energy such as '23.6 pjoule'")
        return value

    def joules(self) -> float:
        return float(parse_quantity(self.energy) / b2.joule)


class EnergyTable(BaseModel):
    model_config = ConfigDict(extra="forbid")
    source: str
    verification: str
    bound: str  # what the estimate is (a lower bound on dynamic energy) and what it leaves out
    operations: dict[str, Operation]
    paper_gpu_ratio: float


def load_energy_table(path: Path = ENERGY_TABLE) -> EnergyTable:
    """The per-operation energies; a broken file raises ModelFileError naming it and the key."""
    try:
        table = EnergyTable.model_validate(yaml.safe_load(read_model_file(path, "energy table")))
    except yaml.YAMLError as err:
        raise ModelFileError(path, f"invalid YAML: {err}") from err
    except ValidationError as err:
        first = err.errors()[0]
        raise ModelFileError(path, f"{'.'.join(map(str, first['loc']))}: {first['msg']}") from err
    missing = {op for _, op, _ in PARTS} - table.operations.keys()
    if missing:
        raise ModelFileError(path, f"operations: missing {sorted(missing)}")
    return table


def _latest(metrics: pd.DataFrame, kind: str, metric: str, epoch: int | None, sleeps: bool) -> float:
    """The mean of the last recorded epoch; nan if nothing was recorded (0 for sleep in a run without sleep)."""
    for split in SOURCES[kind]:
        rows = metrics[(metrics.split == split) & (metrics.metric == metric)]
        if epoch is not None:
            rows = rows[rows.epoch == epoch]
        if len(rows):
            return float(rows[rows.epoch == rows.epoch.max()].value.mean())
    return 0.0 if kind == "sleep" and not sleeps else float("nan")


def per_sample_counts(metrics: pd.DataFrame, spec: NetworkSpec, sleep_every: int,
                      epoch: int | None = None) -> pd.DataFrame:
    """Counts per training sample and per inference: rows (phase, operation, part, count).

    Values are the mean over the recorded chunks of ``epoch`` (default: the last epoch recorded);
    a count nothing recorded is nan (run ``biograd probe`` on runs without recording).
    """
    sleeps = spec.feedback == "sleep" and spec.n_layers >= 2
    rows = []
    for (phase, operation, part), (kind, metric, per_block) in PARTS.items():
        count = _latest(metrics, kind, metric, epoch, sleeps)
        rows.append({"phase": phase, "operation": operation, "part": part,
                     "count": count / sleep_every if per_block else count})
    rows.append({"phase": "inference", "operation": "neuron_update", "part": "forward",
                 "count": float(sum(spec.sizes) * spec.n_f)})
    return pd.DataFrame(rows)


def energy_estimate(counts: pd.DataFrame, table: EnergyTable | None = None) -> pd.DataFrame:
    """``counts`` with the energy of each row (``energy_uJ``), priced with ``table``."""
    table = table or load_energy_table()
    joules = counts.operation.map(lambda op: table.operations[op].joules())
    return counts.assign(energy_uJ=counts["count"] * joules * 1e6)


def totals(estimate: pd.DataFrame) -> pd.DataFrame:
    """Per phase and operation: count and energy, plus a total row per phase (nan if a part is unknown)."""
    exact = lambda values: values.sum(skipna=False)  # noqa: E731 (an unknown part makes the sum unknown)
    by_op = estimate.groupby(["phase", "operation"], as_index=False)[["count", "energy_uJ"]].agg(exact)
    total = by_op.groupby("phase", as_index=False)[["energy_uJ"]].agg(exact).assign(operation="total")
    return pd.concat([by_op, total], ignore_index=True).sort_values(["phase", "operation"], ignore_index=True)


def measured_joules(power: pd.DataFrame, start: float, end: float) -> float:
    """Energy drawn in [start, end] from a power log (columns ``unix_s``, ``watts``, e.g. nvidia-smi's
    power.draw sampled with timestamps): the trapezoid integral of the log, linearly interpolated at both
    ends, ``E = integral_start^end P(t) dt``. The log must cover the window."""
    log = power.sort_values("unix_s")
    t, watts = log.unix_s.to_numpy(float), log.watts.to_numpy(float)
    if len(t) < 2 or t[0] > start or t[-1] < end:
        raise ValueError(f"the power log ({len(t)} samples) does not cover the window [{start:.1f}, {end:.1f}] s")
    inside = (t > start) & (t < end)
    grid = np.concatenate([[start], t[inside], [end]])
    return float(np.trapezoid(np.interp(grid, t, watts), grid))
