"""Sweeps: trials planned from a sweep file, run on a Dask LocalCluster or serially with the same
results, resumed, summarised and chosen on validation; a worker killed mid-sweep does not lose it."""

import json
import os
import re
import shutil
import signal
import threading
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from biograd.config import load_config
from biograd.models.errors import ModelFileError
from biograd.rundir import RunDirectory
from biograd.sweep import _ended_rows, adopt_trials, dask_client, load_sweep, plan_trials, run_sweep, summarise

BASE = """\
name: tiny
model: {sizes: [64, 12, 10], feedback: sleep}
data: {source: sklearn, n_train: 20, validation: 10, n_test: 10}
train: {epochs: 1, sleep_every: 20, chunk: 20, sleep_duration: 100 ms, backend: numpy}
"""

SWEEP = """\
name: tiny_sweep
base: tiny.yaml
set: [record.probe_samples=0]
grid:
  model.params.forward_synapse.eta: [0.01, 0.05]
seeds: [0, 1]
"""


@pytest.fixture
def sweep_file(tmp_path) -> Path:
    (tmp_path / "tiny.yaml").write_text(BASE)
    path = tmp_path / "sweep.yaml"
    path.write_text(SWEEP)
    return path


def _weights(folder: Path, trial: str) -> dict:
    run = RunDirectory(next((folder / "trials" / trial).iterdir()))
    return run.load_checkpoint()[0].named()


def test_plan_names_trials_by_their_config_and_checks_them_first(sweep_file, tmp_path):
    sweep = load_sweep(sweep_file)
    trials = plan_trials(sweep, tmp_path / "out")
    assert [(t.setting, t.seed) for t in trials] == [(0, 0), (0, 1), (1, 0), (1, 1)]
    assert len({t.id for t in trials}) == 4 and "train.final_test=false" in trials[0].overrides
    assert [t.id for t in plan_trials(sweep, tmp_path / "out")] == [t.id for t in trials]  # stable names
    model = "model: {sizes: [64, 12, 10], feedback: sleep}"
    gain = model.replace("}", ", params: {network: {gain_hidden: 8}}}")
    eta_and_gain = model.replace("}", ", params: {forward_synapse: {eta: 0.3}, network: {gain_hidden: 8}}}")
    (tmp_path / "tiny.yaml").write_text(BASE.replace(model, gain))
    named = [t.id for t in plan_trials(sweep, tmp_path / "out")]
    (tmp_path / "tiny.yaml").write_text(BASE.replace(model, eta_and_gain))  # eta is searched: the same trials
    assert [t.id for t in plan_trials(sweep, tmp_path / "out")] == named
    (tmp_path / "tiny.yaml").write_text(BASE.replace("epochs: 1", "epochs: 2"))
    assert not {t.id for t in plan_trials(sweep, tmp_path / "out")} & {t.id for t in trials}  # a new base: new trials
    sweep_file.write_text(SWEEP.replace("forward_synapse.eta", "forward_synapse.etta"))
    with pytest.raises(ModelFileError, match=r"etta"):
        plan_trials(load_sweep(sweep_file), tmp_path / "out")
    sweep_file.write_text(SWEEP + "search: {strategy: random, n: 2, space: {model.params.forward_synapse.eta: "
                                  "{choice: [1]}}}\n")
    with pytest.raises(ModelFileError, match=r"sweep.yaml.*searched in both grid and search"):
        load_sweep(sweep_file)


def test_random_search_draws_reproducibly(sweep_file):
    sweep_file.write_text(SWEEP.replace("grid:\n  model.params.forward_synapse.eta: [0.01, 0.05]\n", "") +
                          "search:\n  strategy: random\n  n: 5\n  seed: 3\n  space:\n"
                          "    model.params.forward_synapse.eta: {log_uniform: [0.001, 0.1]}\n"
                          "    train.sleep_every: {choice: [20, 40]}\n")
    settings = load_sweep(sweep_file).settings()
    assert settings == load_sweep(sweep_file).settings() and len(settings) == 5
    assert all(0.001 <= s["model.params.forward_synapse.eta"] <= 0.1 and s["train.sleep_every"] in (20, 40)
               for s in settings)
    assert len({s["model.params.forward_synapse.eta"] for s in settings}) == 5


