"""Command line: ``biograd describe | check | train | evaluate | probe | export | report | sweep | demo``
(``--debug``: tracebacks, and Brian2's debug log and warnings, see biograd.models.backend.brian_logging).
Exit codes: 0 done; 1 failed while working (the run locked by another process, diverged, no space left on the
disk, an unexpected error); 2 refused before working (config, files, arguments); 130 or 143 stopped by SIGINT or
SIGTERM. Every error is one line."""

from __future__ import annotations

import os
import signal
import sys
import warnings
from importlib.resources import files
from pathlib import Path
from typing import Annotated, Literal

import numpy as np
import typer
from rich.console import Console

from biograd.models.errors import ModelFileError
from biograd.signals import Terminated, stops_at_once, stops_deferred


class _Console(Console):
    """rich's Console, whose prints a stop signal does not cut: its Terminated, raised after rich had written a
    line but before it emptied its buffer, left the line there, and the next print wrote it again ('run
    directory: ...' twice, above the line saying the training stopped)."""

    def print(self, *args, **kwargs) -> None:
        with stops_deferred():
            super().print(*args, **kwargs)


app = typer.Typer(add_completion=False, no_args_is_help=True, help=__doc__)
console = _Console(soft_wrap=True)  # long paths stay on one line, copyable
DEMO_CONFIG = Path(str(files("biograd.configs") / "demo.yaml"))  # runs/configs/demo.yaml, installed with the package


@app.command()
def describe(
    element: Annotated[str | None, typer.Argument(help="element name (e.g. soma); omit for the whole model")] = None,
    sizes: Annotated[str, typer.Option(help="layer sizes, e.g. 784-500-10")] = "784-500-10",
    feedback: Annotated[Literal["transpose", "fixed_random", "sleep", "transpose_residual"],
                        typer.Option(help="feedback mode")] = "sleep",
) -> None:
    """Print a Markdown description of one element or of a whole network (equations + parameters)."""
    from biograd.models.describe import describe_element, describe_model
    from biograd.models.elements import load_element
    from biograd.models.spec import NetworkSpec

    try:
        if element:
            text = describe_element(load_element(element))
        else:
            if not all(n.isdigit() for n in sizes.split("-")):
                raise ValueError(f"--sizes {sizes!r}: neurons per layer joined by '-', e.g. 784-500-10")
            text = describe_model(NetworkSpec(sizes=tuple(int(n) for n in sizes.split("-")), feedback=feedback))
    except ValueError as err:  # ModelFileError, and pydantic's errors of a bad --feedback or override
        console.print(f"[red]error:[/red] {' '.join(str(err).split())}")
        raise typer.Exit(2) from err
    sys.stdout.write(text + "\n")


@app.command()
def check(
    directory: Annotated[Path | None, typer.Argument(help="folder of .eqs files (default: equations/)")] = None,
) -> None:
    """Lint every equation file and parameter table (syntax, names, bounds, Brian2 unit checks) and the
    composition file network.yaml (its elements compose into every kind of group; each precision's variant takes
    the float element's learning rules; each rule has NxSDK's sum-of-products form at Loihi precision)."""
    # Brian2's logging set up (backend.brian_logging) as in every command that builds: the unit checks' groups,
    # made never to run, give no 'getting deleted, but was never included in a network' warning (--debug: they do)
    import biograd.models.backend  # noqa: F401
    from biograd.models.composition import COMPOSITION, FLOAT, load_composition
    from biograd.models.elements import check_units, equations_dir, load_element
    from biograd.models.loihi import check_rules

    folder = directory or equations_dir()
    if not folder.is_dir():
        console.print(f"[red]error:[/red] {folder}: no such folder of equation files")
        raise typer.Exit(2)
    files = sorted(folder.glob("*.eqs"))
    failures = 0
    for path in files:
        try:
            check_units(load_element(path))
            console.print(f"[green]ok[/green]    {path.name}")
        except ModelFileError as err:
            failures += 1
            console.print(f"[red]error[/red] {err}")
    try:
        precisions = [FLOAT, *load_composition((2, 2), "sleep", "regular", {}, folder).table.precisions]
        for feedback, encoder in (("sleep", "regular"), ("transpose", "poisson"), ("fixed_random", "events")):
            for precision in precisions:
                composition = load_composition((2, 2, 2, 2), feedback, encoder, {}, folder, precision)
                for layer in range(4):
                    for inference in (False, True):
                        composition.layer_group(layer, inference)
        check_rules(folder)
        console.print(f"[green]ok[/green]    {COMPOSITION}.yaml")
    except ModelFileError as err:
        failures += 1
        console.print(f"[red]error[/red] {err}")
    console.print(f"{len(files) + 1 - failures} of {len(files) + 1} model files pass")
    if failures or not files:
        raise typer.Exit(1)


