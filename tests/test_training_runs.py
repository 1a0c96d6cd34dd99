"""Training runs: step plan, run directories, checkpoints, resume after SIGKILL/SIGTERM, divergence stop."""

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from support import INFER, TRAIN, block

from biograd.config import load_config
from biograd.models.elements import equations_dir
from biograd.models.errors import ModelFileError
from biograd.models.network import BioGradNetwork
from biograd.models.spec import NetworkSpec
from biograd.plan import chunk_slots, plan_tasks
from biograd.rundir import RunDirectory
from biograd.trainer import Trainer, TrainingDiverged, check_health, start_run

TINY = """\
name: tiny
model: {sizes: [64, 16, 10], feedback: sleep}
data: {source: sklearn, n_train: 200, n_test: 100}
train: {epochs: 1, sleep_every: 20, chunk: 40, sleep_duration: 100 ms, warmup_sleep_blocks: 3, backend: numpy, seed: 5}
record: {probe_samples: 2, probe_every: 2}
"""


@pytest.fixture
def tiny(tmp_path) -> Path:
    path = tmp_path / "tiny.yaml"
    path.write_text(TINY)
    return path


def test_plan_shows_every_sample_once_per_epoch_with_own_seeds(tiny):
    cfg = load_config(tiny, ["train.epochs=3", "train.warmup_sleep_blocks=7"])
    steps = plan_tasks(cfg.model, cfg.train, 200)
    again = plan_tasks(cfg.model, cfg.train, 200)
    assert all(a.seed == b.seed and np.array_equal(a.samples, b.samples) for a, b in zip(steps, again, strict=True))
    warmup = [s for s in steps if s.kind == "warmup"]
    assert sum(s.blocks for s in warmup) == 7 and all(s.values == {} for s in warmup)
    for epoch in (1, 2, 3):
        train = [s for s in steps if s.kind == "train" and s.epoch == epoch]
        assert np.array_equal(np.sort(np.concatenate([s.samples for s in train])), np.arange(200))
        assert all(len(s.samples) <= 40 for s in train)
        slots = [chunk_slots(cfg.model, cfg.train, s) for s in train]
        kinds, shown = np.concatenate([k for k, _ in slots]), np.concatenate([x for _, x in slots])
        assert np.array_equal(shown[kinds == TRAIN], np.concatenate([s.samples for s in train]))
        sleep = np.flatnonzero(kinds != TRAIN)  # a block of 3 slots (100 ms) before every 20th sample
        assert cfg.train.sleep_slots(cfg.model) == 3 and len(sleep) == 10 * 3 and np.all(shown[sleep] == -1)
        assert np.array_equal(np.cumsum(kinds == TRAIN)[sleep[::3]], np.arange(0, 200, 20))
        assert all(s.values == {"eta": pytest.approx(0.03 * 0.7 ** (epoch - 1))} for s in train)
    assert [s.epoch for s in steps if s.kind == "evaluate"] == [0, 1, 2, 3]
    seeds = [s.seed for s in steps if s.kind != "evaluate"]
    assert len(set(seeds)) == len(seeds)


def test_learning_rates_come_from_the_tables_and_decay_per_epoch(tiny):
    """forward_synapse.yaml's eta (and an override of it) is the first epoch's rate; eta_sleep decays when asked."""
    cfg = load_config(tiny, ["train.epochs=3", "model.params.forward_synapse.eta=0.05",
                             "model.params.feedback_synapse.eta_sleep=0.002", "train.decay={eta: 0.5, eta_sleep: 0.9}"])
    train = [s for s in plan_tasks(cfg.model, cfg.train, 200) if s.kind == "train"]
    for task in train:
        assert task.values == {"eta": 0.05 * 0.5 ** (task.epoch - 1), "eta_sleep": 0.002 * 0.9 ** (task.epoch - 1)}


def test_no_sleep_blocks_without_sleep_mode(tiny):
    cfg = load_config(tiny, ["model.feedback=fixed_random"])
    steps = plan_tasks(cfg.model, cfg.train, 200)
    assert not [s for s in steps if s.kind == "warmup"]
    assert all(np.all(chunk_slots(cfg.model, cfg.train, s)[0] == TRAIN) for s in steps if s.kind == "train")