@pytest.mark.slow  # two sweeps of four tiny trials (~25 s CPU); the fast tier keeps the serial sweep's tests
def test_dask_sweep_equals_serial_sweep_and_resumes(sweep_file, tmp_path):
    sweep = load_sweep(sweep_file)
    serial = run_sweep(sweep, tmp_path / "serial", serial=True, progress=False)
    parallel = run_sweep(sweep, tmp_path / "dask", workers=2, progress=False)
    columns = ["trial", "setting", "seed", "status", "validation accuracy"]
    pd.testing.assert_frame_equal(serial.trials[columns], parallel.trials[columns])
    for trial in serial.trials.trial:
        a, b = _weights(tmp_path / "serial", trial), _weights(tmp_path / "dask", trial)
        assert all(np.array_equal(a[k], b[k]) for k in a), trial
    assert (serial.trials.status == "finished").all() and serial.trials["test accuracy"].isna().all()
    summary = serial.summary.set_index("setting")
    for setting, group in serial.trials.groupby("setting"):
        values = group["validation accuracy"]
        assert summary.loc[setting, "validation mean"] == pytest.approx(values.mean())
        assert summary.loc[setting, "validation sd"] == pytest.approx(values.std(ddof=1))
    best = json.loads((tmp_path / "serial" / "best.json").read_text())
    assert best["validation mean"] == pytest.approx(summary["validation mean"].max())
    assert (tmp_path / "serial" / "sweep.png").stat().st_size > 5_000
    modified = {p: p.stat().st_mtime_ns for p in (tmp_path / "serial" / "trials").glob("*/*/checkpoint.npz")}
    again = run_sweep(sweep, tmp_path / "serial", serial=True, progress=False)  # finished trials are read
    assert {p: p.stat().st_mtime_ns for p in modified} == modified
    pd.testing.assert_frame_equal(again.trials.drop(columns="minutes"), serial.trials.drop(columns="minutes"))
    shutil.rmtree(tmp_path / "serial" / "trials")  # run directories deleted: trials.csv keeps their results
    kept = run_sweep(sweep, tmp_path / "serial", serial=True, progress=False)
    assert not (tmp_path / "serial" / "trials").exists(), "no trial trained again"
    assert kept.trials.to_csv(index=False) == again.trials.to_csv(index=False)  # the table, as written


@pytest.mark.slow
def test_a_worker_killed_mid_sweep_is_replaced_and_its_trial_continues(sweep_file, tmp_path):
    """On an existing cluster (--scheduler), SIGKILL to the worker of a running trial: the nanny starts a
    new worker, the trial continues from its checkpoint, and the results equal a serial sweep's."""
    import dask
    from dask.distributed import Client, LocalCluster

    (tmp_path / "tiny.yaml").write_text(BASE.replace("n_train: 20", "n_train: 40"))  # 2 chunks: time to kill one
    sweep = load_sweep(sweep_file)
    with dask.config.set({"distributed.worker.daemon": False}), \
            LocalCluster(n_workers=2, threads_per_worker=1, host="127.0.0.1", dashboard_address=":0") as cluster, \
            Client(cluster) as client:
        pids = client.run(os.getpid)  # worker address -> process id
        killed = []

        def kill_the_worker_of_the_first_checkpointed_trial():
            deadline = time.monotonic() + 120
            while time.monotonic() < deadline:
                for checkpoint in (tmp_path / "out" / "trials").glob("*/*/checkpoint.npz"):
                    trial = checkpoint.parent.parent.name
                    running = [address for address, keys in client.processing().items() if f"trial-{trial}" in keys]
                    if running and json.loads((checkpoint.parent / "status.json").read_text())["status"] == "running":
                        os.kill(pids[running[0]], signal.SIGKILL)
                        killed.append(checkpoint.parent)
                        return
                time.sleep(0.05)

        killer = threading.Thread(target=kill_the_worker_of_the_first_checkpointed_trial)
        killer.start()
        result = run_sweep(sweep, tmp_path / "out", scheduler=cluster.scheduler_address, progress=False)
        assert len(client.scheduler_info()["workers"]) == 2, "the sweep left the existing cluster running"
        killer.join()
    assert killed, "no worker was killed"
    assert (result.trials.status == "finished").all()
    sessions = RunDirectory(killed[0]).read_json("timings.json")["sessions"]
    assert sessions[-1]["resumed_at_task"] >= 1  # continued from its checkpoint
    reference = run_sweep(sweep, tmp_path / "serial", serial=True, progress=False)
    pd.testing.assert_series_equal(result.trials["validation accuracy"], reference.trials["validation accuracy"])