def _fail(err: Exception) -> typer.Exit:
    console.print(f"[red]error:[/red] {err}")
    return typer.Exit(2)


@app.command()
def train(
    config: Annotated[Path | None, typer.Argument(help="run config (YAML), e.g. runs/configs/mnist_1h.yaml")] = None,
    set_: Annotated[list[str] | None, typer.Option("--set", help="override, e.g. --set train.epochs=2")] = None,
    resume: Annotated[list[Path] | None, typer.Option(
        help="continue this run directory from its last checkpoint (repeat it to continue an ensemble's runs)")] = None,
    accept_changes: Annotated[bool, typer.Option(
        help="--resume a run whose config.yaml or equation copy was edited (recorded in its history.jsonl)")] = False,
    out: Annotated[Path, typer.Option(help="folder for new run directories")] = Path("runs/out"),
    progress: Annotated[bool, typer.Option(help="progress bar")] = True,
):
    """Train from a config into a new run directory (one per replica with model.replicas: K, trained side by side
    in one build), or --resume interrupted runs."""
    if (config is None) == (not resume):
        raise _fail(ValueError("give a config file or --resume RUN_DIR (not both)"))
    if resume and set_:
        raise _fail(ValueError("--set cannot change a run that is resumed (its config.yaml is fixed)"))
    if out.exists() and not out.is_dir():
        raise _fail(ValueError(f"--out {out}: a file, not a folder for run directories"))
    runs: list = []  # this command's run directories, as soon as they exist
    try:
        with stops_at_once():  # the trainer stops at a safe point; before and after it, a signal stops at once
            return _train(config, set_ or [], resume or [], accept_changes, out, progress, runs)
    except Terminated as err:
        for run in runs:
            if not (run.path / "status.json").is_file():  # made, not yet trained
                run.set_status("failed", f"{err} before its first task")
        hint = f"; continue with: biograd train {' '.join(f'--resume {run.path}' for run in runs)}" if runs else \
            " (no run directory was made)"
        console.print(f"[red]training {err}[/red]{hint}")
        raise typer.Exit(err.exit_code) from None


def _train(config: Path | None, set_: list[str], resume: list[Path], accept_changes: bool, out: Path, progress: bool,
           runs: list):
    """The train command's work; ``runs`` receives its run directories as soon as they exist."""
    from biograd.config import load_config
    from biograd.launch import start_runs
    from biograd.rundir import DiskFullError, RunDirectory, RunLockedError
    from biograd.trainer import Trainer, TrainingDiverged

    try:
        if resume:
            runs += [RunDirectory(path) for path in resume]
            for run in (run for run in runs if run.finished):
                console.print(f"{run.path}: finished ({run.read_json('status.json').get('message')}); nothing to do")
            runs[:] = [run for run in runs if not run.finished]
            for run in runs:
                run.check_unchanged(accept_changes)
                run.check_resumable()
                run.check_ensemble(runs)
        else:
            start_runs(load_config(config, set_), root=out, made=runs, source=config)
        if not runs:
            return None
        for run in runs:
            console.print(f"run directory: {run.path}")
        Trainer(runs, progress=progress).train()
    except (ModelFileError, FileNotFoundError, ValueError) as err:
        raise _fail(err) from err
    except RunLockedError as err:
        console.print(f"[red]error:[/red] {err}")
        raise typer.Exit(1) from err
    except DiskFullError as err:
        hint = f"the last checkpoint is intact: free space, then continue with: biograd train " \
               f"{' '.join(f'--resume {run.path}' for run in runs)}" if runs else \
            "no run directory was made: free space, then train again"
        console.print(f"[red]error:[/red] {err}; {hint}")
        raise typer.Exit(1) from err
    except TrainingDiverged as err:
        messages = "\n".join(f"{run.path.name}: {run.read_json('status.json')['message']}" for run in runs)
        console.print(f"[red]training stopped:[/red] {err}\n{messages}")
        raise typer.Exit(1) from err
    for run in runs:
        _summary(run)
    return runs[0] if len(runs) == 1 else runs


