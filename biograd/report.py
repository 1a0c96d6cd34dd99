"""``biograd report``: figures and a Markdown summary of one run, or of several runs compared.

Writes into ``<run>/report/`` (one run) or ``--out`` (several; never a folder inside a run directory but a
reported run's ``report/``): ``report.md`` and the figures ``accuracy.png``, ``alignment.png`` (probed runs),
``sleep_alignment.png`` (runs with feedback weights), ``depth.png`` (probed runs, when the runs have more than
one hidden layer or more than one feedback mode: accuracy against each layer's alignment with backprop) and
``rates.png`` (runs with activity recording). Every number comes from the run directories' tables
(:mod:`biograd.runs`), and for runs with ``spikes.nwb`` (``record.spikes``) from that file: Elephant's spike
statistics against cortical reference ranges (:mod:`biograd.analysis.spike_statistics`). The files are written
whole, together, once the report is complete (each through a temporary file, :func:`biograd.rundir.atomic_path`:
an error leaves none of them), and never over an existing report without ``force``.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from contextlib import ExitStack
from pathlib import Path

import pandas as pd

from biograd.analysis import figures
from biograd.analysis.depth import depth_table
from biograd.analysis.energy import energy_estimate, load_energy_table, per_sample_counts, totals
from biograd.analysis.plausibility import activity_by_layer, observable_checks, plasticity_rules, rule_summary
from biograd.rundir import RunDirectory, atomic_path, run_directory_of
from biograd.runs import RunData, combined, load_runs


def _md(frame: pd.DataFrame, digits: int = 3) -> str:
    return frame.to_markdown(index=False, floatfmt=f".{digits}g") if len(frame) else "(nothing recorded)"


def alignment_summary(alignment: pd.DataFrame) -> pd.DataFrame:
    """Mean angle and norm ratio over the probed samples, at the first and the last probed epoch."""
    at_epochs = alignment[alignment.chunk.isna()]  # probe points after the warm-up and after each epoch
    rows = []
    keys = ["run", "feedback", "source", "layer", "mode"]
    for (run, feedback, source, layer, mode), group in at_epochs.groupby(keys):
        first, last = group[group.epoch == group.epoch.min()], group[group.epoch == group.epoch.max()]
        rows.append({"run": run, "feedback": feedback, "source": source, "layer": f"W{layer}", "mode": mode,
                     "samples": first["sample"].nunique(), "first epoch": int(first.epoch.iloc[0]),
                     "angle first epoch": first.angle_deg.mean(),
                     "angle last epoch": last.angle_deg.mean(), "last epoch": int(last.epoch.iloc[0]),
                     "norm ratio last": last.norm_ratio.mean()})
    return pd.DataFrame(rows)


def angle_summary(metrics: pd.DataFrame) -> pd.DataFrame:
    """angle(B_l, W_l^T) and |B_l|/|W_l| after the warm-up (epoch 0 evaluation) and at the end."""
    test = metrics[metrics.split.isin(["validation", "test"])]
    rows = []
    for (run, layer), group in test[test.metric == "angle_B_WT"].groupby(["run", "layer"]):
        norms = test[(test.run == run) & (test.layer == layer)].pivot_table(index="epoch", columns="metric",
                                                                              values="value")
        ratio = (norms.norm_B / norms.norm_W) if {"norm_B", "norm_W"} <= set(norms) else pd.Series(dtype=float)
        rows.append({"run": run, "feedback weights": f"B{int(layer)}", "angle after warm-up": group.value.iloc[0],
                     "angle at end": group.value.iloc[-1], "|B|/|W| at end": ratio.iloc[-1] if len(ratio) else None})
    return pd.DataFrame(rows)


DEPTH_ROWS = 40  # a longer depth table shows each run's first and last epoch only


def depth_section(runs: list[RunData], metrics: pd.DataFrame, alignment: pd.DataFrame,
                  place: Callable[[str], Path]) -> list[str]:
    """The report's lines on per-layer diagnostics (:mod:`biograd.analysis.depth`) and ``depth.png`` (written to
    ``place("depth.png")``); none for runs of one feedback mode with one hidden layer."""
    if len({r.config.model.feedback for r in runs}) < 2 and max(len(r.config.model.sizes) for r in runs) < 4:
        return []
    table = full = depth_table(metrics, alignment, {r.path.name: len(r.config.model.sizes) - 1 for r in runs})
    lines = ["", "## Depth: per-layer diagnostics", "", "Per run, epoch (0: after the warm-up) and weight layer W_l: "
             "held-out accuracy, angle(B_l, W_l^T) (none for W1 and transpose feedback), the mean angle and norm "
             "ratio of BioGrad's update of W_l against backprop's over the probed samples, and the fractions of "
             "layer l's rates and error events at saturation (mean over the epoch's training chunks)."]
    if len(table) > DEPTH_ROWS:
        ends = table.groupby("run").epoch
        table = table[(table.epoch == ends.transform("min")) | (table.epoch == ends.transform("max"))]
        lines[-1] += " First and last epoch of each run."
    unprobed = sorted(set(full.run) - set(full.dropna(subset=["update_angle_deg"]).run))
    if unprobed:
        lines[-1] += (f" No probes in {', '.join(unprobed)}: no update angles there (set `record.probe_samples`, "
                      "or run `biograd probe RUN`).")
    if full[["saturated_fraction", "error_saturated_fraction"]].isna().all().all():
        lines[-1] += " No saturation fractions: the runs did not record activity (`record.activity`)."
    shown = table.drop(columns="samples").assign(layer=table.layer.map(lambda l: f"W{l}")).rename(columns={
        "accuracy_split": "split", "angle_B_WT": "angle(B, W^T)", "update_angle_deg": "angle to BP",
        "update_norm_ratio": "norm ratio to BP", "saturated_fraction": "rate saturated",
        "error_saturated_fraction": "error saturated"})
    lines += ["", _md(shown)]
    if full.update_angle_deg.notna().any():
        figures.depth_alignment(full, place("depth.png"))
        lines += ["", "![depth](depth.png)"]
    else:
        lines += ["", "No figure: it plots the update angles, and no run probed."]
    return lines


def energy_section(run: RunData, table) -> tuple[str, pd.DataFrame]:
    cfg = run.config
    estimate = energy_estimate(per_sample_counts(run.metrics, cfg.model, cfg.train.sleep_every), table)
    summary = totals(estimate)
    training = summary.query("phase == 'training' and operation == 'total'").energy_uJ.iloc[0]
    if training != training:
        return (f"**{run.label}**: no operation counts recorded (train with `record.activity`, or run "
                f"`biograd probe {run.path}`).", estimate)
    sizes = cfg.model.sizes
    flops = 6 * sum(a * b for a, b in zip(sizes[:-1], sizes[1:], strict=True))  # forward 2, backward 4 per weight
    text = (f"**{run.label}**: at least {training:.3g} uJ per training sample, "
            f"{summary.query('phase == \"inference\" and operation == \"total\"').energy_uJ.iloc[0]:.3g} uJ per "
            f"inference. The equivalent dense network needs {flops:.3g} FLOPs per training sample (forward 2, "
            f"backward 4 per weight), so a GPU matches this estimate at {training * 1e-6 / flops * 1e12:.3g} pJ per "
            f"FLOP, and the paper's {table.paper_gpu_ratio:g}x means the GPU spent "
            f"{table.paper_gpu_ratio * training * 1e-3:.3g} mJ per sample "
            f"({table.paper_gpu_ratio * training * 1e-6 / flops * 1e12:.3g} pJ per FLOP).")
    return text, estimate


def spike_section(run: RunData) -> list[str]:
    """The report's lines on ``<run>/spikes.nwb``: each spike statistic per layer and phase against its cortical
    reference range and citations (none for a run without the file)."""
    path = run.path / "spikes.nwb"
    if not path.is_file():
        return []
    from biograd.analysis.spike_statistics import load_references, reference_checks, spike_statistics
    from biograd.analysis.spike_trains import neo_segments, read_nwb

    recording = read_nwb(path)
    references = load_references()
    checks = reference_checks(spike_statistics(neo_segments(recording)), references)
    ranged = checks[checks.meets != "n/a"]
    cited = {c.short: c.full for name in dict.fromkeys(ranged.measure) for c in references[name].citations}
    lines = [f"### Spike statistics (Elephant): {run.label}", "",
             f"From `spikes.nwb`: {recording.metadata.get('description', '')}. Per layer and phase, Elephant's "
             "measures over the recorded neurons (`biograd.analysis.spike_statistics`: rates, CV of the "
             "inter-spike intervals, local variation, Fano factor over repeats, spike-count correlation over "
             "trials, error events' rate and sign balance; `n`: the neurons, conditions or pairs behind a value), "
             "against cortical reference ranges (`analysis/cortical_references.yaml`; `~`: an approximate "
             f"range). The model meets {int((ranged.meets == 'yes').sum())} of the {len(ranged)} values with a "
             "range.", "", _md(checks.assign(layer=checks.layer.astype(str)), 3), "", "References:", ""]
    lines += [f"- {short}: {full}" for short, full in cited.items()]
    return [*lines, ""]


ENERGY_DISCUSSION = """\
How to read this against the paper's "400x less energy per training sample than on GPU": the
estimate prices only the operations the model performs; a chip measurement adds routing between
cores and static power, and a GPU measurement adds everything a GPU does besides arithmetic. A
data-centre GPU running dense half-precision matrix products at full use spends well under
1 pJ per FLOP (spec-sheet figures, e.g. about 700 W for about 10^15 FLOP/s), far below the
break-even figure above: at full use, a GPU would need less energy per sample than this estimate.
The paper's ratio (Loihi against the same BioGrad training on a GPU; the GPU, the energies and the
method are not in its abstract) therefore describes online training at batch size 1, where a GPU
runs at a tiny fraction of its peak and its energy per sample is dominated by fixed costs (kernel
launches, memory traffic, idle power). The implied GPU energy per FLOP above shows how far from peak
the GPU side must have been for 400x to hold. A GPU's energy per training sample is measured from its
power log by runs/gpu_energy.py (scripts/gpu_check.sh)."""


REPORT_FILES = ("report.md", "accuracy.png", "alignment.png", "sleep_alignment.png", "depth.png", "rates.png")


def check_report_folder(out: Path, runs: list[Path], force: bool) -> None:
    """Refuse (ValueError, FileExistsError: one line naming it) a report folder ``out`` for the run directories
    ``runs`` inside a run directory other than in a reported run's ``report/`` (a run's files are its inputs and
    records), or one that holds a report's file, unless ``force``."""
    if (folder := run_directory_of(out)) is not None:
        inside = out.resolve().relative_to(folder).parts
        if folder not in {run.resolve() for run in runs} or inside[:1] != ("report",):
            raise ValueError(f"--out {out}: inside the run directory {folder}, which holds its records and its own "
                             f"report ({folder / 'report'}) only; give a folder outside it")
    if not force and (existing := next((out / name for name in REPORT_FILES if (out / name).exists()), None)):
        raise FileExistsError(f"{existing} exists: give --force to replace the report")