@pytest.mark.slow
@pytest.mark.standalone
def test_standalone_trials_reuse_their_worker_build_and_match_bit_for_bit_on_any_worker(sweep_file, tmp_path):
    """On cpp_standalone a worker compiles a shape once: its next trial regenerates the training build's
    code unchanged but for main.cpp (Brian2 orders some of its lines by set iteration), so make rebuilds
    only main.o there. (The evaluation build lives in a new process per trial, whose string hashing may
    reorder a few more generated lines.) Two workers, each compiling in a folder of its own, give bit for
    bit the serial results."""
    (tmp_path / "tiny.yaml").write_text(BASE.replace("backend: numpy", "backend: cpp_standalone"))
    sweep_file.write_text(SWEEP.replace("[0.01, 0.05]", "[0.05]").replace("seeds: [0, 1]", "seeds: [0]"))
    run_sweep(load_sweep(sweep_file), tmp_path / "serial", serial=True, progress=False)
    [builds] = (tmp_path / "serial" / "builds").iterdir()  # one process, one shape: one build folder
    compiled = {p: p.stat().st_mtime_ns for p in builds.rglob("*.o")}
    assert len(compiled) > 50 and len(list(builds.glob("*/main"))) == 2  # the training and evaluation builds
    sweep_file.write_text(SWEEP.replace("[0.01, 0.05]", "[0.05]"))  # and seed 1, in the same process
    sweep = load_sweep(sweep_file)
    serial = run_sweep(sweep, tmp_path / "serial", serial=True, progress=False)
    rebuilt = sorted(str(p.relative_to(builds)) for p, t in compiled.items() if p.stat().st_mtime_ns != t)
    assert set(rebuilt) & {str(p.relative_to(builds)) for p in builds.glob("build/**/*.o")} <= {"build/main.o"}, rebuilt
    parallel = run_sweep(sweep, tmp_path / "dask", workers=2, progress=False)
    for trial in serial.trials.trial:
        a, b = _weights(tmp_path / "serial", trial), _weights(tmp_path / "dask", trial)
        assert all(np.array_equal(a[k], b[k]) for k in a), trial
    pd.testing.assert_series_equal(serial.trials["validation accuracy"], parallel.trials["validation accuracy"])


def test_a_failing_trial_is_recorded_and_the_others_finish(sweep_file, tmp_path):
    sweep_file.write_text(SWEEP.replace("model.params.forward_synapse.eta: [0.01, 0.05]", "data.validation: [40, 5000]")
                          .replace("seeds: [0, 1]", "seeds: [0]"))
    result = run_sweep(load_sweep(sweep_file), tmp_path / "out", serial=True, progress=False)
    ok, failed = result.trials.status
    assert ok == "finished"
    assert failed.startswith("error: ValueError: data.validation = 5000 leaves no training samples")
    assert result.best["values"] == {"data.validation": 40}


@pytest.mark.slow  # 16 s of CPU; packed builds are also checked by test_ensemble's fast tests
def test_packed_trials_equal_trials_trained_alone(sweep_file, tmp_path):
    """pack: 4 trains the four trials (two etas x two seeds) in one ensemble build; without random numbers in the
    model each ends as when trained alone (weights to rounding: eta is a per-replica constant there)."""
    deterministic = "model: {sizes: [64, 12, 10], feedback: fixed_random, params: {error_events: {dither_error: 0}}}"
    (tmp_path / "tiny.yaml").write_text(BASE.replace("model: {sizes: [64, 12, 10], feedback: sleep}", deterministic))
    alone = run_sweep(load_sweep(sweep_file), tmp_path / "alone", serial=True, progress=False)
    sweep_file.write_text(SWEEP + "pack: 4\n")
    packed = run_sweep(load_sweep(sweep_file), tmp_path / "packed", serial=True, progress=False)
    columns = ["trial", "setting", "seed", "status", "validation accuracy"]
    pd.testing.assert_frame_equal(alone.trials[columns], packed.trials[columns])
    assert (packed.trials.status == "finished").all()
    for trial in alone.trials.trial:
        a, b = _weights(tmp_path / "alone", trial), _weights(tmp_path / "packed", trial)
        for name in a:
            np.testing.assert_allclose(a[name], b[name], rtol=0, atol=1e-12, err_msg=f"{trial}: {name}")
    sessions = RunDirectory(next((tmp_path / "packed" / "trials" / alone.trials.trial[0]).iterdir())) \
        .read_json("timings.json")["sessions"]
    assert len(sessions[-1]["ensemble"]) == 4


