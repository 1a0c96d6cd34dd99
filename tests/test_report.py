"""Recording during training, probes afterwards, `biograd report`, and the notebooks, on a tiny run."""

import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from support import executed_notebook_cells
from typer.testing import CliRunner

from biograd.analysis.depth import depth_table
from biograd.cli import app
from biograd.config import load_config
from biograd.launch import start_run
from biograd.models.errors import ModelFileError
from biograd.recording import probe_run
from biograd.report import depth_section, write_report
from biograd.rundir import RunDirectory
from biograd.runs import combined, load_run, load_runs
from biograd.trainer import Trainer

NOTEBOOKS = sorted(p for p in (Path(__file__).parents[1] / "analysis" / "notebooks").glob("*.py")
                   if p.stem != "spike_statistics")  # reads spikes.nwb, which tiny_run lacks: tests/test_spikes.py
RECORDED = """\
name: tiny_recorded
model: {sizes: [64, 16, 10], feedback: sleep}
data: {source: sklearn, n_train: 60, n_test: 20}
train: {epochs: 1, sleep_every: 20, chunk: 20, sleep_duration: 100 ms, warmup_sleep_blocks: 1, backend: numpy, seed: 3}
record: {probe_samples: 3, probe_every: 2, arrays: true}
"""

DEEP = """\
name: tiny_deep
model: {sizes: [64, 12, 8, 10], feedback: transpose}
data: {source: sklearn, n_train: 20, n_test: 10}
train: {epochs: 1, chunk: 20, backend: numpy, seed: 3}
record: {probe_samples: 2}
"""


def _train(folder: Path, text: str) -> RunDirectory:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "run.yaml").write_text(text)
    run = start_run(load_config(folder / "run.yaml"), root=folder / "out")
    Trainer(run, progress=False).train()
    return run


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory) -> RunDirectory:
    return _train(tmp_path_factory.mktemp("recorded"), RECORDED)


@pytest.fixture(scope="module")
def deep_run(tmp_path_factory) -> RunDirectory:
    """Two hidden layers and another feedback mode than tiny_run's, for the depth diagnostics."""
    return _train(tmp_path_factory.mktemp("deep"), DEEP)


def test_recording_tables_and_arrays(tiny_run):
    data = load_run(tiny_run.path)
    points = data.alignment.groupby(["epoch", "chunk"], dropna=False).ngroups
    assert points == 3  # after the warm-up, after chunk 2 of 3 (probe_every 2), after the epoch
    assert len(data.alignment) == points * 3 * 2 * 3  # samples x layers x modes
    assert set(data.alignment["sample"]) == set(data.alignment[data.alignment.epoch == 0]["sample"])  # fixed samples
    assert len(data.neuron_rates) == 64 + 16 + 10
    metrics = data.metrics
    assert len(metrics[(metrics.split == "train") & (metrics.metric == "synops_forward")]) == 3  # every chunk
    assert len(metrics[(metrics.split == "sleep") & (metrics.metric == "updates")]) == 4  # warm-up + 3 chunks
    files = sorted((tiny_run.path / "recording").glob("*.npz"))
    assert len(files) == points
    with np.load(files[-1]) as arrays:
        assert arrays["dW1"].shape == (3, 16, 64) and arrays["rate0"].shape == (3, 64) and "B2" in arrays.files


def test_probes_do_not_change_training(tiny_run, tmp_path):
    plain = _train(tmp_path, RECORDED.replace("probe_samples: 3", "probe_samples: 0"))
    a, b = tiny_run.load_checkpoint()[0].named(), plain.load_checkpoint()[0].named()
    assert all(np.array_equal(a[k], b[k]) for k in a)


def test_posthoc_probe_repeats_the_training_probes(tiny_run):
    out = probe_run(tiny_run, n_samples=3, backend="numpy")
    data = load_run(tiny_run.path)
    posthoc = data.alignment[data.alignment.source == "posthoc"].drop(columns="source").reset_index(drop=True)
    training = data.alignment[(data.alignment.source == "training") & data.alignment.chunk.isna()]
    assert np.allclose(posthoc.angle_deg, training.drop(columns="source").reset_index(drop=True).angle_deg)
    with pytest.raises(FileExistsError, match="posthoc exists"):
        probe_run(tiny_run, n_samples=3, backend="numpy")
    assert (out / "metrics.parquet").is_file()