def _summary(run) -> None:
    found = ", ".join(f"{name} {value:.2%}" for name, value in run.final_accuracies().items() if value is not None)
    console.print(f"[bold]{found}[/bold] after {run.config.train.epochs} epoch(s); "
                  f"metrics: {run.path / 'metrics.parquet'}; learning curve: {run.learning_curve_path}")


@app.command()
def evaluate(
    run_dir: Annotated[Path, typer.Argument(help="a run directory")],
    checkpoint: Annotated[Path | None, typer.Option(help="weights file (default: the run's last checkpoint)")] = None,
    split: Annotated[Literal["test", "validation", "train"], typer.Option(help="which split to evaluate")] = "test",
    accept_changes: Annotated[bool, typer.Option(
        help="evaluate a run whose config.yaml or equation copy was edited (recorded in its history.jsonl)")] = False,
) -> None:
    """Accuracy of a run's weights (inference-only build), overall and per class."""
    from rich.table import Table

    from biograd.chunks import Evaluator
    from biograd.data.splits import load_splits
    from biograd.rundir import RunDirectory

    try:
        run = RunDirectory(run_dir)
        run.check_unchanged(accept_changes)  # the network is built from the run's files: as they were trained
        cfg = run.config
        splits = load_splits(cfg.data, cfg.model.using(run.build_equations()))
        if (data := splits.named().get(split)) is None:
            raise ValueError(f"{run.path}: the run has no {split} split (data.validation is 0)")
        run.check_splits(splits.record())
        state, _ = run.load_checkpoint(checkpoint)
    except (ModelFileError, FileNotFoundError, ValueError, KeyError) as err:
        raise _fail(err) from err
    with run.build_folder("build_eval") as folder:  # a private one while a trainer runs the run
        backend = cfg.train.backend_in(folder)
        backend.activate()
        evaluator = Evaluator(cfg.model, {split: data}, cfg.train.eval_chunk, cfg.train.seed, run.equations, backend)
        predicted = evaluator.predict(state, split)
    table = Table("class", "samples", "accuracy", title=f"{run.path.name}: {data.name}")
    for label in np.unique(data.labels):
        mask = data.labels == label
        table.add_row(str(label), str(mask.sum()), f"{np.mean(predicted[mask] == label):.2%}")
    console.print(table)
    console.print(f"[bold]accuracy {np.mean(predicted == data.labels):.2%}[/bold] on {len(data)} samples")


@app.command()
def probe(
    run_dir: Annotated[Path, typer.Argument(help="a run directory with weights_epoch<k>.npz")],
    samples: Annotated[int, typer.Option(min=1, help="training samples to probe at every epoch's weights")] = 16,
    backend: Annotated[str | None, typer.Option(
        help="cpp_standalone | cuda_standalone | genn | numpy | cython (default: the run's)")] = None,
    set_: Annotated[list[str] | None, typer.Option(
        "--set", help="probe with another setting, e.g. --set model.params.network.gain_hidden=32 "
                      "(to posthoc_<set>/)")] = None,
    epoch: Annotated[list[int] | None, typer.Option(help="probe only this epoch's weights (repeatable)")] = None,
    accept_changes: Annotated[bool, typer.Option(
        help="probe a run whose config.yaml or equation copy was edited (recorded in its history.jsonl)")] = False,
) -> None:
    """Measure BioGrad's weight changes afterwards at a run's epoch weights (gradient alignment)."""
    import pyarrow.parquet as pq
    from rich.table import Table

    from biograd.recording import probe_run
    from biograd.rundir import RunDirectory

    try:
        run = RunDirectory(run_dir)
        run.check_unchanged(accept_changes)  # the network is built from the run's files: as they were trained
        out = probe_run(run, samples, backend, set_ or [], epoch)
    except (ModelFileError, FileNotFoundError, FileExistsError, ValueError) as err:
        raise _fail(err) from err
    alignment = pq.read_table(out / "alignment.parquet").to_pandas()
    means = alignment.groupby(["epoch", "layer", "mode"])[["angle_deg", "norm_ratio"]].mean()
    table = Table("epoch", "layer", "mode", "mean angle (deg)", "mean norm ratio", title=f"{samples} samples each")
    for (ep, layer, mode), row in means.iterrows():
        table.add_row(str(ep), f"W{layer}", mode, f"{row.angle_deg:.1f}", f"{row.norm_ratio:.2f}")
    console.print(table, width=max(console.width, 100))  # the mode names stay whole
    console.print(f"probes of {samples} samples per epoch: {out}")


