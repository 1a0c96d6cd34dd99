"""Training runs: step plan, run directories, checkpoints, resume after SIGKILL/SIGTERM, divergence stop."""

import errno
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from support import INFER, TRAIN, block, handles_sigterm, process_alive, tiny_spec

from biograd.config import load_config
from biograd.launch import start_run, start_runs
from biograd.models.elements import equations_dir
from biograd.models.errors import ModelFileError
from biograd.models.network import BioGradNetwork
from biograd.plan import chunk_slots, plan_tasks, sleep_slots
from biograd.rundir import DiskFullError, LockLostError, RunChangedError, RunDirectory, RunLockedError, acquired_lock
from biograd.trainer import Trainer, TrainingDiverged, check_health

TINY = """\
name: tiny
model: {sizes: [64, 16, 10], feedback: sleep}
data: {source: sklearn, n_train: 200, n_test: 100}
train: {epochs: 1, sleep_every: 20, chunk: 40, sleep_duration: 100 ms, warmup_sleep_blocks: 3, backend: numpy, seed: 5}
record: {probe_samples: 2, probe_every: 2}
"""


THREE_CHUNKS = TINY.replace("n_train: 200, n_test: 100", "n_train: 120, n_test: 20") \
    .replace("warmup_sleep_blocks: 3", "warmup_sleep_blocks: 1")  # the resume tests' run: three chunks of 40


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
        assert sleep_slots(cfg.model, cfg.train) == 3 and len(sleep) == 10 * 3 and np.all(shown[sleep] == -1)
        assert np.array_equal(np.cumsum(kinds == TRAIN)[sleep[::3]], np.arange(0, 200, 20))
        assert all(s.values == {"eta": pytest.approx(0.03 * 0.7 ** (epoch - 1))} for s in train)
    assert [(s.epoch, s.split) for s in steps if s.kind == "evaluate"] == [(e, "test") for e in range(4)]
    assert not any(s.kind == "test" for s in steps)
    seeds = [s.seed for s in steps if s.kind != "evaluate"]
    assert len(set(seeds)) == len(seeds)
    held_out = plan_tasks(cfg.model, cfg.train, 200, validation=True)
    assert [(s.kind, s.epoch, s.split) for s in held_out if s.kind in ("evaluate", "test")] == \
        [*(("evaluate", e, "validation") for e in range(4)), ("test", 3, "test")]  # test once, at the end


def test_a_run_with_a_validation_split_measures_it_every_epoch_and_test_once(tiny, tmp_path):
    run = start_run(load_config(tiny, ["data.validation=20", "data.n_train=20", "data.n_test=20", "train.epochs=2",
                                       "train.warmup_sleep_blocks=1", "record.probe_samples=0"]), root=tmp_path)
    Trainer(run, progress=False).train()
    accuracy = run.metrics().query("metric == 'accuracy'")
    assert sorted(accuracy[accuracy.split == "validation"].epoch) == [0, 1, 2]
    assert list(accuracy[accuracy.split == "test"].epoch) == [2]
    assert run.final_accuracies() == {"validation accuracy": run.accuracy("validation")[2],
                                      "test accuracy": run.accuracy("test")[2]}
    recorded = run.read_json("splits.json")
    assert recorded["validation"]["samples"] == 20 and recorded["train"]["samples"] == 20
    with pytest.raises(RunChangedError, match=r"split\(s\) test differ from the run's"):
        run.check_splits(recorded | {"test": recorded["validation"]})


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
    run = start_run(load_config(tiny, ["model.params.forward_synapse.eta=10", "train.max_weight=1.5", "data.n_test=20",
                                       "train.warmup_sleep_blocks=1", "record.probe_samples=0"]), root=tmp_path)
    with pytest.raises(TrainingDiverged, match="exceeds train.max_weight = 1.5"):
        Trainer(run, progress=False).train()
    status = run.read_json("status.json")
    assert status["status"] == "diverged" and "(train, epoch 1)" in status["message"]
    state, progress = run.load_checkpoint()
    assert progress.task >= 2  # warm-up and the first evaluation were good
    check_health(state, 1.5)
    assert len(run.metrics()) == len(progress.rows)