def _is_daemon() -> bool:
    import multiprocessing

    return multiprocessing.current_process().daemon


@pytest.mark.slow
def test_workers_restarted_by_the_nanny_may_start_processes():
    """A LocalCluster's worker restarted after the sweep began (a lost heartbeat, a kill) is not daemonic, so
    its trials can start their evaluation build's process (a daemonic worker failed every later trial); and it
    leaves stop signals to the sweep as the first did (sweep.dask_setup)."""
    def stop_handling() -> tuple:  # by value (no import of this module, nor of brian2, in the worker)
        import signal

        blocked = signal.pthread_sigmask(signal.SIG_BLOCK, [])
        return (signal.getsignal(signal.SIGINT).__name__, signal.getsignal(signal.SIGTERM).__name__,
                bool(blocked & {signal.SIGINT, signal.SIGTERM}))

    with dask_client(None, 1) as client:
        for _ in range(2):
            assert list(client.run(stop_handling).values()) == [("silence_logging", "silence_logging", False)]
            assert not any(client.run(_is_daemon).values())
            client.restart()


@pytest.mark.parametrize("content", [b"", b"garbage\n", b"a,b\n1,2,3,4\n", b"\x00\xff\xfe\x80 not text"],
                         ids=["empty", "one-word", "ragged", "binary"])
def test_an_unreadable_trials_csv_is_named_and_rewritten_from_the_run_directories(sweep_file, tmp_path, content):
    """trials.csv summarises the trials' run directories: one that cannot be read gives a warning naming it,
    the sweep goes on and writes it whole again. The trial fails at once (no training): the point is the table."""
    sweep_file.write_text(SWEEP.replace("model.params.forward_synapse.eta: [0.01, 0.05]", "data.validation: [5000]")
                          .replace("seeds: [0, 1]", "seeds: [0]"))
    out = tmp_path / "out"
    out.mkdir()
    (out / "trials.csv").write_bytes(content)
    with pytest.warns(UserWarning, match=f"^{out / 'trials.csv'} cannot be read .*: its trials are read from their"):
        result = run_sweep(load_sweep(sweep_file), out, serial=True, progress=False)
    assert result.trials.status[0].startswith("error: ValueError: data.validation = 5000")
    written = pd.read_csv(out / "trials.csv")
    assert list(written.trial) == list(result.trials.trial) and written.status[0] == result.trials.status[0]
    assert sorted(p.name for p in out.iterdir() if p.name.startswith(".")) == [".lock"]  # no temporary file


@pytest.mark.slow  # a process of its own (~10 s): the command's format, not the sweep's logic
def test_the_command_says_a_warning_in_one_line(sweep_file, tmp_path):
    """Before: Python's warning format, three lines with the code's file and line (biograd/sweep.py:434: UserWarning:
    ... and the source line). Now one line, as an error is (--debug keeps Python's format)."""
    import subprocess
    import sys

    sweep_file.write_text(SWEEP.replace("model.params.forward_synapse.eta: [0.01, 0.05]", "data.validation: [5000]")
                          .replace("seeds: [0, 1]", "seeds: [0]"))
    out = tmp_path / "out"
    out.mkdir()
    (out / "trials.csv").write_text("garbage\n")
    command = ["sweep", str(sweep_file), "--out", str(out), "--serial", "--no-progress"]
    ended = subprocess.run([sys.executable, "-m", "biograd.cli", *command], capture_output=True, text=True,
                           env=os.environ | {"COLUMNS": "400"})
    said = [line for line in ended.stderr.splitlines() if line.strip()]
    assert len(said) == 1 and said[0].startswith(f"warning: {out / 'trials.csv'} cannot be read ("), ended.stderr


def test_a_readable_trials_csv_keeps_the_rows_of_ended_trials(tmp_path):
    (tmp_path / "trials.csv").write_text("trial,status,validation accuracy\nab12,finished,0.5\ncd34,running,\n"
                                         "ef56,diverged,\n")
    assert {trial: row["validation accuracy"] for trial, row in _ended_rows(tmp_path).items()} == \
        pytest.approx({"ab12": 0.5, "ef56": float("nan")}, nan_ok=True)


