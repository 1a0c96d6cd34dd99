"""Reliability cases of issue 33 without a test of their own elsewhere: a full disk while a run directory is made,
`biograd check`'s unit errors without Brian2's warnings, one-line messages (JSON, changed runs, outputs that do not
fit the data, a stop while a line is printed), Ctrl-C to a serial sweep, the grid sweep's folder lock, a probe of
NaN weights, a sweep file that is not UTF-8."""

import errno
import io
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from filelock import FileLock
from typer.testing import CliRunner

from biograd.cli import app
from biograd.config import load_config
from biograd.launch import start_run
from biograd.models.elements import equations_dir
from biograd.models.network import PlasticState
from biograd.rundir import Progress, RunDirectory
from biograd.signals import Terminated, stops_at_once

BIOGRAD = Path(sys.executable).with_name("biograd")  # the console script, as a user starts the program

TINY = """\
name: tiny
model: {sizes: [64, 12, 10], feedback: sleep}
data: {source: sklearn, n_train: 40, validation: 10, n_test: 20}
train: {epochs: 1, sleep_every: 20, chunk: 20, sleep_duration: 100 ms, warmup_sleep_blocks: 1, backend: numpy, seed: 5}
record: {probe_samples: 0}
"""

SWEEP = """\
name: tiny_sweep
base: tiny.yaml
grid:
  model.params.forward_synapse.eta: [0.01, 0.05]
seeds: [0, 1]
"""


@pytest.fixture
def tiny(tmp_path) -> Path:
    path = tmp_path / "tiny.yaml"
    path.write_text(TINY)
    return path


@pytest.fixture
def sweep_file(tiny) -> Path:
    path = tiny.with_name("sweep.yaml")
    path.write_text(SWEEP)
    return path


def _cli(*args):
    return CliRunner().invoke(app, [str(a) for a in args])


def _one_run_directory(tmp_path: Path, files: dict[str, bytes]) -> RunDirectory:
    """A folder that opens as a run directory (config.yaml), with ``files``: for the checks that read files only."""
    folder = tmp_path / "run"
    folder.mkdir()
    for name, content in {"config.yaml": b"", **files}.items():
        (folder / name).write_bytes(content)
    return RunDirectory(folder)


# ---------------------------------------------------------------------------------------------- a full disk


def test_a_full_disk_while_a_run_directory_is_made_is_one_line_and_leaves_no_half_directory(tiny, tmp_path,
                                                                                            monkeypatch, capsys):
    """It was 'error: OSError: [Errno 28] No space left on device: .../eligibility_loihi.eqs -> ...' (with the
    --debug hint), and a half-copied OUT/RUN/equations/ stayed, which read 'not a run directory' afterwards."""
    import biograd.cli as cli
    import biograd.rundir

    copy2, copied = biograd.rundir.shutil.copy2, []

    def disk_fills_at_file_3(source, target):
        copied.append(target)
        if len(copied) == 3:
            raise OSError(errno.ENOSPC, "No space left on device", str(source), None, str(target))
        return copy2(source, target)

    monkeypatch.setattr(biograd.rundir.shutil, "copy2", disk_fills_at_file_3)
    out = tmp_path / "out"
    monkeypatch.setattr("sys.argv", ["biograd", "train", str(tiny), "--out", str(out), "--no-progress"])
    with pytest.raises(SystemExit) as exit_:
        cli.main()
    run = Path(copied[0]).parents[1]
    line = capsys.readouterr().out
    assert exit_.value.code == 1 and line.startswith(f"error: {run}: not written: No space left on device (the disk "
                                                     "mounted at ") and line.count("\n") == 1, line
    assert line.endswith(" free of " + line.rsplit(" free of ", 1)[1]) and line.endswith(
        "); no run directory was made: free space, then train again\n"), line
    assert list(out.iterdir()) == []