def _train(*args: str) -> subprocess.Popen:
    """The CLI in a process group of its own (as a shell starts a job), so that a test can signal the group."""
    return subprocess.Popen([sys.executable, "-m", "biograd.cli", "train", "--no-progress", *args],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True)


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


def resume_after_kill(config: Path, out: Path, kill_after_step: int, timeout: float,
                      sig: signal.Signals = signal.SIGKILL, group: bool = False, delay: float = 0.3) -> None:
    """An uninterrupted run and a run killed mid-chunk with ``sig`` (to the trainer, or with ``group`` to its
    whole process group, as Ctrl-C in a terminal or ``timeout`` does), then resumed, end bit-identical.
    SIGKILL leaves the status at "running"; SIGINT and SIGTERM stop the run (status "failed", exit 130 or
    143, one line, no traceback). Either way the trainer's worker processes (standalone builds) do not
    outlive it."""
    whole = _train(str(config), "--out", str(out / "whole"))
    assert whole.wait(timeout) == 0, whole.stdout.read()
    killed = _train(str(config), "--out", str(out / "killed"))
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if kill_after_step < 0:  # while the builds compile, before the first task
            runs = [p.parent.parent for p in (out / "killed").glob("*/build/code_objects")]
            if runs:
                runs = [runs[0] / "checkpoint.npz"]
                break
        else:
            runs = list((out / "killed").glob("*/checkpoint.npz"))
            if runs and RunDirectory(runs[0].parent).load_checkpoint()[1].task >= kill_after_step:
                break
        time.sleep(0.05)
    time.sleep(delay)  # into the next chunk
    workers = _children(killed.pid)
    if group:
        os.killpg(killed.pid, sig)
    else:
        os.kill(killed.pid, sig)
    run = RunDirectory(runs[0].parent)
    status = run.read_json("status.json")
    if sig == signal.SIGKILL:
        assert killed.wait() == -signal.SIGKILL
        assert status["status"] == "running"
        assert int(status["message"].split()[1]) >= kill_after_step  # "task k of n": the progress is shown
    else:
        assert killed.wait(timeout) == 128 + sig, killed.stdout.read()
        output = killed.stdout.read()
        assert "Traceback" not in output and f"continue with: biograd train --resume {run.path}" in output, output
        status = run.read_json("status.json")
        assert status["status"] == "failed" and sig.name in status["message"], status
    deadline = time.monotonic() + 10
    while any(process_alive(w) for w in workers) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not any(process_alive(w) for w in workers), "worker processes outlived the killed trainer"
    resumed = _train("--resume", str(run.path))
    assert resumed.wait(timeout) == 0, resumed.stdout.read()
    assert run.read_json("status.json")["status"] == "finished"
    sessions = run.read_json("timings.json")["sessions"]
    assert len(sessions) == 2 - (kill_after_step < 0) and sessions[-1]["resumed_at_task"] >= kill_after_step
    _compare(RunDirectory(next((out / "whole").iterdir())), run)


@pytest.mark.slow
@pytest.mark.parametrize(("sig", "group"), [(signal.SIGKILL, False), (signal.SIGTERM, False), (signal.SIGINT, True)],
                         ids=["SIGKILL", "SIGTERM", "group-SIGINT"])
def test_resume_after_kill_is_bit_identical_numpy(tiny, tmp_path, sig, group):
    config = tmp_path / "three_chunks.yaml"  # killed in the second of three chunks
    config.write_text(THREE_CHUNKS)
    resume_after_kill(config, tmp_path, kill_after_step=3, timeout=300, sig=sig, group=group)


BIOGRAD = Path(sys.executable).with_name("biograd")  # the console script, as a user starts the program


