"""Stopping a command at any moment (issue 33): SIGINT or SIGTERM, from Python loading the command line to the
end of training, is one line and exit code 130 or 143, without a traceback; a run directory made by then says
why it stopped and can be resumed; Brian2's debug files are not left in the temp folder."""

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from support import SlowBuild, handles_sigterm, process_alive

from biograd.rundir import RunDirectory
from biograd.signals import Terminated, stop_requests, stops_at_once, stops_deferred

BIOGRAD = Path(sys.executable).with_name("biograd")  # the console script, as a user starts the program

TINY = """\
name: tiny
model: {sizes: [64, 12, 10], feedback: sleep}
data: {source: sklearn, n_train: 40, validation: 20, n_test: 20}
train: {epochs: 2, sleep_every: 20, chunk: 20, sleep_duration: 100 ms, warmup_sleep_blocks: 1, backend: numpy}
record: {probe_samples: 0}
"""


class Finalised:
    def __del__(self):
        signal.raise_signal(signal.SIGTERM)  # the signal arrives while Python runs a finaliser


def test_a_stop_signal_inside_a_finaliser_is_raised_again_in_ordinary_code(capfd):
    """Python ignores an exception raised in a finaliser ('Exception ignored in ...'), and the command went on."""
    start = time.monotonic()
    with pytest.raises(Terminated, match="stopped by SIGTERM") as stop:
        with stops_at_once():
            Finalised()
            time.sleep(5)
    assert stop.value.exit_code == 143 and time.monotonic() - start < 2
    with pytest.raises(Terminated, match="stopped by SIGTERM"):  # a block that ends first raises it as it ends
        with stops_at_once():
            Finalised()
    time.sleep(0.1)  # and nothing arrives after the block
    assert "Exception ignored" not in capfd.readouterr().err


def test_a_stop_while_a_run_directory_is_made_waits_for_its_end_then_acts_as_outside():
    made = []
    with pytest.raises(Terminated, match="stopped by SIGTERM"):
        with stops_at_once():
            with stops_deferred():  # as start_runs makes a run directory
                signal.raise_signal(signal.SIGTERM)
                made.append("whole")
    assert made == ["whole"]
    with stop_requests(notice=False) as requested:  # a serial study's trial: a request, to stop at a safe point
        with stops_deferred():
            signal.raise_signal(signal.SIGINT)
    assert requested == ["SIGINT"]


def test_a_stop_during_a_unit_check_is_not_an_equation_file_error(monkeypatch):
    from biograd.models import elements

    def interrupted(*args):
        raise KeyboardInterrupt

    monkeypatch.setattr(elements.b2, "Network", interrupted)  # Ctrl-C as Brian2 checks the element's units
    with pytest.raises(KeyboardInterrupt):
        elements.check_units(elements.load_element("soma"))


BRIAN2_RUN = """\
import os, signal
from biograd.signals import Terminated, stops_at_once
try:
    with stops_at_once():
        import biograd.models.backend  # brian2 imported in the block, as by a command: its handler over the block's
        import brian2 as b2
        b2.prefs.codegen.target = "numpy"
        net = b2.Network(b2.NeuronGroup(1, "v : 1"))
        net.add(b2.NetworkOperation(lambda t: os.kill(os.getpid(), signal.SIGINT) if t >= 5 * b2.ms else None,
                                    dt=1 * b2.ms))
        net.run(100 * b2.ms)
        print("ran to", net.t)
except Terminated as err:
    print(err)
"""


def test_a_stop_signal_while_brian2_simulates_is_a_stop_not_a_simulation_cut_short():
    """Brian2's SIGINT handler (installed as brian2 is imported, over biograd's) turned Ctrl-C during a simulation
    into 'Simulation stop requested' and a run cut short, which the trainer took as a whole chunk; and it swallowed
    the second Ctrl-C of a trainer stopping after its task. biograd.models.backend turns it off."""
    done = subprocess.run([sys.executable, "-c", BRIAN2_RUN], capture_output=True, text=True, timeout=120)
    assert done.stdout == "stopped by SIGINT\n" and "Simulation stop requested" not in done.stderr, \
        done.stdout + done.stderr


