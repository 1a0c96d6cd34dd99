"""Optuna studies (search strategy tpe): settings asked one after another, trained epoch by epoch, pruned on
validation within a budget of training samples, resumed after a kill as if never stopped."""

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import optuna
import pandas as pd
import pytest
from filelock import FileLock
from typer.testing import CliRunner

from biograd.cli import app
from biograd.models.errors import ModelFileError
from biograd.rundir import RunChangedError, RunDirectory
from biograd.study import STUDY_FILE, check_study, run_study
from biograd.sweep import SweepLockedError, load_sweep, validated_epochs

BASE = """\
name: tiny
model: {sizes: [64, 12, 10], feedback: fixed_random}
data: {source: sklearn, n_train: 60, validation: 30, n_test: 10}
train: {epochs: 2, chunk: 60, backend: numpy}
record: {probe_samples: 0}
"""

STUDY = """\
name: tiny_study
base: tiny.yaml
search:
  strategy: tpe
  budget: 480
  pruner: {min_epochs: 1, reduction: 2}
  space:
    model.params.forward_synapse.eta: {choice: [0.0, 0.03]}
"""
EPOCH = 60  # training samples of one setting's epoch (one seed)


@pytest.fixture
def study_file(tmp_path) -> Path:
    (tmp_path / "tiny.yaml").write_text(BASE)
    path = tmp_path / "study.yaml"
    path.write_text(STUDY)
    return path


def _run(row: pd.Series, out: Path) -> RunDirectory:
    return RunDirectory(out / row.run)


@pytest.mark.slow  # 16 s of CPU: the fast tier keeps the study's file, lock and validation checks
@pytest.mark.filterwarnings("ignore:eta = 0")
def test_a_study_prunes_poor_settings_within_its_budget_and_reruns_nothing(study_file, tmp_path):
    """eta = 0 learns nothing: after its first epoch it is below the setting before it, and successive halving
    (reduction 2) stops it there; settings Optuna proposes again repeat the first one's end untrained."""
    out = tmp_path / "out"
    result = run_study(load_sweep(study_file), out, serial=True)
    trials = result.trials
    eta = trials["model.params.forward_synapse.eta"]
    assert set(trials.status[eta == 0]) == {"pruned"} and set(trials.status[eta > 0]) == {"finished"}
    assert (trials.epochs[eta == 0] == 1).all() and (trials.epochs[eta > 0] == 2).all()
    pruned = _run(trials[eta == 0].iloc[0], out)
    assert pruned.read_json("status.json")["status"] == "pruned" and validated_epochs(pruned) == [0, 1]
    assert not (pruned.path / "weights_epoch2.npz").exists(), "a pruned setting trains no further"
    study = optuna.load_study(study_name="tiny_study", storage=optuna.storages.JournalStorage(
        optuna.storages.journal.JournalFileBackend(str(out / STUDY_FILE))))
    states = {"COMPLETE": "finished", "PRUNED": "pruned"}
    assert [states[t.state.name] for t in study.trials] == list(trials.status)
    assert [t.params["model.params.forward_synapse.eta"] for t in study.trials] == list(eta)
    best = json.loads((out / "best.json").read_text())
    assert best["values"] == {"model.params.forward_synapse.eta": 0.03}
    record = best["study"]
    assert record["settings"] == len(trials) >= 3 and record["pruned"] == (eta == 0).sum()
    assert record["samples trained"] == (2 + 1) * EPOCH, "each distinct setting trained once"
    assert record["budget used"] <= record["budget"] < record["budget used"] + 2 * EPOCH  # no room for another
    modified = {p: p.stat().st_mtime_ns for p in (out / "trials").glob("*/*/checkpoint.npz")}
    again = run_study(load_sweep(study_file), out, serial=True)
    assert {p: p.stat().st_mtime_ns for p in modified} == modified, "a finished study trains nothing"
    pd.testing.assert_frame_equal(again.trials, trials)
    (tmp_path / "tiny.yaml").write_text(BASE.replace("n_test: 10", "n_test: 20"))  # other trials: not mixed in
    with pytest.raises(ValueError, match=r"study.journal: the study began with other trials"):
        run_study(load_sweep(study_file), out, serial=True)