def _biograd_train(*args: str) -> tuple[subprocess.Popen, float]:
    """The console script training (a process group of its own, as a shell's job), once Python has loaded biograd
    (its stop handler is installed); and that moment."""
    process = subprocess.Popen([str(BIOGRAD), "train", "--no-progress", *args], stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT, text=True, start_new_session=True)
    deadline = time.monotonic() + 30
    while not handles_sigterm(process.pid) and time.monotonic() < deadline:
        time.sleep(0.01)
    return process, time.monotonic()


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory) -> tuple[Path, RunDirectory, float]:
    """The three-chunk run's config, trained once without a stop, and how long that took once biograd was loaded."""
    folder = tmp_path_factory.mktemp("uninterrupted")
    (folder / "three_chunks.yaml").write_text(THREE_CHUNKS)
    process, loaded = _biograd_train(str(folder / "three_chunks.yaml"), "--out", str(folder / "out"))
    output, _ = process.communicate(timeout=300)
    assert process.returncode == 0, output
    return folder / "three_chunks.yaml", RunDirectory(next((folder / "out").iterdir())), time.monotonic() - loaded


@pytest.mark.slow
@settings(max_examples=4, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(moment=st.floats(0, 1), signals=st.integers(1, 2))
def test_a_run_stopped_at_any_moment_resumes_bit_identical(uninterrupted, tmp_path_factory, moment, signals):
    """Ctrl-C (once, or twice: stop at once) to a training's process group at a moment drawn by hypothesis (a
    fraction of the uninterrupted run's time, from the program's stop handler on: start-up, config, data, run
    directory, build, chunks, probes, evaluation, the end): one line, exit 130 (or 0 if it had ended; or killed by
    the signal, the run finished and reported, if it came as Python shut down), no traceback; then the run resumed
    (or, if stopped before it had a run directory, started again) ends bit for bit as the uninterrupted one.
    Derandomised: CI draws the same moments every time (where they land depends on the machine's speed)."""
    config, whole, duration = uninterrupted
    out = tmp_path_factory.mktemp("stopped") / "out"
    process, _ = _biograd_train(str(config), "--out", str(out))
    time.sleep(moment * duration)
    for _ in range(signals):
        os.killpg(process.pid, signal.SIGINT)
        time.sleep(0.1)
    output, _ = process.communicate(timeout=300)
    assert process.returncode in (0, 130, -signal.SIGINT), output
    assert "Traceback" not in output and "Exception ignored" not in output and "WARNING" not in output, output
    runs = list(out.glob("*")) if out.is_dir() else []
    if process.returncode == -signal.SIGINT:  # as Python shut down (its handlers reset): after the work, all said
        assert "after 1 epoch(s)" in output and RunDirectory(runs[0]).read_json("status.json")["status"] == "finished"
    if process.returncode == 130:
        stopped = [line for line in output.splitlines() if "stopped by SIGINT" in line]
        assert len(stopped) == 1 and all(f"--resume {run}" in stopped[0] for run in runs), output
    again, _ = _biograd_train("--resume", str(runs[0])) if runs else _biograd_train(str(config), "--out", str(out))
    output, _ = again.communicate(timeout=300)
    assert again.returncode == 0, output
    _compare(whole, RunDirectory(next(out.iterdir())))


@pytest.mark.slow
@pytest.mark.standalone
@pytest.mark.parametrize(("sig", "when"), [(signal.SIGINT, "chunk"), (signal.SIGTERM, "compile")])
def test_group_signal_on_standalone_stops_cleanly_and_resumes_bit_identically(tiny, tmp_path, sig, when):
    """Ctrl-C or `timeout` hit the compiled binary, make and the workers too: the run still stops with
    one line, exit 130/143, the last checkpoint intact, and resumes to the uninterrupted result."""
    config = tmp_path / "standalone.yaml"
    config.write_text(TINY.replace("backend: numpy", "backend: cpp_standalone").replace("n_train: 200", "n_train: 400"))
    after, delay = (5, 0.3) if when == "chunk" else (-1, 1.0)  # -1: while the builds compile
    resume_after_kill(config, tmp_path, kill_after_step=after, timeout=600, sig=sig, group=True, delay=delay)


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

    smaller = ("data.n_train=40", "data.n_test=20", "train.warmup_sleep_blocks=1", "record.probe_samples=0")
    result = CliRunner().invoke(app, ["train", str(tiny), "--out", str(tmp_path), "--no-progress",
                                      *(arg for item in smaller for arg in ("--set", item))])
    assert result.exit_code == 0, result.output
    run = RunDirectory(next(tmp_path.glob("*_tiny_*")))
    assert (run.path / "learning_curve.png").stat().st_size > 10_000
    assert (run.path / "weights_epoch1.npz").is_file()
    metrics = run.metrics()
    assert list(metrics.columns) == ["epoch", "chunk", "samples", "split", "metric", "layer", "value"]
    final = run.accuracy("test").iloc[-1]
    assert f"test accuracy {final:.2%}" in result.output
    result = CliRunner().invoke(app, ["evaluate", str(run.path)])
    assert result.exit_code == 0, result.output
    assert f"accuracy {final:.2%} on 20 samples" in result.output


@pytest.mark.parametrize(("args", "message"), [
    (["train"], "give a config file or --resume RUN_DIR"),
    (["train", "{tiny}", "--set", "train.etaa=1"], "train.etaa: unknown key"),
    (["train", "--resume", "{tmp}", "--set", "train.epochs=1"], "--set cannot change a run that is resumed"),
    (["train", "--resume", "{tmp}"], "not a run directory (no config.yaml)"),
    (["train", "{tiny}", "--out", "{tmp}", "--set", "data.source=nmnist", "--set", "data.data_dir={tmp}/none",
      "--set", "model.sizes=[2312, 12, 10]", "--set", "model.encoder=events"], "does not exist"),
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
    net = BioGradNetwork(tiny_spec((64, 10)), slots=2, report="text")
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
    spec = tiny_spec((6, 5, 5, 3), "sleep")
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


def _cli(*args):
    from typer.testing import CliRunner

    from biograd.cli import app

    return CliRunner().invoke(app, [str(a) for a in args])


@pytest.fixture(scope="module")
def trained_once(tmp_path_factory) -> Path:
    config = tmp_path_factory.mktemp("config") / "tiny.yaml"
    config.write_text(TINY)
    root = tmp_path_factory.mktemp("runs")
    run = start_run(load_config(config, ["data.n_train=40", "data.n_test=20", "record.probe_samples=0",
                                         "train.warmup_sleep_blocks=1"]), root=root)
    Trainer(run, progress=False).train()
    return run.path


@pytest.fixture
def finished_run(trained_once, tmp_path) -> RunDirectory:
    """A finished tiny run of this test's own (a copy of one trained once per module)."""
    return RunDirectory(shutil.copytree(trained_once, tmp_path / trained_once.name))


def test_resume_refuses_an_edited_run_unless_asked_and_records_it(finished_run):
    run = finished_run
    (run.path / "status.json").write_text('{"status": "running", "message": "task 3 of 6"}')
    config = run.path / "config.yaml"
    config.write_text(config.read_text().replace("epochs: 1", "epochs: 2"))
    (run.equations / "soma.yaml").write_text((run.equations / "soma.yaml").read_text() + "\n")
    result = _cli("train", "--resume", run.path)
    assert result.exit_code == 2, result.output
    assert "changed since the run was created: config.yaml, equations/soma.yaml" in " ".join(result.output.split())
    result = _cli("train", "--resume", run.path, "--accept-changes", "--no-progress")
    assert result.exit_code == 0, result.output
    history = [json.loads(line) for line in (run.path / "history.jsonl").read_text().splitlines()]
    assert history[0]["event"] == "accepted changes" and history[0]["files"] == ["config.yaml", "equations/soma.yaml"]
    assert run.accuracy("test").index.max() == 2 and run.changed_files() == []


def test_a_run_without_its_contract_or_with_edited_files_is_not_evaluated_unless_asked(finished_run):
    """A deleted contract.json disables nothing: resume and evaluate refuse the run as changed, until
    --accept-changes makes today's files its contract (recorded in history.jsonl)."""
    run = finished_run
    (run.equations / "soma.yaml").write_text((run.equations / "soma.yaml").read_text() + "\n")
    result = _cli("evaluate", run.path)
    assert result.exit_code == 2 and "changed since the run was created: equations/soma.yaml" in \
        " ".join(result.output.split()), result.output
    (run.path / "contract.json").unlink()
    result = _cli("evaluate", run.path)
    assert result.exit_code == 2 and "contract.json (missing: the files cannot be checked)" in \
        " ".join(result.output.split()), result.output
    result = _cli("evaluate", run.path, "--accept-changes")
    assert result.exit_code == 0 and "accuracy" in result.output, result.output
    assert run.changed_files() == [] and "accepted changes" in (run.path / "history.jsonl").read_text()


@pytest.mark.parametrize("change", ["edited", "no contract"])
def test_probe_refuses_a_changed_run_with_evaluate_s_line(finished_run, change):
    """probe builds the network from the run's files, as evaluate does, and checked nothing: it probed an edited
    run (or one without contract.json) with the edited files."""
    run = finished_run
    if change == "edited":
        (run.equations / "soma.yaml").write_text((run.equations / "soma.yaml").read_text() + "\n")
    else:
        (run.path / "contract.json").unlink()
    evaluated, probed = _cli("evaluate", run.path), _cli("probe", run.path, "--samples", 1)
    assert probed.exit_code == evaluated.exit_code == 2, probed.output
    assert probed.output == evaluated.output and len(probed.output.strip().splitlines()) == 1, probed.output
    assert ("equations/soma.yaml" if change == "edited" else "contract.json (missing") in probed.output
    assert not list(run.path.glob("posthoc*")) and not (run.path / "history.jsonl").exists()


def test_resume_of_a_finished_run_does_nothing(finished_run):
    before = {p.name: p.stat().st_mtime_ns for p in finished_run.path.iterdir()}
    result = _cli("train", "--resume", finished_run.path)
    assert result.exit_code == 0 and "nothing to do" in result.output, result.output
    assert {p.name: p.stat().st_mtime_ns for p in finished_run.path.iterdir()} == before


@pytest.mark.parametrize(("name", "content", "says"), [
    ("status.json", b"", "not readable JSON (Expecting value at line 1 column 1); the run can be resumed after "
                         "deleting it"),
    ("timings.json", b'{"sessions": [{"build_s": 1.0',
     "not readable JSON (Expecting ',' delimiter at line 1 column 30); the run can be resumed after deleting it (the "
     "times of its earlier sessions are lost)"),
    ("contract.json", b"\xe9t\xe9", "not readable JSON (not UTF-8 text); after deleting it the run resumes with "
                                    "--accept-changes, which makes today's files the contract"),
    ("splits.json", b"[1, 2]", "not a JSON object but list; after deleting it a resume records today's data as the "
                               "run's, unchecked"),
])
def test_a_corrupt_json_file_of_a_run_is_named_with_what_deleting_it_does(finished_run, name, content, says):
    """It was the JSON library's message alone ('Expecting value: line 1 column 1 (char 0)')."""
    run = finished_run
    (run.path / "status.json").write_text('{"status": "failed", "message": "stopped by SIGINT"}')
    (run.path / name).write_bytes(content)
    result = _cli("train", "--resume", run.path, "--no-progress")
    assert result.exit_code == 2, result.output
    assert result.output.splitlines()[-1] == f"error: {run.path / name}: {says}", result.output  # one line
    if name == "status.json":
        (run.path / name).unlink()
        result = _cli("train", "--resume", run.path, "--no-progress")
        assert result.exit_code == 0 and run.read_json("status.json")["status"] == "finished", result.output


def test_a_member_of_an_ensemble_is_resumed_only_with_the_members_that_share_its_random_numbers(tiny, tmp_path):
    """It continued alone, with other random draws than the ensemble's (one generator per build)."""
    a, b, c = start_runs(load_config(tiny, ["model.replicas=3", "record.probe_samples=0"]), root=tmp_path)
    for run in (a, b, c):  # as after a Ctrl-C in the ensemble's first session
        run.set_status("failed", "stopped by SIGINT after task 2 of 9")
        run.write_json("timings.json", {"sessions": [{"ensemble": [a.path.name, b.path.name, c.path.name]}]})
    result = _cli("train", "--resume", a.path, "--resume", b.path)
    assert result.exit_code == 2, result.output
    assert " ".join(result.output.split()) == (
        f"error: {a.path}: trained in one ensemble build with {c.path}, whose random numbers it shares (one generator "
        "per build): resumed without them it would continue with other draws than the ensemble's; resume them "
        f"together: biograd train --resume {a.path} --resume {b.path} --resume {c.path}")
    a.check_ensemble([c, b, a])  # all of them, in any order
    c.set_status("finished", "9 tasks")  # a kill between two members' last checkpoints: c is done
    a.check_ensemble([a, b])
    b.set_status("diverged", "task 5: W1 has NaN entries")  # the ensemble cannot go on: any member may
    a.check_ensemble([a])


def test_resume_refuses_a_lost_checkpoint_and_names_what_remains(finished_run):
    run = finished_run
    (run.path / "status.json").write_text('{"status": "failed", "message": "killed"}')
    run.checkpoint_path.unlink()
    result = _cli("train", "--resume", run.path)
    text = " ".join(result.output.split())
    assert result.exit_code == 2 and "checkpoint.npz: missing, but the run has made progress" in text, text
    assert "weights_epoch0.npz, weights_epoch1.npz" in text
    run.checkpoint_path.write_bytes(b"")  # an empty file: named, not "Aborted."
    result = _cli("train", "--resume", run.path)
    assert result.exit_code == 2 and "checkpoint.npz: not a readable checkpoint" in " ".join(result.output.split())


def test_a_second_trainer_of_the_same_run_exits_at_once(tiny, tmp_path):
    run = start_run(load_config(tiny), root=tmp_path)
    with run.lock():
        result = _cli("train", "--resume", run.path)
    assert result.exit_code == 1 and "another process is training this run" in " ".join(result.output.split())
    assert run.read_json("status.json") == {}  # the other trainer's run is left alone


def test_a_lock_file_deleted_or_replaced_under_its_holder_is_no_lock_any_more(tmp_path):
    path = tmp_path / ".lock"
    held = acquired_lock(path)
    held.check()
    path.unlink()
    other = acquired_lock(path)  # a flock is on the inode: a second process locks a new file, unrefused
    assert other is not None
    with pytest.raises(LockLostError, match=rf"^{path}: the lock file was deleted or replaced while this process held "
                                            "it, so another process can lock a new one and write here too"):
        held.check()
    other.check()
    held.release()


@pytest.mark.slow  # trains a tiny run twice (~6 s CPU); the lock's and the disk's checks stay fast
def test_a_trainer_whose_lock_file_is_deleted_stops_before_writing_again(tiny, tmp_path, monkeypatch):
    """Deleting .lock let a second trainer of the run lock a new file while the first went on: both wrote."""
    run = start_run(load_config(tiny, ["data.n_train=40", "data.n_test=20", "record.probe_samples=0",
                                       "train.warmup_sleep_blocks=1"]), root=tmp_path)
    second = []
    run_task = Trainer._run_task

    def lock_deleted_in_task_2(self, session, index, done):
        if index == 1:  # a user deletes the lock file, a second `biograd train --resume` locks a new one
            (run.path / ".lock").unlink()
            second.append(acquired_lock(run.path / ".lock"))
        return run_task(self, session, index, done)

    monkeypatch.setattr(Trainer, "_run_task", lock_deleted_in_task_2)
    result = _cli("train", "--resume", run.path, "--no-progress")
    assert result.exit_code == 1, result.output
    assert result.output.splitlines()[-1].startswith(f"error: {run.path / '.lock'}: the lock file was deleted or "
                                                     "replaced while this process held it"), result.output
    assert run.load_checkpoint()[1].task == 1 and run.read_json("status.json")["message"].startswith("task 1 of")
    second[0].release()
    monkeypatch.undo()
    result = _cli("train", "--resume", run.path, "--no-progress")
    assert result.exit_code == 0 and run.finished, result.output


@pytest.mark.slow  # trains a tiny run twice (~6 s CPU); the lock's and the disk's checks stay fast
def test_a_full_disk_stops_training_with_one_line_and_a_resumable_run(tiny, tmp_path, monkeypatch, capsys):
    """ENOSPC at the second checkpoint, the disk full from then on (no new file can be written; an existing file's
    own blocks can): the line was 'error: OSError: [Errno 28] No space left on device', naming no file, and
    status.json, which cannot be written anew either, would have kept saying running."""
    import biograd.cli as cli

    run = start_run(load_config(tiny, ["data.n_train=40", "data.n_test=20", "record.probe_samples=0",
                                       "train.warmup_sleep_blocks=1"]), root=tmp_path)
    write_bytes, checkpoints = Path.write_bytes, []

    def disk_fills_at_checkpoint_2(self, data):
        checkpoints.extend([self] if self.name.startswith(".checkpoint.npz.") else [])
        if len(checkpoints) >= 2 and self.name.startswith("."):  # a temporary file of rundir.atomic_path
            raise OSError(errno.ENOSPC, "No space left on device")
        return write_bytes(self, data)

    monkeypatch.setattr(Path, "write_bytes", disk_fills_at_checkpoint_2)
    monkeypatch.setattr("sys.argv", ["biograd", "train", "--resume", str(run.path), "--no-progress"])
    with pytest.raises(SystemExit) as exit_:
        cli.main()
    lines = capsys.readouterr().out.splitlines()
    assert exit_.value.code == 1 and len(lines) == 2, lines  # "run directory: ..." and the error
    assert lines[1].startswith(f"error: {run.checkpoint_path}: not written: No space left on device (the disk "
                               "mounted at ") and " free of " in lines[1], lines[1]
    assert lines[1].endswith(f"the last checkpoint is intact: free space, then continue with: biograd train --resume "
                             f"{run.path}"), lines[1]
    status = run.read_json("status.json")
    assert status["status"] == "failed" and f"{run.checkpoint_path}: not written" in status["message"], status
    assert [p.name for p in run.path.iterdir() if p.name.startswith(".")] == [".lock"]  # no temporary file
    assert run.load_checkpoint()[1].task == 1
    monkeypatch.undo()
    result = _cli("train", "--resume", run.path, "--no-progress")
    assert result.exit_code == 0 and run.finished, result.output


def test_a_probe_that_finds_the_disk_full_leaves_no_half_folder(finished_run, monkeypatch):
    """Its staging folder (.posthoc.<random>) stayed behind."""
    write_bytes = Path.write_bytes

    def full(self, data):
        if self.name.startswith(".alignment.parquet."):
            raise OSError(errno.ENOSPC, "No space left on device")
        return write_bytes(self, data)

    monkeypatch.setattr(Path, "write_bytes", full)
    result = _cli("probe", finished_run.path, "--samples", 1, "--epoch", 1)
    assert isinstance(result.exception, DiskFullError), result.output
    assert str(result.exception).endswith(")") and "alignment.parquet: not written: No space left on device (the " \
        "disk mounted at " in str(result.exception)
    assert not list(finished_run.path.glob("*posthoc*"))


def test_evaluate_beside_a_trainer_builds_in_a_folder_of_its_own(finished_run):
    """While a trainer holds the run, evaluate builds in a private folder (removed afterwards), never in the
    trainer's build_eval; otherwise in build_eval, holding the run so that no trainer starts meanwhile."""
    run = finished_run
    with run.lock():  # as a trainer does
        with run.build_folder("build_eval") as folder:
            assert folder.parent == run.path and folder.name.startswith("build_eval.") and folder.is_dir()
        assert not folder.exists()
        result = _cli("evaluate", run.path)
        assert result.exit_code == 0 and "accuracy" in result.output, result.output
    assert not list(run.path.glob("build_eval.*"))
    with run.build_folder("build_eval") as folder:
        assert folder == run.path / "build_eval"
        with pytest.raises(RunLockedError, match="training this run, or evaluating or probing in it"):
            with run.lock():
                pass


@pytest.mark.parametrize(("change", "message"), [
    (lambda a: a | {"W1": np.full_like(a["W1"], np.nan)}, "array W1 has 1024 NaN/inf entries"),
    (lambda a: a | {"W2": a["W2"][:, :3]}, "array W2 has shape (10, 3), the run's network 64-16-10 needs (10, 16)"),
    (lambda a: {k: v for k, v in a.items() if k != "B2"}, "no array B2"),
    (lambda a: a | {"bias1": a["bias1"].astype(np.int64)}, "array bias1 has dtype int64, not floating point"),
])
def test_checkpoints_with_bad_arrays_are_refused_naming_the_array(finished_run, change, message):
    with np.load(finished_run.path / "weights_epoch1.npz") as data:
        arrays = change({k: data[k] for k in data.files})
    bad = finished_run.path / "bad.npz"
    np.savez(bad, **arrays)
    result = _cli("evaluate", finished_run.path, "--checkpoint", bad)
    assert result.exit_code == 2 and f"bad.npz: {message}" in " ".join(result.output.split()), result.output


def test_a_network_too_large_for_the_machine_is_refused_before_anything_is_made(tiny, tmp_path):
    result = _cli("train", tiny, "--out", tmp_path, "--set", "model.sizes=[64, 5000000, 10]")
    text = " ".join(result.output.split())
    assert result.exit_code == 2 and "the network 64-5000000-10 needs about" in text, text
    assert "more than 80% of this machine's" in text and not list(tmp_path.glob("*_tiny_*"))


def test_missing_data_is_found_before_a_run_directory_is_made(tiny, tmp_path):
    result = _cli("train", tiny, "--out", tmp_path, "--set", "data.source=mnist", "--set", "model.sizes=[784, 16, 10]",
                  "--set", f"data.data_dir={tmp_path / 'none'}")
    assert result.exit_code == 2 and "does not exist" in result.output and not list(tmp_path.glob("*_tiny_*"))


def test_a_unit_error_in_an_equation_file_is_named_by_file_and_line_before_a_run_is_made(tiny, tmp_path):
    folder = tmp_path / "equations"
    shutil.copytree(equations_dir(), folder)
    soma = folder / "soma.eqs"
    soma.write_text(soma.read_text().replace("dA_soma/dt = forward*u_soma/dt : 1", "dA_soma/dt = forward*u_soma : 1"))
    message = r"soma.eqs:32: Brian2 rejects the element: Expression 'forward\*u_soma' does not have the expected unit"
    with pytest.raises(ModelFileError, match=message):
        start_run(load_config(tiny), equations=folder, root=tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_run_files_follow_the_users_umask(tiny, tmp_path):
    old = os.umask(0o027)
    try:
        run = start_run(load_config(tiny), root=tmp_path)
    finally:
        os.umask(old)
    for name in ("config.yaml", "versions.json", "contract.json"):
        assert (run.path / name).stat().st_mode & 0o777 == 0o640, name