@app.command()
def export(
    run_dir: Annotated[Path, typer.Argument(help="a run directory (its last checkpoint is exported)")],
    format_: Annotated[Literal["netx", "nir"], typer.Option("--format", help="netx: lava-dl HDF5 with a loihi1/ "
                                                                      "group; nir: a NIR graph")] = "netx",
    out: Annotated[Path | None, typer.Option(help="file to write (default: RUN/export.net or RUN/export.nir); in a "
                                                  "run directory only RUN/export.* or a file in RUN/export/")] = None,
    force: Annotated[bool, typer.Option(help="replace an existing --out file")] = False,
    accept_changes: Annotated[bool, typer.Option(
        help="export a run whose config.yaml or equation copy was edited (recorded in its history.jsonl)")] = False,
) -> None:
    """The trained inference network on Loihi 1's grid (a float run is quantised on it): lava-dl netx or NIR.
    Written whole or not at all; never over a run's own files, nor over an existing file without --force."""
    from biograd.export import export_run
    from biograd.rundir import CheckpointError, RunDirectory

    try:
        RunDirectory(run_dir).check_unchanged(accept_changes)  # the layers come from the run's files: as trained
        path = export_run(run_dir, format_, out, force, note=lambda line: console.print(line, markup=False))
    except (ModelFileError, FileNotFoundError, FileExistsError, CheckpointError, ValueError) as err:
        raise _fail(err) from err
    console.print(f"wrote {path}")


@app.command()
def report(
    run_dirs: Annotated[list[Path], typer.Argument(help="one or more run directories")],
    out: Annotated[Path | None, typer.Option(help="folder for a comparison of several runs "
                                                  "(default: <run>/report for a single run)")] = None,
    force: Annotated[bool, typer.Option(help="replace an existing report in that folder")] = False,
) -> None:
    """Figures and a Markdown summary (alignment, plausibility, energy) of one run, or several compared. Written
    whole or not at all; never into another run's directory, nor over an existing report without --force."""
    from biograd.report import write_report

    try:
        path = write_report(run_dirs, out, force)
    except (ModelFileError, FileNotFoundError, FileExistsError, ValueError) as err:
        raise _fail(err) from err
    console.print(f"report: {path}")