def test_posthoc_probe_with_another_setting_goes_to_its_own_folder(tiny_run):
    """The same weights probed with hidden error gain 64 instead of 8: an error event stands for
    |delta| <= 1/gain at most one per step, so the tiny net's large hidden errors saturate and
    BioGrad's W1 change shrinks against the rate network's with the same B."""
    coarse, fine = (probe_run(tiny_run, 3, "numpy", [f"model.params.network.gain_hidden={g}"], epochs=[1])
                    for g in (8, 64))
    assert fine.name == "posthoc_model.params.network.gain_hidden=64"
    assert load_config(fine / "config.yaml").model.composition.values["gain_hidden"] == 64
    angles = [pd.read_parquet(folder / "alignment.parquet").query(
        "layer == 1 and mode == 'biograd_vs_feedback_alignment'") for folder in (coarse, fine)]
    assert all(set(a.epoch) == {1} and len(a) == 3 for a in angles)
    assert angles[1].norm_ratio.mean() < 0.25 * angles[0].norm_ratio.mean()
    assert not (load_run(tiny_run.path).alignment.source == "posthoc_model.params.network.gain_hidden=64").any()
    with pytest.raises(ValueError, match="cannot change model.sizes"):
        probe_run(tiny_run, 1, "numpy", ["model.sizes=[64, 8, 10]"])
    with pytest.raises(ModelFileError, match="model.gain_hiden: unknown key"):
        probe_run(tiny_run, 1, "numpy", ["model.gain_hiden=4"])
    with pytest.raises(FileNotFoundError, match=r"epoch\(s\) \[7\]"):
        probe_run(tiny_run, 1, "numpy", ["model.params.network.gain_hidden=2"], epochs=[1, 7])
    cli = ["probe", str(tiny_run.path), "--samples", "2", "--epoch", "1", "--backend", "numpy", "--set"]
    result = CliRunner().invoke(app, [*cli, "model.params.network.gain_hidden=4"])
    assert result.exit_code == 0, result.output
    assert "biograd_vs_backprop" in result.output and "posthoc_model.params.network.gain_hidden=4" in result.output
    result = CliRunner().invoke(app, [*cli, "model.gain_hiden=4"])
    assert result.exit_code == 2 and "unknown key" in result.output


def test_report_writes_every_figure_and_table(tiny_run):
    report = write_report([tiny_run.path])
    assert report == tiny_run.path / "report" / "report.md"
    for figure in ("accuracy.png", "alignment.png", "sleep_alignment.png", "rates.png"):
        assert (report.parent / figure).stat().st_size > 10_000, figure
    text = report.read_text()
    assert "## Depth" not in text and not (report.parent / "depth.png").exists()  # one mode, one hidden layer
    for needle in ("## Gradient alignment", "| biograd_vs_backprop", "feedback_alignment_vs_backprop",
                   "| B2", "## Biological plausibility", "transpose_relay", "w += eta*eps_error_post",
                   "rate_hz", "error_saturated_fraction", "## Energy estimate", "synaptic_update", "400x"):
        assert needle in text, needle


def test_report_of_several_runs_needs_a_folder(tiny_run, tmp_path):
    with pytest.raises(ValueError, match="give --out"):
        write_report([tiny_run.path, tiny_run.path])
    assert write_report([tiny_run.path, tiny_run.path], tmp_path / "cmp").is_file()


@pytest.fixture
def fresh_run(tiny_run, tmp_path) -> Path:
    """A copy of the tiny run without a report."""
    copy = shutil.copytree(tiny_run.path, tmp_path / "run", ignore=shutil.ignore_patterns("report"))
    return copy


def _small_report(runs, paths, place):  # write_report's file handling without drawing the figures
    place("accuracy.png").write_bytes(b"new figure")
    place("report.md").write_text("new report")