@pytest.mark.parametrize("debug", [False, pytest.param(True, marks=pytest.mark.slow)], ids=["default", "debug"])
def test_a_process_that_ends_without_cleaning_up_leaves_no_brian2_files(tmp_path, debug):
    """Brian2 writes brian_debug_*.log to the temp folder at import and deletes it at a clean exit only: a
    process killed (or a worker ending with os._exit) left one each time. BIOGRAD_DEBUG (biograd --debug) keeps it."""
    script = "import os, signal, biograd.models.backend; os.kill(os.getpid(), signal.SIGKILL)"
    env = os.environ | {"TMPDIR": str(tmp_path), "BIOGRAD_DEBUG": "1" if debug else ""}
    assert subprocess.run([sys.executable, "-c", script], env=env).returncode == -signal.SIGKILL
    assert bool(list(tmp_path.glob("brian_debug_*.log"))) == debug, list(tmp_path.iterdir())


@pytest.fixture
def python_stops():
    """SIGINT and SIGTERM raise KeyboardInterrupt, as Python's SIGINT handler does (SIGTERM would end pytest)."""

    def interrupt(signum, frame):
        raise KeyboardInterrupt

    previous = {sig: signal.signal(sig, interrupt) for sig in (signal.SIGINT, signal.SIGTERM)}
    yield interrupt
    for sig, handler in previous.items():
        signal.signal(sig, handler)


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
@pytest.mark.parametrize(("args", "work"), [
    (["describe"], "biograd.models.describe.describe_model"),
    (["check"], "biograd.models.elements.check_units"),
    (["evaluate", "RUN"], "biograd.rundir.RunDirectory.__init__"),
    (["probe", "RUN"], "biograd.rundir.RunDirectory.__init__"),
    (["export", "RUN"], "biograd.rundir.RunDirectory.__init__"),
    (["report", "RUN"], "biograd.report.write_report"),
    (["demo"], "biograd.demo.check_model_files"),
], ids=["describe", "check", "evaluate", "probe", "export", "report", "demo"])
def test_a_stop_signal_in_any_command_is_one_line_and_its_exit_code(monkeypatch, capsys, python_stops, args, work,
                                                                     sig):
    """Commands without stop handling of their own (all but train and sweep): typer ended a KeyboardInterrupt with
    exit 130 and not a word. The program's entry (cli.main) takes both signals for every command."""
    from biograd import cli

    monkeypatch.setattr(work, lambda *args, **kwargs: signal.raise_signal(sig))  # the signal as the command works
    monkeypatch.setattr("sys.argv", ["biograd", *args])
    with pytest.raises(SystemExit) as stop:
        cli.main()
    assert stop.value.code == 128 + sig
    said = capsys.readouterr()
    assert said.err == f"stopped by {sig.name}\n" and said.out == ""
    assert signal.getsignal(signal.SIGINT) is signal.getsignal(signal.SIGTERM) is signal.SIG_IGN  # a stop is final


def test_a_second_stop_signal_while_a_command_stops_changes_nothing(monkeypatch, capsys, python_stops, tmp_path):
    """Ctrl-C again while train says that it stopped: the program's handler took it as a new stop ('stopped by
    SIGINT' in place of, or below, the line with the command that continues); as Python shut down, the signal
    ended the process. The first stop is final: more are ignored until the process ends."""
    from biograd import cli

    config = tmp_path / "tiny.yaml"
    config.write_text(TINY)
    monkeypatch.setattr("biograd.launch.start_runs", lambda *args, **kwargs: signal.raise_signal(signal.SIGINT))
    said = cli.console.print

    def again(*args, **kwargs):  # the second Ctrl-C, as the stop is reported
        signal.raise_signal(signal.SIGINT)
        said(*args, **kwargs)

    monkeypatch.setattr(cli.console, "print", again)
    monkeypatch.setattr("sys.argv", ["biograd", "train", str(config), "--out", str(tmp_path / "out")])
    with pytest.raises(SystemExit) as stop:
        cli.main()
    assert stop.value.code == 130
    output = capsys.readouterr()
    assert output.out == "training stopped by SIGINT (no run directory was made)\n" and output.err == "", output