@pytest.mark.filterwarnings("ignore:eta = 0")
def test_a_study_whose_settings_fail_ends_within_its_budget(study_file, tmp_path, monkeypatch):
    """A failed setting counts the epoch it failed in, and so does a setting that repeats it (two choices: most
    do): a study whose every setting fails ends once they have used its budget, rather than asking forever."""
    import biograd.sweep

    def failing(*args, **kwargs):
        raise RuntimeError("no training")

    monkeypatch.setattr(biograd.sweep, "Trainer", failing)
    result = run_study(load_sweep(study_file), tmp_path / "out", serial=True)
    assert set(result.trials.status) == {"failed"}
    record = json.loads((tmp_path / "out" / "best.json").read_text())["study"]
    assert record["settings"] == record["fail"] == 7 and record["budget used"] == 7 * EPOCH, \
        "each failed setting uses one epoch of 480 samples; an eighth setting's two epochs would exceed it"


@pytest.mark.parametrize("edit, message", [
    (("budget: 480", "budget: 480\n  n: 3"), "strategy tpe takes budget"),
    (("strategy: tpe\n  budget: 480", "strategy: random\n  budget: 480"), "strategy random takes n"),
    (("search:", "grid: {train.chunk: [30, 60]}\nsearch:"), "grid: not with search strategy tpe"),
])
def test_study_files_are_checked(study_file, edit, message):
    study_file.write_text(STUDY.replace(*edit))
    with pytest.raises(ModelFileError, match=rf"study.yaml.*{message}"):
        load_sweep(study_file)


def test_a_study_needs_a_validation_split(study_file, tmp_path):
    (tmp_path / "tiny.yaml").write_text(BASE.replace("validation: 30", "validation: 0"))
    with pytest.raises(ValueError, match=r"tiny.yaml: data.validation is 0"):
        check_study(load_sweep(study_file), tmp_path / "out")