def test_a_report_is_written_over_an_existing_one_only_with_force(fresh_run, monkeypatch):
    """`biograd report RUN` replaced RUN/report/report.md and its figures without asking."""
    (fresh_run / "report").mkdir()
    (fresh_run / "report" / "accuracy.png").write_text("old figure")
    monkeypatch.setattr("biograd.report._write_report", _small_report)
    result = CliRunner().invoke(app, ["report", str(fresh_run)])
    assert result.exit_code == 2 and result.output == \
        f"error: {fresh_run / 'report' / 'accuracy.png'} exists: give --force to replace the report\n"
    assert [p.name for p in (fresh_run / "report").iterdir()] == ["accuracy.png"]
    result = CliRunner().invoke(app, ["report", str(fresh_run), "--force"])
    assert result.exit_code == 0 and result.output == f"report: {fresh_run / 'report' / 'report.md'}\n"
    assert sorted(p.name for p in (fresh_run / "report").iterdir()) == ["accuracy.png", "report.md"]
    assert (fresh_run / "report" / "accuracy.png").read_text() == "new figure"
    result = CliRunner().invoke(app, ["report", str(fresh_run)])  # report.md, the first of the report's files
    assert result.exit_code == 2 and "report.md exists: give --force" in result.output


def test_a_report_is_never_written_into_another_run_directory(fresh_run, tiny_run, monkeypatch):
    """`biograd report RUN --out OTHER_RUN` wrote report.md and the figures among another run's files."""
    monkeypatch.setattr("biograd.report._write_report", _small_report)
    other = tiny_run.path.resolve()
    before = sorted(p.relative_to(other) for p in other.rglob("*"))
    for out in (other, other / "figures", other / "report", fresh_run):
        result = CliRunner().invoke(app, ["report", str(fresh_run), "--out", str(out), "--force"])
        folder = other if out != fresh_run else fresh_run.resolve()
        assert result.exit_code == 2 and result.output == (
            f"error: --out {out}: inside the run directory {folder}, which holds its records and its own report "
            f"({folder / 'report'}) only; give a folder outside it\n"), result.output
    assert sorted(p.relative_to(other) for p in other.rglob("*")) == before and not (fresh_run / "report").exists()
    result = CliRunner().invoke(app, ["report", str(fresh_run), "--out", str(fresh_run / "report" / "again")])
    assert result.exit_code == 0, result.output  # a run's own report folder takes reports of it


def test_a_report_that_fails_leaves_no_file_and_the_old_report_whole(fresh_run, monkeypatch):
    """Each file was written in place as the report went: an error left a half report (new figures, no report.md
    or an old one), and a file that was being written half written."""
    def fails_halfway(runs, paths, place):
        place("accuracy.png").write_bytes(b"new figure")
        place("rates.png").write_bytes(b"half a fig")
        raise RuntimeError("boom")

    monkeypatch.setattr("biograd.report._write_report", fails_halfway)
    with pytest.raises(RuntimeError, match="boom"):
        write_report([fresh_run])
    assert not (fresh_run / "report").exists()  # the folder it made is gone too
    (fresh_run / "report").mkdir()
    (fresh_run / "report" / "report.md").write_text("old report")
    with pytest.raises(RuntimeError, match="boom"):
        write_report([fresh_run], force=True)
    assert [p.name for p in (fresh_run / "report").iterdir()] == ["report.md"]
    assert (fresh_run / "report" / "report.md").read_text() == "old report"