SIGNAL_WHILE_LOADING = """\
import importlib.abc, os, signal, sys, time
class SignalWhileLoading(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path, target=None):
        if name == "biograd.cli":  # the console script begins to load the command line's modules
            os.kill(os.getpid(), signal.{name})
            time.sleep(5)
sys.meta_path.insert(0, SignalWhileLoading())
"""


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_a_stop_signal_while_the_command_line_loads_is_one_line(tmp_path, sig):
    """The console script takes stop signals from ``import biograd`` on (signals.exit_on_stop), before it loads
    biograd.cli and its libraries: a signal then (sent from inside that import: no timing) is one line and
    128 + its number, without a traceback."""
    (tmp_path / "sitecustomize.py").write_text(SIGNAL_WHILE_LOADING.format(name=sig.name))
    done = subprocess.run([str(BIOGRAD), "describe"], capture_output=True, text=True, timeout=60,
                          env=os.environ | {"PYTHONPATH": str(tmp_path)})
    assert done.returncode == 128 + sig, done.stderr
    assert done.stdout == "" and done.stderr == f"stopped by {sig.name}\n"


@pytest.mark.slow
@pytest.mark.parametrize(("sig", "when", "delay"), [
    (signal.SIGINT, None, 0.0),  # Python loading the command line
    (signal.SIGTERM, None, 1.5),  # loading the config, the equation files, the data
    (signal.SIGINT, None, 3.0),
    (signal.SIGINT, "run directory:", 0.0),  # the run directory made, the trainer starting
    (signal.SIGTERM, "epoch 0:", 0.0),  # training
], ids=["SIGINT-0s", "SIGTERM-1.5s", "SIGINT-3s", "SIGINT-run-directory", "SIGTERM-training"])
def test_a_stop_signal_at_any_moment_of_train_is_one_line_and_leaves_consistent_runs(tmp_path, sig, when, delay):
    config, out, tmp = tmp_path / "tiny.yaml", tmp_path / "out", tmp_path / "tmp"
    config.write_text(TINY)
    tmp.mkdir()
    process = subprocess.Popen([str(BIOGRAD), "train", str(config), "--out", str(out), "--no-progress"],
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True,
                               env=os.environ | {"TMPDIR": str(tmp), "PYTHONUNBUFFERED": "1"})
    lines = []
    if when is None:
        deadline = time.monotonic() + 10
        while not handles_sigterm(process.pid) and time.monotonic() < deadline:
            time.sleep(0.01)
    else:
        for line in process.stdout:
            lines.append(line)
            if line.startswith(when):
                break
        assert lines and lines[-1].startswith(when), "".join(lines)
    time.sleep(delay)
    os.killpg(process.pid, sig)  # as Ctrl-C in a terminal, or timeout, reaches the whole job
    output, _ = process.communicate(timeout=300)
    output = "".join(lines) + output
    assert process.returncode == 128 + sig, output
    assert "Traceback" not in output and "Exception ignored" not in output and "WARNING" not in output, output
    said = [line for line in output.splitlines() if not line.startswith(("run directory:", "epoch ",
                                                                        f"{sig.name}: stopping after this task"))]
    assert len(said) == 1 and f"stopped by {sig.name}" in said[0], output
    for path in out.glob("*") if out.is_dir() else []:
        run = RunDirectory(path)
        status = run.read_json("status.json")
        assert status["status"] == "failed" and sig.name in status["message"], status
        assert f"--resume {path}" in said[0]
        run.check_resumable()
        assert run.changed_files() == []
    assert not list(tmp.glob("brian_*")), list(tmp.iterdir())


@pytest.mark.slow
@pytest.mark.parametrize(("sig", "group"), [(signal.SIGINT, True), (signal.SIGTERM, False)],
                         ids=["SIGINT-group", "SIGTERM-sweep"])