def test_run_directory_contents_and_never_overwritten(tiny, tmp_path):
    cfg = load_config(tiny)
    first = start_run(cfg, root=tmp_path / "out")
    second = start_run(cfg, root=tmp_path / "out")  # same config, same second: a new directory
    assert first.path != second.path and first.path.name.split("_")[1] == "tiny"
    assert first.config == cfg
    assert {p.name for p in first.equations.iterdir()} >= {"soma.eqs", "soma.yaml", "forward_synapse.eqs"}
    versions = first.read_json("versions.json")
    assert versions["packages"]["brian2"] == "2.10.1" and "commit" in versions["git"]


def test_check_health_names_the_problem():
    from biograd.models.network import PlasticState

    good = PlasticState([np.ones((2, 2))], {}, {1: np.zeros(2)})
    check_health(good, 10)
    with pytest.raises(TrainingDiverged, match="W1 has 1 NaN/inf entries"):
        check_health(PlasticState([np.array([[np.nan, 0.0]])], {}, {}), 10)
    with pytest.raises(TrainingDiverged, match=r"max \|W1\| = 20 exceeds train.max_weight = 10"):
        check_health(PlasticState([np.array([[20.0, 0.0]])], {}, {}), 10)


def test_exploding_weights_stop_with_last_good_checkpoint(tiny, tmp_path):
    run = start_run(load_config(tiny, ["model.params.forward_synapse.eta=10", "train.max_weight=1.5"]), root=tmp_path)
    with pytest.raises(TrainingDiverged, match="exceeds train.max_weight = 1.5"):
        Trainer(run, progress=False).train()
    status = run.read_json("status.json")
    assert status["status"] == "diverged" and "(train, epoch 1)" in status["message"]
    state, progress = run.load_checkpoint()
    assert progress.task >= 2  # warm-up and the first evaluation were good
    check_health(state, 1.5)
    assert len(run.metrics()) == len(progress.rows)


def _train(*args: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "biograd.cli", "train", "--no-progress", *args],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def _compare(a: RunDirectory, b: RunDirectory) -> None:
    state_a, progress_a = a.load_checkpoint()
    state_b, progress_b = b.load_checkpoint()
    arrays_a, arrays_b = state_a.named(), state_b.named()
    assert arrays_a.keys() == arrays_b.keys()
    for name, x in arrays_a.items():
        assert np.array_equal(x, arrays_b[name]), name  # bit-identical, not just close
    keep = lambda m: m[m.metric != "samples_per_s"].reset_index(drop=True)  # noqa: E731 (timings differ)
    assert keep(a.metrics()).equals(keep(b.metrics()))
    for table in ("alignment", "neuron_rates"):
        assert len(a.table(table)) and a.table(table).equals(b.table(table)), table
    assert progress_a.task == progress_b.task