def test_depth_table_repeats_the_recorded_values(tiny_run, deep_run):
    runs = load_runs([tiny_run.path, deep_run.path])
    metrics, alignment = combined(runs, "metrics"), combined(runs, "alignment")
    table = depth_table(metrics, alignment, {r.path.name: len(r.config.model.sizes) - 1 for r in runs})
    sleep, deep = table[table.run == tiny_run.path.name], table[table.run == deep_run.path.name]
    assert len(sleep) == 2 * 2 and len(deep) == 2 * 3  # epochs 0 and 1, weight layers
    row = sleep.set_index(["epoch", "layer"]).loc[(1, 2)]
    recorded = metrics[(metrics.run == tiny_run.path.name) & (metrics.epoch == 1)]
    assert row.accuracy == recorded.query("metric == 'accuracy' and split == 'test'").value.item()
    assert row.angle_B_WT == recorded.query("metric == 'angle_B_WT' and split == 'test' and layer == 2").value.item()
    probed = alignment.query("source == 'training' and mode == 'biograd_vs_backprop' and epoch == 1 and layer == 2 "
                             f"and run == '{tiny_run.path.name}'")
    after_epoch = probed[probed.chunk.isna()]  # not the probe point in the middle of the epoch
    assert len(after_epoch) == 3 and probed.chunk.notna().sum() == 3
    assert row.update_angle_deg == pytest.approx(after_epoch.angle_deg.mean(), rel=1e-12)
    assert row.update_norm_ratio == pytest.approx(after_epoch.norm_ratio.mean(), rel=1e-12)
    chunks = recorded.query("metric == 'error_saturated_fraction' and split == 'train' and layer == 1").value
    assert len(chunks) == 3 and sleep.set_index(["epoch", "layer"]).loc[(1, 1)].error_saturated_fraction == \
        pytest.approx(chunks.mean(), rel=1e-12)
    assert sleep[sleep.layer == 1].angle_B_WT.isna().all() and sleep[sleep.layer == 2].angle_B_WT.notna().all()
    assert deep.angle_B_WT.isna().all()  # transpose: no B
    assert deep.update_angle_deg.notna().all() and set(deep.layer) == {1, 2, 3}
    assert table[table.epoch == 0].saturated_fraction.isna().all()  # no training chunk before epoch 1
    assert table[table.epoch == 1][["saturated_fraction", "error_saturated_fraction"]].notna().all().all()


def test_report_has_the_depth_section_for_two_modes(tiny_run, deep_run, tmp_path):
    report = write_report([tiny_run.path, deep_run.path], tmp_path / "cmp")
    assert (report.parent / "depth.png").stat().st_size > 10_000
    text = report.read_text()
    section = text[text.index("## Depth: per-layer diagnostics"):text.index("## Biological plausibility")]
    assert "![depth](depth.png)" in section and "No probes" not in section
    assert section.count(f"| {deep_run.path.name}") == 2 * 3 and section.count(f"| {tiny_run.path.name}") == 2 * 2
    runs = load_runs([tiny_run.path, deep_run.path])
    metrics, alignment = combined(runs, "metrics"), combined(runs, "alignment")
    unprobed = depth_section(runs, metrics, alignment[alignment.run != deep_run.path.name], tmp_path.joinpath)
    assert f"No probes in {deep_run.path.name}" in "\n".join(unprobed)


@pytest.mark.parametrize("notebook", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_executes(notebook, tiny_run, tmp_path):
    """Each notebook runs on two runs of the same name (the tiny run and a copy) and every code cell shows
    something: its figure (an image, where it calls plt.show), its table or printed text."""
    twin = tmp_path / "twin"
    shutil.copytree(tiny_run.path, twin)
    cells = executed_notebook_cells(notebook, [tiny_run.path, twin], tmp_path)
    if notebook.stem == "gradient_alignment":  # the depth table and figure
        assert any("image/png" in o.get("data", {}) for o in cells[-1].outputs)
        assert "update_angle_deg" in cells[-1].outputs[0].data["text/plain"]
    if notebook.stem == "compare_runs":  # the activity table: one column per run, not both averaged into one
        table = cells[-1].outputs[-1].data["text/plain"]
        assert tiny_run.path.name in table and "twin" in table


def test_notebooks_open_as_notebooks_in_jupyterlab(monkeypatch):
    """The README's JUPYTER_CONFIG_PATH holds the settings JupyterLab reads as defaults: .py files open
    with jupytext's notebook viewer."""
    ConfigManager = pytest.importorskip("jupyter_server.services.config.manager").ConfigManager
    folder, root = NOTEBOOKS[0].parent, NOTEBOOKS[0].parents[2]
    assert f"JUPYTER_CONFIG_PATH={folder.relative_to(root)} " in (root / "README.md").read_text()
    monkeypatch.setenv("JUPYTER_CONFIG_PATH", str(folder))
    overrides = ConfigManager(config_dir_name="labconfig").get("default_setting_overrides")  # as jupyterlab_server
    assert overrides["@jupyterlab/docmanager-extension:plugin"]["defaultViewers"]["python"] == "Jupytext Notebook"