def test_a_dask_sweep_stopped_says_so_in_one_line_with_the_command_that_continues_it(tmp_path, sig, group):
    """Ctrl-C reaches the sweep and its Dask workers (the process group), ``kill`` the sweep alone. Before: the
    workers' and nannies' log lines ('Async instruction ... ended with CancelledError', 'Worker process still alive
    after 4.0 seconds, killing') and multiprocessing's 'leaked semaphore objects' warning around the line, and the
    trials that trained left 'running'. Now: the sweep's lines only, and those trials say why they stopped."""
    (tmp_path / "tiny.yaml").write_text(TINY.replace("n_train: 40", "n_train: 100"))
    (tmp_path / "sweep.yaml").write_text("name: tiny_sweep\nbase: tiny.yaml\nseeds: [0, 1, 2]\n")
    out = tmp_path / "out"
    process = subprocess.Popen([str(BIOGRAD), "sweep", str(tmp_path / "sweep.yaml"), "--out", str(out), "--workers",
                                "2", "--no-progress"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                               start_new_session=True, env=os.environ | {"PYTHONUNBUFFERED": "1"})
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline and process.poll() is None:  # until trials train on the workers
        if any(json.loads(path.read_text())["status"] == "running" for path in out.glob("trials/*/*/status.json")):
            break
        time.sleep(0.1)
    (os.killpg if group else os.kill)(process.pid, sig)
    output, _ = process.communicate(timeout=120)
    assert process.returncode == 128 + sig, output
    said = [line for line in output.splitlines() if not line.startswith("epoch ")]  # a trial's, if one got there
    assert said == [f"sweep tiny_sweep: 3 trials in {out}", f"sweep stopped by {sig.name}; continue "
                    f"with: biograd sweep {tmp_path / 'sweep.yaml'} --out {out}"], output
    statuses = [json.loads(path.read_text()) for path in out.glob("trials/*/*/status.json")]
    assert statuses and all(status["status"] in ("failed", "finished") for status in statuses), statuses
    assert any(f"stopped by {sig.name} during a task" in status["message"] for status in statuses), statuses


@pytest.mark.slow
def test_a_stop_while_a_worker_compiles_ends_the_run_at_once(tmp_path, monkeypatch):
    """Observed: a serial sweep's trial on cpp_standalone, stopped twice ('stopping after this task', then again)
    while its evaluation build compiled in its worker, took a minute to exit: the trainer closed its workers by
    waiting for them, and the worker's make ignored the signals as the worker did. Here the evaluation worker's
    build is a stand-in (a child that runs 60 s); the run stops within seconds, the child ended, and resumes."""
    from biograd import trainer
    from biograd.config import load_config
    from biograd.launch import start_runs
    from biograd.workers import Worker

    config, pidfile = tmp_path / "tiny.yaml", tmp_path / "child.pid"
    config.write_text(TINY)
    real = trainer.hosted
    monkeypatch.setattr(trainer, "hosted", lambda backend, factory, *args: Worker(backend, SlowBuild, str(pidfile), 60)
                        if factory.__name__ == "Evaluator" else real(backend, factory, *args))
    runs = start_runs(load_config(config, []), root=tmp_path / "out")
    sent = []

    def twice():  # as Ctrl-C twice, once the worker compiles
        deadline = time.monotonic() + 120
        while not pidfile.is_file() and time.monotonic() < deadline:
            time.sleep(0.05)
        for _ in range(2):
            sent.append(time.monotonic())
            os.kill(os.getpid(), signal.SIGINT)
            time.sleep(0.3)

    signaller = threading.Thread(target=twice, daemon=True)
    signaller.start()
    with pytest.raises(Terminated, match="stopped by SIGINT"):
        with stops_at_once():
            trainer.Trainer(runs, progress=False).train()
    stopped = time.monotonic()
    signaller.join()
    assert sent and stopped - sent[0] < 10, f"stopped {stopped - sent[0]:.1f} s after the first signal"
    assert not process_alive(int(pidfile.read_text()))
    status = runs[0].read_json("status.json")
    assert status["status"] == "failed" and "SIGINT" in status["message"], status
    runs[0].check_resumable()