def _children(pid: int) -> list[int]:
    """Processes whose parent is ``pid`` (Linux /proc)."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:  # the process ended meanwhile
            continue
        if int(fields[1]) == pid:
            found.append(int(stat.parent.name))
    return found


def _alive(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def resume_after_kill(config: Path, out: Path, kill_after_step: int, timeout: float,
                      sig: signal.Signals = signal.SIGKILL) -> None:
    """An uninterrupted run and a run killed mid-chunk with ``sig``, then resumed, end bit-identical.
    SIGKILL leaves the status at "running"; SIGTERM stops like Ctrl-C (status "failed", exit 143).
    Either way the killed trainer's worker processes (standalone builds) do not outlive it."""
    whole = _train(str(config), "--out", str(out / "whole"))
    assert whole.wait(timeout) == 0, whole.stdout.read()
    killed = _train(str(config), "--out", str(out / "killed"))
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        runs = list((out / "killed").glob("*/checkpoint.npz"))
        if runs and RunDirectory(runs[0].parent).load_checkpoint()[1].task >= kill_after_step:
            break
        time.sleep(0.05)
    time.sleep(0.3)  # into the next chunk
    workers = _children(killed.pid)
    os.kill(killed.pid, sig)
    run = RunDirectory(runs[0].parent)
    status = run.read_json("status.json")
    if sig == signal.SIGKILL:
        assert killed.wait() == -signal.SIGKILL
        assert status["status"] == "running"
        assert int(status["message"].split()[1]) >= kill_after_step  # "step k of n": the progress is shown
    else:
        assert killed.wait(timeout) == 128 + signal.SIGTERM, killed.stdout.read()
        status = run.read_json("status.json")
        assert status["status"] == "failed" and "SIGTERM" in status["message"], status
    deadline = time.monotonic() + 10
    while any(_alive(w) for w in workers) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not any(_alive(w) for w in workers), "worker processes outlived the killed trainer"
    resumed = _train("--resume", str(run.path))
    assert resumed.wait(timeout) == 0, resumed.stdout.read()
    assert run.read_json("status.json")["status"] == "finished"
    sessions = run.read_json("timings.json")["sessions"]
    assert len(sessions) == 2 and sessions[1]["resumed_at_task"] >= kill_after_step
    _compare(RunDirectory(next((out / "whole").iterdir())), run)


@pytest.mark.slow
@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGTERM],
                         ids=["SIGKILL", "SIGTERM"])
def test_resume_after_kill_is_bit_identical_numpy(tiny, tmp_path, sig):
    resume_after_kill(tiny, tmp_path, kill_after_step=3, timeout=300, sig=sig)


@pytest.mark.slow
@pytest.mark.standalone
def test_resume_after_sigkill_is_bit_identical_standalone(tiny, tmp_path):
    """Also: the evaluator and prober workers end with their SIGKILLed trainer."""
    config = tmp_path / "standalone.yaml"
    config.write_text(TINY.replace("backend: numpy", "backend: cpp_standalone").replace("epochs: 1", "epochs: 2")
                      .replace("n_train: 200", "n_train: 600"))
    resume_after_kill(config, tmp_path, kill_after_step=8, timeout=600)


def test_cli_train_and_evaluate(tiny, tmp_path):
    from typer.testing import CliRunner

    from biograd.cli import app

    result = CliRunner().invoke(app, ["train", str(tiny), "--out", str(tmp_path), "--no-progress",
                                      "--set", "data.n_train=80"])
    assert result.exit_code == 0, result.output
    run = RunDirectory(next(tmp_path.glob("*_tiny_*")))
    assert (run.path / "learning_curve.png").stat().st_size > 10_000
    assert (run.path / "weights_epoch1.npz").is_file()
    metrics = run.metrics()
    assert list(metrics.columns) == ["epoch", "chunk", "samples", "split", "metric", "layer", "value"]
    final = run.test_accuracy().iloc[-1]
    assert f"test accuracy {final:.2%}" in result.output
    result = CliRunner().invoke(app, ["evaluate", str(run.path)])
    assert result.exit_code == 0, result.output
    assert f"accuracy {final:.2%} on 100 samples" in result.output


@pytest.mark.parametrize(("args", "message"), [
    (["train"], "give a config file or --resume RUN_DIR"),
    (["train", "{tiny}", "--set", "train.etaa=1"], "train.etaa: unknown key"),
    (["train", "--resume", "{tmp}", "--set", "train.epochs=1"], "--set cannot change a run that is resumed"),
    (["train", "--resume", "{tmp}"], "not a run directory (no config.yaml)"),
    (["train", "{tiny}", "--out", "{tmp}", "--set", "data.source=nmnist", "--set", "data.data_dir={tmp}/none"],
     "does not exist"),
])
def test_cli_train_errors(tiny, tmp_path, args, message):
    from typer.testing import CliRunner

    from biograd.cli import app

    result = CliRunner().invoke(app, [a.format(tiny=tiny, tmp=tmp_path) for a in args])
    assert result.exit_code == 2 and message in result.output, result.output
    for run in tmp_path.glob("*_tiny_*"):  # a run that could not start says why
        status = RunDirectory(run).read_json("status.json")
        assert status["status"] == "failed" and message in status["message"]