def test_sweep_tables_are_written_whole_or_not_at_all(sweep_file, tmp_path, monkeypatch):
    """A figure that fails mid-write leaves the earlier sweep.png and no temporary file; the tables before it
    are replaced whole."""
    import biograd.analysis.figures

    def half(trials, keys, path):
        Path(path).write_bytes(b"\x89PNG half")
        raise RuntimeError("disk full")

    monkeypatch.setattr(biograd.analysis.figures, "sweep_figure", half)
    (tmp_path / "sweep.png").write_bytes(b"old figure")
    trials = pd.DataFrame({"trial": ["a", "b"], "setting": [0, 0], "model.params.forward_synapse.eta": [0.01, 0.01],
                           "seed": [0, 1], "status": ["finished"] * 2, "validation accuracy": [0.5, 0.7],
                           "test accuracy": [None, None], "minutes": [0.1, 0.1]})
    with pytest.raises(RuntimeError, match="disk full"):
        summarise(load_sweep(sweep_file), trials, tmp_path)
    assert (tmp_path / "sweep.png").read_bytes() == b"old figure"
    assert json.loads((tmp_path / "best.json").read_text())["validation mean"] == pytest.approx(0.6)
    assert pd.read_csv(tmp_path / "trials.csv").trial.tolist() == ["a", "b"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["best.json", "summary.csv", "sweep.png", "sweep.yaml",
                                                          "tiny.yaml", "trials.csv"]


@pytest.fixture(scope="module")
def made_trial(tmp_path_factory) -> Path:
    """A folder (tiny.yaml, sweep.yaml, equations/, out/) of a one-trial sweep whose trial has ended (made, not
    trained: status finished), its model read from the folder's copy of the equation files. Made once for the
    module (start_run checks the model's units, ~3 s); each test takes a copy (:func:`finished_trial`)."""
    import biograd.models.elements
    from biograd.launch import start_run

    folder = tmp_path_factory.mktemp("finished_trial")
    shutil.copytree(biograd.models.elements.equations_dir(), folder / "equations")
    (folder / "tiny.yaml").write_text(BASE)
    (folder / "sweep.yaml").write_text(SWEEP.replace("[0.01, 0.05]", "[0.01]").replace("seeds: [0, 1]", "seeds: [0]"))
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(biograd.models.elements, "EQUATIONS_DIR", folder / "equations")
        (trial,) = plan_trials(load_sweep(folder / "sweep.yaml"), folder / "out")
        start_run(load_config(trial.base, list(trial.overrides)), root=trial.path).set_status("finished", "made ended")
    return folder


@pytest.fixture
def finished_trial(made_trial, sweep_file, tmp_path, monkeypatch):
    """This test's copy of :func:`made_trial` in ``tmp_path`` (the sweep file ``sweep_file``), its model read from
    the copy's equation files (``tmp_path / "equations"``), and training that fails if anything trains again.
    Returns the sweep, its folder and the trial."""
    import biograd.models.elements
    import biograd.sweep

    shutil.copytree(made_trial, tmp_path, dirs_exist_ok=True)
    monkeypatch.setattr(biograd.models.elements, "EQUATIONS_DIR", tmp_path / "equations")
    sweep, out = load_sweep(sweep_file), tmp_path / "out"
    (trial,) = plan_trials(sweep, out)
    assert RunDirectory(next(trial.path.iterdir())).read_json("status.json")["status"] == "finished", \
        "the copy holds the ended trial under its name"

    def retrained(*args, **kwargs):
        raise AssertionError("trained again")

    monkeypatch.setattr(biograd.sweep, "Trainer", retrained)
    return sweep, out, trial


def test_only_the_equation_files_of_the_model_name_a_trial(finished_trial, tmp_path):
    """An edit of a file that the trial's model does not use (another precision's variant, another encoder's input)
    keeps the trial's name: the ended trial is not trained again; an edit of a file it uses names a new trial,
    and the old one's folder is not taken for it."""
    sweep, out, trial = finished_trial
    for unused in ("soma_loihi.eqs", "input_poisson.eqs", "input_poisson.yaml"):
        with open(tmp_path / "equations" / unused, "a") as file:
            file.write("# edited\n")
    assert [t.id for t in plan_trials(sweep, out)] == [trial.id]
    result = run_sweep(sweep, out, serial=True, progress=False)
    assert list(result.trials.status) == ["finished"] and sorted(os.listdir(out / "trials")) == [trial.id]
    with open(tmp_path / "equations" / "soma.eqs", "a") as file:
        file.write("# edited\n")
    (edited,) = plan_trials(sweep, out)
    assert edited.id != trial.id
    adopt_trials([edited], out)
    assert sorted(os.listdir(out / "trials")) == [trial.id]


def test_a_trial_under_an_earlier_name_is_renamed_only_with_the_same_config_and_files(finished_trial, tmp_path):
    """A trial's folder under another name (an older naming) is taken, renamed, for the trial when its run has the
    trial's config and equation files, and not otherwise; of two such folders the ended one, and two ended ones
    are an error naming both."""
    sweep, out, trial = finished_trial
    old, twin = out / "trials" / "0123456789ab", out / "trials" / "ba9876543210"
    trial.path.rename(old)
    base = tmp_path / "tiny.yaml"
    base.write_text(BASE.replace("n_test: 10", "n_test: 12"))  # another config
    adopt_trials(plan_trials(sweep, out), out)
    assert sorted(os.listdir(out / "trials")) == [old.name]
    base.write_text(BASE)
    shutil.copytree(old, twin)
    with pytest.raises(ValueError, match=re.escape(f"trial {trial.id} is in both {old} and {twin}")):
        adopt_trials([trial], out)
    RunDirectory(next(twin.iterdir())).set_status("failed", "stopped")
    with pytest.warns(UserWarning, match=re.escape(f"{old}: trial {trial.id} under an earlier name")):
        result = run_sweep(sweep, out, serial=True, progress=False)
    assert list(result.trials.status) == ["finished"] and list(result.trials.trial) == [trial.id]
    assert sorted(os.listdir(out / "trials")) == sorted([trial.id, twin.name])


def test_a_trial_whose_run_directory_changed_is_refused_naming_the_sweep_command_that_accepts_it(finished_trial,
                                                                                                 sweep_file):
    """A trial's run directory edited (its contract): before, the sweep went on silently, the trial's row saying
    'give --accept-changes', an option the sweep did not have. Now one line before any work, naming the run and
    the sweep command with --accept-changes, which records the change in the run's history and goes on."""
    from typer.testing import CliRunner

    from biograd.cli import app

    sweep, out, trial = finished_trial
    run = RunDirectory(next(trial.path.iterdir()))
    with open(run.path / "config.yaml", "a") as file:
        file.write("# edited\n")
    command = ["sweep", str(sweep_file), "--out", str(out), "--serial", "--no-progress"]
    refused = CliRunner().invoke(app, command)
    assert refused.exit_code == 2 and refused.output.splitlines() == [f"sweep tiny_sweep: 1 trials in {out}", (
        f"error: {run.path}: changed since the run was created: config.yaml; give --accept-changes to use the changed "
        f"files (recorded in history.jsonl); continue with: biograd sweep {sweep_file} --out {out} "
        "--accept-changes")], refused.output
    assert not (out / "trials.csv").exists() and not (run.path / "history.jsonl").exists()
    accepted = CliRunner().invoke(app, [*command, "--accept-changes"])
    assert accepted.exit_code == 0, accepted.output
    assert pd.read_csv(out / "trials.csv").status.tolist() == ["finished"] and run.changed_files() == []
    (event,) = map(json.loads, (run.path / "history.jsonl").read_text().splitlines())
    assert event["event"] == "accepted changes" and event["files"] == ["config.yaml"]


PROCESS_MASK = """\
import multiprocessing, sys
from biograd.signals import stops_deferred_for_children

def blocked(connection):
    connection.send(next(line for line in open("/proc/self/status") if line.startswith("SigBlk")))

if __name__ == "__main__":
    ours, theirs = multiprocessing.Pipe()
    with stops_deferred_for_children():  # the first process of this program: multiprocessing's tracker starts now
        multiprocessing.get_context("spawn").Process(target=blocked, args=(theirs,)).start()
    print(int(ours.recv().split()[1], 16))
"""


def test_processes_started_for_stops_deferred_begin_with_the_stops_blocked(tmp_path):
    """The first process a program starts (a Dask worker, an evaluation worker) begins with SIGINT and SIGTERM
    blocked: multiprocessing's resource tracker, which it would start first, unblocked them as it started."""
    import subprocess
    import sys

    (tmp_path / "mask.py").write_text(PROCESS_MASK)
    mask = int(subprocess.run([sys.executable, "mask.py"], cwd=tmp_path, capture_output=True, text=True, check=True,
                              timeout=60).stdout)
    assert mask & (1 << (signal.SIGINT - 1)) and mask & (1 << (signal.SIGTERM - 1))