def test_a_second_sweep_of_a_folder_stops_at_once(study_file, tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    with FileLock(out / ".lock"):  # as a running sweep holds it
        with pytest.raises(SweepLockedError, match=r"out: another sweep is running in this folder"):
            run_study(load_sweep(study_file), out, serial=True)
        result = CliRunner().invoke(app, ["sweep", str(study_file), "--out", str(out), "--serial"])
        assert result.exit_code == 1 and "another sweep is running in this folder" in " ".join(result.output.split())
    assert not (out / STUDY_FILE).exists()


@pytest.mark.slow
def test_a_killed_study_resumes_as_if_never_stopped(study_file, tmp_path):
    """SIGKILL to a serial study in its second setting, then the rest on a Dask cluster (one worker): the same
    settings, states and accuracies as a serial study never stopped (each ask's sampler is seeded from the
    number of settings asked before)."""
    study_file.write_text(STUDY.replace("{choice: [0.0, 0.03]}", "{log_uniform: [0.001, 0.3]}") +
                          "  startup: 2\n")  # TPE models the results from the third setting on
    sweep = load_sweep(study_file)
    whole = run_study(sweep, tmp_path / "whole", serial=True).trials
    out = tmp_path / "killed"
    command = [sys.executable, "-m", "biograd.cli", "sweep", str(study_file), "--out", str(out), "--serial",
               "--no-progress"]
    process = subprocess.Popen(command, env=os.environ | {"PYTHONWARNINGS": "ignore"}, stdout=subprocess.DEVNULL)
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline and len(list((out / "trials").glob("*/*/checkpoint.npz"))) < 2:
        time.sleep(0.2)
    process.send_signal(signal.SIGKILL)
    process.wait()
    assert len(list((out / "trials").glob("*"))) >= 2, "killed in the second setting or later"
    resumed = run_study(sweep, out, workers=1).trials
    columns = ["trial", "setting", "model.params.forward_synapse.eta", "status", "epochs", "validation accuracy"]
    pd.testing.assert_frame_equal(resumed[columns], whole[columns])
    assert (whole.status == "pruned").any() and whole.trial.is_unique


@pytest.mark.slow  # a LocalCluster of two workers (~35 s on one core)
def test_a_dask_study_stopped_twice_leaves_its_trials_failed_with_the_stop_named(study_file, tmp_path):
    """Ctrl-C twice, a second apart, to a study on two Dask workers (the process group): the first asks it to stop
    after the running epochs, the second ends the workers under them. Before: those trials stayed 'running'. Now:
    'failed' naming the stop, resumable, and the sweep's one line."""
    (tmp_path / "tiny.yaml").write_text(BASE.replace("n_train: 60", "n_train: 200"))  # epochs of several chunks
    out = tmp_path / "out"
    process = subprocess.Popen([str(Path(sys.executable).with_name("biograd")), "sweep", str(study_file), "--out",
                                str(out), "--workers", "2", "--no-progress"], stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT, text=True, start_new_session=True,
                               env=os.environ | {"PYTHONUNBUFFERED": "1"})
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline and process.poll() is None:  # until trials train on the workers
        if any(json.loads(path.read_text())["status"] == "running" for path in out.glob("trials/*/*/status.json")):
            break
        time.sleep(0.1)
    os.killpg(process.pid, signal.SIGINT)
    time.sleep(1)
    os.killpg(process.pid, signal.SIGINT)
    output, _ = process.communicate(timeout=120)
    assert process.returncode == 130, output
    assert output.splitlines()[-1] == f"sweep stopped by SIGINT; continue with: biograd sweep {study_file} --out " \
        f"{out}", output
    runs = [RunDirectory(path.parent) for path in out.glob("trials/*/*/status.json")]
    statuses = [run.read_json("status.json") for run in runs]
    assert statuses and {(status["status"], status["message"]) for status in statuses} == {
        ("failed", "stopped by SIGINT during a task (the sweep ended); the last checkpoint is intact")}, statuses
    for run in runs:
        run.check_resumable()
    assert {t.state.name for t in _journal(out).trials} == {"RUNNING"}, "the settings continue when run again"


def _journal(out: Path) -> optuna.Study:
    return optuna.load_study(study_name="tiny_study", storage=optuna.storages.JournalStorage(
        optuna.storages.journal.JournalFileBackend(str(out / STUDY_FILE))))


@pytest.fixture(scope="module")
def older_study(tmp_path_factory) -> tuple[Path, pd.DataFrame, dict[str, str]]:
    """A folder (tiny.yaml, study.yaml, equations/, out/) of a finished study of one-epoch settings (budget for
    three) whose trials a stand-in trainer 'trains' (it writes validation accuracies and the status), its model
    read from the folder's copy of the equation files; then its trials and its fingerprint moved to older names
    (reversed: as if named before a change of the naming). Made once for the module (starting the runs checks
    the model's units, ~3 s); each test takes a copy (:func:`made_study`). Returns the folder, the study's
    trials.csv rows and the trials' older names by today's."""
    import biograd.models.elements
    import biograd.sweep

    folder = tmp_path_factory.mktemp("older_study")
    shutil.copytree(biograd.models.elements.equations_dir(), folder / "equations")
    (folder / "tiny.yaml").write_text(BASE)
    (folder / "study.yaml").write_text(STUDY.replace("budget: 480", "budget: 180")
                                       .replace("[0.0, 0.03]", "[0.01, 0.03]") + "set: [train.epochs=1]\n")

    class StandIn:
        def __init__(self, runs, progress, builds, until_epoch):
            self.runs, self.until_epoch = runs, until_epoch

        def train(self):
            for run in self.runs:
                run.write_metrics([{"epoch": e, "chunk": 0, "samples": 60 * e, "split": "validation",
                                    "metric": "accuracy", "layer": -1, "value": 0.1 * e + run.config.train.seed}
                                   for e in range(self.until_epoch + 1)])
                run.checkpoint_path.write_bytes(b"")  # a finished run's checkpoint (a resume checks it is there)
                run.set_status("finished", "stand-in")

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(biograd.models.elements, "EQUATIONS_DIR", folder / "equations")
        patch.setattr(biograd.sweep, "Trainer", StandIn)
        sweep, out = load_sweep(folder / "study.yaml"), folder / "out"
        made = run_study(sweep, out, serial=True).trials
        assert set(made.status) == {"finished"} and len(made) == 3, "three settings (one a repeat)"
        older = {trial: trial[::-1] for trial in made.trial.unique()}
        for trial, name in older.items():
            (out / "trials" / trial).rename(out / "trials" / name)
        fingerprint = check_study(sweep, out)
        assert fingerprint in older, "the fingerprint names a trial of the study (a choice space)"
        _journal(out).set_user_attr("fingerprint", older[fingerprint])
    return folder, made, older


@pytest.fixture
def made_study(older_study, study_file, tmp_path, monkeypatch):
    """This test's copy of :func:`older_study` in ``tmp_path`` (the study file ``study_file``), its model read from
    the copy's equation files, and training that fails if anything trains again. Returns the sweep, its folder, the
    study's trials.csv rows and the trials' older names by today's."""
    import biograd.models.elements
    import biograd.sweep

    folder, made, older = older_study
    shutil.copytree(folder, tmp_path, dirs_exist_ok=True)
    monkeypatch.setattr(biograd.models.elements, "EQUATIONS_DIR", tmp_path / "equations")
    sweep, out = load_sweep(study_file), tmp_path / "out"
    assert sorted(os.listdir(out / "trials")) == sorted(older.values()), "the copy holds the trials, older names"

    def retrained(*args, **kwargs):
        raise AssertionError("trained again")

    monkeypatch.setattr(biograd.sweep, "Trainer", retrained)
    return sweep, out, made.copy(), dict(older)


def test_a_study_under_older_trial_names_continues_without_training(made_study):
    """A study whose journal's fingerprint and trial folders have older names (the same configs and equation files)
    takes its trials, renamed, trains none again and is fingerprinted anew; begun again (its journal deleted), it
    asks the same settings and takes their trials under older names likewise."""
    sweep, out, made, older = made_study
    with pytest.warns(UserWarning, match=r"under an earlier name \(the same config and equation files\)"):
        again = run_study(sweep, out, serial=True)
    pd.testing.assert_frame_equal(again.trials, made)
    assert sorted(os.listdir(out / "trials")) == sorted(older)
    assert _journal(out).user_attrs["fingerprint"] == check_study(sweep, out)
    for trial, name in older.items():
        (out / "trials" / trial).rename(out / "trials" / name)
    (out / STUDY_FILE).unlink()
    with pytest.warns(UserWarning, match=r"under an earlier name"):
        again = run_study(sweep, out, serial=True)
    pd.testing.assert_frame_equal(again.trials, made)
    assert sorted(os.listdir(out / "trials")) == sorted(older)


def test_a_study_whose_trial_run_changed_is_refused_before_any_work_unless_accepted(made_study):
    """As a grid sweep (test_sweep.py): the runs of the journal's settings are checked before the study asks or
    trains; with accept_changes the change is recorded and the study goes on."""
    sweep, out, made, older = made_study
    for trial, name in older.items():  # today's names (the fixture's are older ones)
        (out / "trials" / name).rename(out / "trials" / trial)
    run = RunDirectory(out / made.run.iloc[-1])
    with open(run.path / "equations" / "soma.yaml", "a") as file:
        file.write("# edited\n")
    with pytest.raises(RunChangedError, match=re.escape(f"{run.path}: changed since the run was created: "
                                                        "equations/soma.yaml; give --accept-changes")):
        run_study(sweep, out, serial=True)
    again = run_study(sweep, out, serial=True, accept_changes=True)
    pd.testing.assert_frame_equal(again.trials, made)
    assert run.changed_files() == [] and "accepted changes" in (run.path / "history.jsonl").read_text()


def test_a_study_under_older_names_with_another_base_config_is_refused(made_study, tmp_path):
    sweep, out, made, older = made_study
    (tmp_path / "tiny.yaml").write_text(BASE.replace("n_test: 10", "n_test: 12"))
    with pytest.raises(ValueError, match=re.escape(f"{out / STUDY_FILE}: the study began with other trials")):
        run_study(sweep, out, serial=True)
    assert sorted(os.listdir(out / "trials")) == sorted(older.values()), "no folder renamed"