def test_a_full_disk_for_a_run_directory_s_own_files_removes_it_too(tiny, tmp_path, monkeypatch):
    """The same for its config.yaml (through rundir.atomic_path), and for no space to make the folder at all."""
    from biograd.rundir import DiskFullError

    config, write_bytes = load_config(tiny), Path.write_bytes

    def full(self, data):
        if self.name.startswith(".config.yaml."):
            raise OSError(errno.ENOSPC, "No space left on device")
        return write_bytes(self, data)

    monkeypatch.setattr(Path, "write_bytes", full)
    with pytest.raises(DiskFullError, match=r"^.*/out/\d{8}-\d{6}_tiny_[0-9a-f]{8}: not written: No space left on "
                                            r"device \(the disk mounted at .* free of .*\)$"):
        RunDirectory.create(config, equations_dir(), tmp_path / "out")
    assert list((tmp_path / "out").iterdir()) == []
    monkeypatch.undo()

    def no_folder(self, *args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(Path, "mkdir", no_folder)
    with pytest.raises(DiskFullError, match=r"/new/\d{8}-\d{6}_tiny_[0-9a-f]{8}: not written: No space left"):
        RunDirectory.create(config, equations_dir(), tmp_path / "new")


# ---------------------------------------------------------------------------------------------- biograd check


def test_check_of_a_unit_error_prints_no_brian2_warning(tmp_path):
    """`biograd check` of a folder with a unit error added Brian2's 4-line 'The object 'check_units_group' is
    getting deleted, but was never included in a network' WARNING (as it did when stopped mid-check): check built
    its unit-check groups before Brian2's logging was set up (biograd.models.backend). With --debug it stays."""
    for name in ("soma.eqs", "soma.yaml"):
        (tmp_path / name).write_text((equations_dir() / name).read_text())
    soma = tmp_path / "soma.eqs"
    soma.write_text(soma.read_text().replace("dA_soma/dt = forward*u_soma/dt : 1", "dA_soma/dt = forward*u_soma : 1"))
    env = {k: v for k, v in os.environ.items() if k != "BIOGRAD_DEBUG"}  # an in-process --debug test may have set it
    done = subprocess.run([str(BIOGRAD), "check", str(tmp_path)], capture_output=True, text=True, timeout=120,
                          env=env)
    assert done.returncode == 1 and done.stderr == "", done.stderr
    unit, composition, summary = done.stdout.splitlines()
    assert unit.startswith(f"error {soma}:") and unit.endswith(": Brian2 rejects the element: Expression "
                                                               "'forward*u_soma' does not have the expected unit hertz "
                                                               "(unit is 1)."), done.stdout
    assert composition == f"error {tmp_path / 'network.yaml'}: composition file not found"
    assert summary == "0 of 2 model files pass"


# ---------------------------------------------------------------------------------------------- messages


def test_a_json_file_cut_inside_a_string_is_named_without_at_at(tmp_path):
    """Python's message ends 'starting at'; the line said 'Unterminated string starting at at line 1 column 2'."""
    from biograd.rundir import RunFileError

    run = _one_run_directory(tmp_path, {"status.json": b'{"status'})
    with pytest.raises(RunFileError) as err:
        run.read_json("status.json")
    assert str(err.value) == (f"{run.path / 'status.json'}: not readable JSON (Unterminated string starting at line 1 "
                              "column 2); the run can be resumed after deleting it")


@pytest.mark.parametrize("command", ["evaluate", "probe", "export"])
def test_a_changed_run_s_hint_fits_every_command(tmp_path, command):
    """evaluate, probe and export refused a changed run with 'resume with --accept-changes to continue ...'."""
    run = _one_run_directory(tmp_path, {})  # no contract.json: nothing can be checked
    result = _cli(command, run.path)
    assert result.exit_code == 2 and result.output == (
        f"error: {run.path}: changed since the run was created: contract.json (missing: the files cannot be "
        "checked); give --accept-changes to use the changed files (recorded in history.jsonl)\n"), result.output


def test_too_few_output_neurons_are_named_with_the_config_file(tiny, tmp_path):
    """Unlike the other value errors of a config, it did not name the file."""
    result = _cli("train", tiny, "--set", "model.sizes=[64, 12, 5]", "--out", tmp_path / "out")
    assert result.exit_code == 2 and result.output == (
        f"error: {tiny}: model.sizes: data source 'sklearn' has 10 classes, but the model's output layer has 5 "
        "neurons (model.sizes[-1] must be at least 10)\n"), result.output
    assert not (tmp_path / "out").exists()


def test_a_stop_signal_while_a_line_is_printed_does_not_print_it_again():
    """A stop that landed as rich had written a line, before it emptied its buffer, left the line there: the next
    print wrote it again ('run directory: RUN' twice above 'training stopped by SIGINT')."""
    from biograd import cli

    class Terminal(io.StringIO):
        signalled = False

        def write(self, text):
            written = super().write(text)
            if not self.signalled:
                self.signalled = True
                signal.raise_signal(signal.SIGINT)  # the signal lands as the first write returns
            return written

    terminal = Terminal()
    console = type(cli.console)(file=terminal, soft_wrap=True)
    with pytest.raises(Terminated), stops_at_once():
        console.print("run directory: RUN")
    console.print("training stopped by SIGINT")
    assert terminal.getvalue() == "run directory: RUN\ntraining stopped by SIGINT\n"


# ---------------------------------------------------------------------------------------------- sweeps


def test_a_second_grid_sweep_of_a_folder_is_refused_in_one_line(sweep_file, tmp_path):
    """Tested through a study only: the grid sweep (run_sweep) holds the same folder lock."""
    out = tmp_path / "out"
    out.mkdir()
    with FileLock(out / ".lock"):  # as a running sweep holds it
        result = _cli("sweep", sweep_file, "--out", out, "--serial", "--no-progress")
    assert result.exit_code == 1 and result.output.splitlines() == [
        f"sweep tiny_sweep: 4 trials in {out}",
        f"error: {out}: another sweep is running in this folder (lock {out / '.lock'}); wait for it or stop it first"]
    assert [p.name for p in out.iterdir()] == [".lock"]


def test_a_sweep_file_that_is_not_utf8_is_named_with_its_line(sweep_file):
    sweep_file.write_bytes(SWEEP.replace("seeds", "# r\xe9glages\nseeds").encode("latin-1"))
    result = _cli("sweep", sweep_file, "--serial")
    assert result.exit_code == 2 and result.output == (
        f"error: {sweep_file}:5: sweep file is not UTF-8 text (byte 0xe9); save it as UTF-8\n"), result.output


@pytest.mark.slow  # trains the sweep's four tiny trials (~15 s CPU)
def test_ctrl_c_to_a_serial_sweep_is_one_line_and_the_command_that_continues_it(sweep_file, tmp_path):
    """SIGINT to the process group (Ctrl-C) while a serial sweep trains its first trial: it stops after the task,
    says so in one line with the command that continues it (exit 130, no traceback); that command finishes it."""
    out = tmp_path / "out"
    command = [str(BIOGRAD), "sweep", str(sweep_file), "--out", str(out), "--serial", "--no-progress"]
    sweep = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                             start_new_session=True)
    deadline = time.monotonic() + 120
    while not list(out.glob("trials/*/*/checkpoint.npz")) and time.monotonic() < deadline:
        time.sleep(0.05)
    os.killpg(sweep.pid, signal.SIGINT)
    output = sweep.communicate(timeout=120)[0]
    lines = output.splitlines()
    assert sweep.returncode == 130 and "Traceback" not in output and "WARNING" not in output, output
    assert lines[0] == f"sweep tiny_sweep: 4 trials in {out}", output
    assert lines[-1].startswith("sweep stopped by SIGINT"), output
    assert lines[-1].endswith(f"; continue with: biograd sweep {sweep_file} --out {out}"), output
    assert len([line for line in lines if "stopped by SIGINT" in line]) == 1, output
    made = [RunDirectory(p.parent).read_json("status.json").get("status") for p in out.glob("trials/*/*/config.yaml")]
    assert made.count("finished") <= 1 and len(made) < 4, made  # stopped in its first trials
    done = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    statuses = [RunDirectory(p.parent).read_json("status.json")["status"] for p in out.glob("trials/*/*/config.yaml")]
    assert statuses == ["finished"] * 4


# ---------------------------------------------------------------------------------------------- probe


def test_a_probe_of_nan_weights_is_refused_in_one_line_before_it_builds(tiny, tmp_path):
    """A config can no longer make NaN weights, but a file can hold them: probe printed a table of NaN angles; then
    it refused them after building its network. Now each chosen file is checked first (a run directory made, not
    trained: its epoch weights written here; W1 NaN)."""
    run = start_run(load_config(tiny), root=tmp_path / "out")
    arrays = {"W1": np.full((12, 64), np.nan), "W2": np.zeros((10, 12)), "B2": np.zeros((12, 10)),
              "bias1": np.zeros(12), "bias2": np.zeros(10)}  # the shapes of 64-12-10 with sleep feedback
    run.save_checkpoint(PlasticState.from_named(arrays), Progress(), run.path / "weights_epoch1.npz")
    result = _cli("probe", run.path, "--samples", 1)
    assert result.exit_code == 2 and result.output == (
        f"error: {run.path / 'weights_epoch1.npz'}: array W1 has {12 * 64} NaN/inf entries\n"), result.output
    assert not [p.name for p in run.path.iterdir() if "posthoc" in p.name or "build" in p.name]  # nothing built