def test_brian2_report_inside_runs(capsys):
    net = BioGradNetwork(NetworkSpec(sizes=(64, 10)), slots=2, report="text")
    net.run_chunk(np.full(2, INFER), np.zeros((2, 64)), np.zeros((2, 10)))
    assert "Starting simulation" in capsys.readouterr().out


def test_corrupt_checkpoint_is_named_and_left_alone(tiny, tmp_path):
    from typer.testing import CliRunner

    from biograd.cli import app

    run = start_run(load_config(tiny), root=tmp_path)
    run.checkpoint_path.write_bytes(b"PK\x03\x04 truncated")
    result = CliRunner().invoke(app, ["train", "--resume", str(run.path)])
    assert result.exit_code == 2
    assert f"{run.checkpoint_path}: not a readable checkpoint" in " ".join(result.output.split())
    assert run.checkpoint_path.read_bytes() == b"PK\x03\x04 truncated"  # nothing lost or overwritten


def test_run_older_than_the_spike_counter_is_completed_not_changed(tiny, tmp_path):
    run = start_run(load_config(tiny), root=tmp_path)
    for path in run.equations.glob("activity.*"):
        path.unlink()
    before = sorted(p.name for p in run.equations.iterdir())
    folder = run.build_equations()
    assert folder != run.equations and (folder / "activity.eqs").is_file() and (folder / "soma.eqs").is_file()
    assert sorted(p.name for p in run.equations.iterdir()) == before  # the run's record stays as it was
    assert run.build_equations() == folder


def test_run_older_than_the_sleep_rule_counter_builds_and_counts(tiny, tmp_path):
    """A run whose copy (and an earlier completed copy) predates sleep_activity.eqs still builds for
    resume and evaluate, and records the sleep-rule events; a missing model element is still an error."""
    run = start_run(load_config(tiny), root=tmp_path)
    for path in run.equations.glob("*activity.*"):
        path.unlink()
    (run.path / "equations_completed").mkdir()  # completed when only activity.eqs was a measurement
    for path in run.equations.iterdir():
        shutil.copy2(path, run.path / "equations_completed")
    shutil.copy2(equations_dir() / "activity.eqs", run.path / "equations_completed")
    shutil.copy2(equations_dir() / "activity.yaml", run.path / "equations_completed")
    folder = run.build_equations()
    assert (folder / "sleep_activity.eqs").is_file() and not (run.equations / "sleep_activity.eqs").exists()
    spec = NetworkSpec(sizes=(6, 5, 5, 3), feedback="sleep")
    kinds = np.array([TRAIN, *block(spec, 1)])
    result = BioGradNetwork(spec, slots=3, seed=0, equations=folder).run_chunk(
        kinds, np.zeros((3, 6)), np.zeros((3, 3)))
    assert set(result.sleep_events) == {1, 2, 3}
    (folder / "apical.eqs").unlink()
    with pytest.raises(ValueError, match="apical.eqs: equation file not found"):
        BioGradNetwork(spec, slots=3, seed=0, equations=folder)


def test_run_config_is_checked_against_the_runs_own_equation_files(tiny, tmp_path):
    run = start_run(load_config(tiny, ["model.params.soma.v_th=2"]), root=tmp_path)
    assert run.config.model.composition.path == run.equations / "network.yaml"
    table = run.equations / "soma.yaml"
    table.write_text(table.read_text().replace("bounds: [0.001, null]", "bounds: [0.001, 1.5]"))
    with pytest.raises(ModelFileError, match=r"model.params.soma.v_th: parameter 'v_th' = 2\S* is outside its bounds"):
        run.config  # noqa: B018


def test_run_directory_of_the_old_layout_is_refused_clearly(tiny, tmp_path):
    run = start_run(load_config(tiny), root=tmp_path)
    (run.equations / "network.yaml").unlink()
    with pytest.raises(ValueError, match="made before the composition file equations/network.yaml existed"):
        run.config  # noqa: B018