@app.command()
def sweep(
    sweep_file: Annotated[Path, typer.Argument(help="a sweep file, e.g. runs/sweeps/demo_eta.yaml")],
    out: Annotated[Path | None, typer.Option(help="the sweep's folder (default: runs/sweeps/out/<name>); "
                                                  "run again to continue it")] = None,
    workers: Annotated[int | None, typer.Option(min=1, help="worker processes of the local cluster "
                                                            "(default: one per core)")] = None,
    scheduler: Annotated[str | None, typer.Option(help="an existing Dask scheduler, e.g. tcp://host:8786")] = None,
    serial: Annotated[bool, typer.Option(help="run the trials one after another in this process (no Dask)")] = False,
    progress: Annotated[bool, typer.Option(help="progress bar over trials")] = True,
    accept_changes: Annotated[bool, typer.Option(
        help="continue trials whose config.yaml or equation copy was edited (recorded in each history.jsonl)")] = False,
) -> None:
    """Train every trial of a sweep (settings x seeds; or an Optuna study's) on Dask; tables, best setting (on
    validation), figure."""
    from rich.table import Table

    from biograd.rundir import LockLostError, RunChangedError
    from biograd.study import run_study
    from biograd.sweep import SweepLockedError, load_sweep, plan_trials, run_sweep

    folder = out
    try:
        with stops_at_once():  # Terminated, also while Dask works (the program's handler would exit at once)
            spec = load_sweep(sweep_file)
            folder = out or Path("runs/sweeps/out") / spec.name
            if spec.study:
                console.print(f"sweep {spec.name}: an Optuna study of {spec.search.budget} training samples in "
                              f"{folder} (watch it: optuna-dashboard {folder / 'study.journal'})")
                result = run_study(spec, folder, scheduler=scheduler, workers=workers, serial=serial,
                                   log=console.print if progress else None, accept_changes=accept_changes)
            else:
                trials = plan_trials(spec, folder)  # every trial's config checked before any work
                console.print(f"sweep {spec.name}: {len(trials)} trials in {folder}")
                result = run_sweep(spec, folder, trials=trials, scheduler=scheduler, workers=workers, serial=serial,
                                   progress=progress, accept_changes=accept_changes)
    except RunChangedError as err:  # a trial's run directory; the sweep's command accepts the change
        console.print(f"[red]error:[/red] {err}; continue with: biograd sweep {sweep_file} --out {folder} "
                      "--accept-changes")
        raise typer.Exit(2) from err
    except (ModelFileError, FileNotFoundError, ValueError) as err:
        raise _fail(err) from err
    except (SweepLockedError, LockLostError) as err:
        console.print(f"[red]error:[/red] {err}")
        raise typer.Exit(1) from err
    except (Terminated, KeyboardInterrupt) as err:
        code = err.exit_code if isinstance(err, Terminated) else 128 + signal.SIGINT
        again = f"biograd sweep {sweep_file}" + (f" --out {folder}" if folder else "")
        console.print(f"[red]sweep {str(err) or 'stopped by SIGINT'}[/red]; continue with: {again}")
        raise typer.Exit(code) from None
    summary = result.summary.drop(columns=["setting"])
    table = Table(*map(str, summary.columns), title=f"{spec.name}: mean and sd over seeds")
    for row in summary.itertuples(index=False):
        table.add_row(*(f"{v:.4f}" if isinstance(v, float) else str(v) for v in row))
    console.print(table)
    if not result.best:
        chosen = "none (no setting finished)"
    else:
        chosen = " ".join(f"--set {item}" for item in result.best["overrides"]) or "the base config (nothing swept)"
    console.print(f"[bold]chosen on validation:[/bold] {chosen}; tables: {folder / 'trials.csv'}, "
                  f"{folder / 'summary.csv'}, {folder / 'best.json'}")


@app.command()
def demo(
    set_: Annotated[list[str] | None, typer.Option("--set", help="override, e.g. --set train.epochs=1")] = None,
) -> None:
    """Check model files and data, train the demo config (784-100-10, embedded MNIST digits), write its report."""
    from biograd.demo import check_data, check_model_files
    from biograd.report import write_report

    check_model_files(console)
    check_data(console)
    run = train(DEMO_CONFIG, set_, resume=None, accept_changes=False, out=Path("runs/out"), progress=True)
    console.print(f"report (gradient alignment, plausibility, energy): {write_report([run.path])}")


def one_line_warning(message, category, filename, lineno, line=None) -> str:
    """A warning as the user reads it: one line, no code location (``--debug`` keeps Python's format)."""
    kind = "" if category is UserWarning else f" ({category.__name__})"
    return f"warning{kind}: {' '.join(str(message).split())}\n"


def main() -> None:
    """The ``biograd`` command: an unexpected error is one line and exit 1; ``--debug`` shows its traceback and
    keeps Brian2's debug log (``brian_debug_*.log`` in the temp folder, named with an uncaught error). SIGINT or
    SIGTERM ends every command with one line on stderr ('stopped by SIGINT') and exit 128 + the signal, as while
    the program loads (:func:`biograd.signals.exit_on_stop`); train and sweep say more (how to continue)."""
    debug = "--debug" in sys.argv
    if debug:
        sys.argv.remove("--debug")
        os.environ["BIOGRAD_DEBUG"] = "1"  # biograd.models.backend.DEBUG_VARIABLE, read as Brian2 is set up
    else:
        warnings.formatwarning = one_line_warning
    try:
        with stops_at_once():  # Terminated, a BaseException that typer and the commands' error handling let pass
            app()
    except Terminated as err:
        print(err, file=sys.stderr, flush=True)
        sys.exit(err.exit_code)
    except Exception as err:  # noqa: BLE001 - the last resort: every expected error is handled by its command
        from biograd.rundir import DiskFullError

        if debug:
            raise
        if isinstance(err, DiskFullError):  # any command's write (rundir.atomic_path): names the file and the disk
            console.print(f"[red]error:[/red] {err}")
            sys.exit(1)
        console.print(f"[red]error:[/red] {type(err).__name__}: {' '.join(str(err).split())} "
                      "(biograd --debug ... shows the traceback)")
        sys.exit(1)


if __name__ == "__main__":
    main()