def write_report(paths: list[Path], out: Path | None = None, force: bool = False) -> Path:
    """Write report.md and the figures into ``out`` (checked by :func:`check_report_folder`; default
    ``<run>/report`` for one run), all at once at the end; returns the report file."""
    runs = load_runs(paths)
    if out is None:
        if len(runs) > 1:
            raise ValueError("several runs: give --out for the comparison folder")
        out = runs[0].path / "report"
    check_report_folder(out, [r.path for r in runs], force)
    made = not out.exists()
    out.mkdir(parents=True, exist_ok=True)
    try:
        with ExitStack() as files:  # each file renamed into place as the block ends, all deleted if it raises
            _write_report(runs, paths, lambda name: files.enter_context(atomic_path(out / name)))
    except BaseException:
        if made and not any(out.iterdir()):
            out.rmdir()
        raise
    return out / "report.md"


def _write_report(runs: list[RunData], paths: list[Path], place: Callable[[str], Path]) -> None:
    """The report's figures and report.md, each written to ``place(<its name>)``."""
    metrics, alignment, rates = (combined(runs, t) for t in ("metrics", "alignment", "neuron_rates"))
    figures.accuracy_curves(metrics, place("accuracy.png"))
    lines = [f"# BioGrad report: {', '.join(r.label for r in runs)}", "",
             f"Made by `biograd report {' '.join(str(p) for p in paths)}` on {time.strftime('%Y-%m-%d %H:%M')}.", "",
             "## Runs", ""]
    lines.append(_md(pd.DataFrame([{
        "run": r.path.name, "feedback": r.config.model.feedback, "sizes": "-".join(map(str, r.config.model.sizes)),
        "epochs": r.config.train.epochs, **RunDirectory(r.path).final_accuracies(),
    } for r in runs]), 4))
    lines += ["", "![accuracy](accuracy.png)", "", "## Gradient alignment", ""]
    if len(alignment):
        figures.alignment_over_training(alignment, place("alignment.png"))
        lines += ["Angle in degrees between BioGrad's measured weight change and the rate network's backprop "
                  "update (`biograd_vs_backprop`), the feedback-alignment update with the network's own B "
                  "(`biograd_vs_feedback_alignment`: error-spike quantisation and saturation), and between "
                  "those two (`feedback_alignment_vs_backprop`: feedback misalignment); mean over the probed "
                  "samples. `norm ratio`: |first| / |second|.", "", _md(alignment_summary(alignment)), "",
                  "![alignment](alignment.png)"]
    else:
        lines.append("No probes recorded (set `record.probe_samples`, or run `biograd probe RUN`).")
    lines += ["", "## Feedback weights against W^T", ""]
    angles = angle_summary(metrics)
    if len(angles):
        figures.sleep_alignment(metrics, place("sleep_alignment.png"))
        lines += [_md(angles), "", "![sleep alignment](sleep_alignment.png)"]
    else:
        lines.append("No feedback weights (transpose feedback).")
    lines += depth_section(runs, metrics, alignment, place)
    lines += ["", "## Biological plausibility", "", f"### Rules (locality audit of {runs[0].path.name}'s equation "
              "files)", "", _md(rule_summary(runs[0].path / "equations")), "", "Statements that change a plastic "
              "variable:", "", _md(plasticity_rules(runs[0].path / "equations")), ""]
    for run in runs:
        lines += [f"### Activity: {run.label}", "", _md(activity_by_layer(run.metrics)), "",
                  "Against the ranges the parameter tables declare (last recorded epoch):", "",
                  _md(observable_checks(run.metrics, run.config.model)
                      .drop(columns=["reference"])), ""]
        lines += spike_section(run)
    if len(rates):
        figures.rate_distributions(rates, place("rates.png"))
        lines += ["![rates](rates.png)", ""]
    table = load_energy_table()
    lines += ["## Energy estimate (Loihi per-operation energies)", "", f"Source: {table.source}", "",
              f"Figures: {table.verification}", "", f"What it is: {table.bound}", ""]
    for run in runs:
        text, estimate = energy_section(run, table)
        lines += [text, "", _md(totals(estimate)), "", _md(estimate), ""]
    lines += [ENERGY_DISCUSSION, ""]
    place("report.md").write_text("\n".join(lines), encoding="utf-8")
