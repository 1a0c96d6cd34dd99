"""``biograd export`` writes whole files or nothing: never over a file of a run directory, never over an
existing file without --force, and a write that fails leaves neither a partial file nor a temporary one.

The run is made by the launcher's own first step with a checkpoint of arbitrary weights (no training):
these tests are about where the file goes, not about what it holds (tests/test_cli.py, test_loihi_export.py)."""

import errno
import hashlib
import shutil
from pathlib import Path

import h5py
import pytest
from support import untrained_run
from typer.testing import CliRunner

import biograd.export
from biograd.cli import app
from biograd.export import export_run
from biograd.rundir import Progress

runner = CliRunner()


@pytest.fixture(scope="module")
def run(tmp_path_factory) -> Path:
    run, state = untrained_run(tmp_path_factory.mktemp("export_safety"))
    run.save_checkpoint(state, Progress(), run.path / "weights_epoch1.npz")
    return run.path


def _digests(folder: Path) -> dict[str, str]:
    """sha256 of every file under ``folder`` (hidden ones included: a temporary file would show)."""
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def _export(*args: str):
    result = runner.invoke(app, ["export", *args])
    return result.exit_code, " ".join(result.output.split())


@pytest.mark.parametrize("name", ["checkpoint.npz", "weights_epoch1.npz", "config.yaml", "contract.json",
                                  "equations/soma.eqs", "metrics.parquet", "new.net", "report/export.net"])
def test_a_file_of_the_run_directory_is_refused_even_with_force(run, name):
    before = _digests(run)
    for force in ([], ["--force"]):
        code, output = _export(str(run), "--out", str(run / name), *force)
        assert code == 2, output
        assert f"a file of the run directory {run}, whose inputs and records are never overwritten" in output
        assert "Traceback" not in output and output.count("error:") == 1
    assert _digests(run) == before  # byte-identical, nothing added


def test_a_file_of_another_run_directory_is_refused(run, tmp_path):
    other = tmp_path / "other"
    (other / "equations").mkdir(parents=True)
    for name in ("config.yaml", "versions.json", "equations/soma.eqs"):
        (other / name).write_text("mine\n")
    code, output = _export(str(run), "--out", str(other / "equations/soma.eqs"), "--force")
    assert code == 2 and f"a file of the run directory {other}," in output, output
    assert (other / "equations/soma.eqs").read_text() == "mine\n"


def test_an_existing_file_is_replaced_only_with_force(run, tmp_path):
    out = tmp_path / "net.h5"
    out.write_text("keep me\n")
    code, output = _export(str(run), "--out", str(out))
    assert code == 2 and f"{out} exists: give --force to replace it" in output, output
    assert out.read_text() == "keep me\n"
    code, output = _export(str(run), "--out", str(out), "--force")
    assert code == 0 and f"wrote {out}" in output, output
    with h5py.File(out) as f:
        assert f["layer/0/weight"].shape == (12, 64)
    assert [p.name for p in tmp_path.iterdir()] == ["net.h5"]


def test_the_run_s_export_files_and_export_folder_are_allowed(run):
    (run / "export").mkdir(exist_ok=True)
    for out in (run / "export.nir", run / "export" / "a.nir"):
        out.unlink(missing_ok=True)
        code, output = _export(str(run), "--format", "nir", "--out", str(out))
        assert code == 0 and out.stat().st_size > 1000, output
        code, output = _export(str(run), "--format", "nir", "--out", str(out))  # again: only with --force
        assert code == 2 and "exists: give --force" in output, output


@pytest.mark.parametrize(("out", "message"), [("{tmp}", "is a folder: give a file to write"),
                                              ("{tmp}/none/x.net", "no such folder {tmp}/none")])
def test_no_folder_to_write_is_a_one_line_error(run, tmp_path, out, message):
    code, output = _export(str(run), "--out", out.format(tmp=tmp_path))
    assert code == 2 and message.format(tmp=tmp_path) in output, output
    assert not any(tmp_path.iterdir())


@pytest.mark.parametrize("fmt", ["netx", "nir"])
def test_an_export_that_fails_mid_write_leaves_no_file_and_the_old_one_untouched(run, tmp_path, monkeypatch, fmt):
    def half(path, *args, **kwargs):
        Path(path).write_bytes(b"\x89HDF\r\n" + bytes(1000))
        raise ValueError("refused halfway")

    monkeypatch.setattr(biograd.export, f"write_{fmt}", half)
    new = tmp_path / "new.h5"
    code, output = _export(str(run), "--format", fmt, "--out", str(new))
    assert code == 2 and "error: refused halfway" in output, output
    old = tmp_path / "old.h5"
    old.write_text("old\n")
    with pytest.raises(ValueError, match="refused halfway"):
        export_run(run, fmt, old, force=True)
    assert [p.name for p in tmp_path.iterdir()] == ["old.h5"] and old.read_text() == "old\n"


@pytest.mark.parametrize("fmt", ["netx", "nir"])
def test_an_export_to_a_full_disk_is_one_line_naming_the_file_and_the_disk(run, tmp_path, monkeypatch, capsys, fmt):
    """It was 'error: OSError: [Errno 28] No space left on device', naming neither."""
    import biograd.cli as cli

    def full(path, *args, **kwargs):
        Path(path).write_bytes(b"\x89HDF\r\n" + bytes(1000))
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(biograd.export, f"write_{fmt}", full)
    old = tmp_path / "old.h5"
    old.write_text("old\n")
    monkeypatch.setattr("sys.argv", ["biograd", "export", str(run), "--format", fmt, "--out", str(old), "--force"])
    with pytest.raises(SystemExit) as exit_:
        cli.main()
    line = capsys.readouterr().out.strip()
    assert exit_.value.code == 1 and "\n" not in line, line
    assert line.startswith(f"error: {old}: not written: No space left on device (the disk mounted at "), line
    assert [p.name for p in tmp_path.iterdir()] == ["old.h5"] and old.read_text() == "old\n"


def test_an_edited_run_is_not_exported_unless_asked(run, tmp_path):
    """export, like evaluate and probe, builds the layers from the run's config.yaml and equation copy: it exported
    an edited run (or one without contract.json) with the edited files."""
    copy = Path(shutil.copytree(run, tmp_path / run.name))
    (copy / "equations" / "soma.yaml").write_text((copy / "equations" / "soma.yaml").read_text() + "\n")
    out = tmp_path / "a.net"
    code, output = _export(str(copy), "--out", str(out))
    assert code == 2 and output == (f"error: {copy}: changed since the run was created: equations/soma.yaml; give "
                                    "--accept-changes to use the changed files (recorded in history.jsonl)"), output
    (copy / "contract.json").unlink()
    code, output = _export(str(copy), "--out", str(out))
    assert code == 2 and "contract.json (missing: the files cannot be checked)" in output and not out.exists()
    code, output = _export(str(copy), "--out", str(out), "--accept-changes")
    assert code == 0 and out.is_file() and "accepted changes" in (copy / "history.jsonl").read_text(), output
