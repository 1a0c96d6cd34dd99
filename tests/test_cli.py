"""The command line: describe and check, on the shipped files and on a broken copy."""

import shutil

import pytest
from typer.testing import CliRunner

from biograd.cli import app
from biograd.models.elements import equations_dir

runner = CliRunner()


def test_describe_model_and_element():
    result = runner.invoke(app, ["describe", "--sizes", "64-32-10", "--feedback", "transpose"])
    assert result.exit_code == 0, result.output
    assert "# BioGrad network 64-32-10, feedback `transpose`" in result.output
    assert "transpose_relay" in result.output
    result = runner.invoke(app, ["describe", "feedback_synapse"])
    assert result.exit_code == 0 and "eta_sleep" in result.output and "lambda_sleep" in result.output


def test_describe_unknown_element_fails_clearly():
    result = runner.invoke(app, ["describe", "dendrite"])
    assert result.exit_code == 2 and "dendrite.eqs" in result.output and "not found" in result.output


def test_check_shipped_and_broken(tmp_path):
    result = runner.invoke(app, ["check"])
    n = len(list(equations_dir().glob("*.eqs")))
    assert result.exit_code == 0 and f"{n + 1} of {n + 1} model files pass" in result.output
    for path in equations_dir().glob("soma.*"):
        shutil.copy(path, tmp_path / path.name)
    broken = tmp_path / "soma.eqs"
    broken.write_text(broken.read_text().replace("v_soma > v_th and", "v_soma > v_thr and"))
    result = runner.invoke(app, ["check", str(tmp_path)])
    assert result.exit_code == 1 and "undefined name 'v_thr'" in result.output and "0 of 2" in result.output


def test_unexpected_errors_are_one_line_unless_debug(monkeypatch, capsys):
    import biograd.cli as cli

    def broken():
        raise RuntimeError("boom\nsecond line")

    monkeypatch.setattr(cli, "app", broken)
    monkeypatch.setattr("sys.argv", ["biograd", "report", "x"])
    with pytest.raises(SystemExit) as exit_:
        cli.main()
    assert exit_.value.code == 1
    assert "error: RuntimeError: boom second line (biograd --debug ... shows the traceback)" in capsys.readouterr().out
    monkeypatch.setattr("sys.argv", ["biograd", "--debug", "report", "x"])
    with pytest.raises(RuntimeError, match="boom"):
        cli.main()


def test_demo_checks_trains_and_reports(tmp_path, monkeypatch):
    """`make demo`'s command, shortened: model files and data checked, a run trained, its report written."""
    monkeypatch.chdir(tmp_path)
    overrides = ["data.n_train=30", "data.n_test=20", "data.validation=10", "train.epochs=1",
                 "train.warmup_sleep_blocks=1", "record.probe_samples=1", "record.spikes.samples=2",
                 "train.backend=numpy", "train.chunk=30"]
    result = runner.invoke(app, ["demo", *(arg for item in overrides for arg in ("--set", item))])
    assert result.exit_code == 0, result.output
    assert "transpose_relay" in result.output and "test accuracy" in result.output
    report = next(tmp_path.glob("runs/out/*_demo_*/report/report.md"))
    assert (report.parents[1] / "spikes.nwb").is_file() and "Spike statistics (Elephant)" in report.read_text()


def test_export_writes_netx_and_nir_of_a_trained_run(tmp_path):
    """A tiny float run, exported: netx's layer groups and the loihi1/ group, and a NIR graph that reads back."""
    import h5py
    import nir

    config = tmp_path / "c.yaml"
    config.write_text("name: c\nmodel: {sizes: [64, 12, 10]}\ndata: {source: sklearn, n_train: 40, n_test: 20, "
                      "validation: 0}\ntrain: {backend: numpy, epochs: 1, warmup_sleep_blocks: 1, chunk: 40}\n"
                      "record: {probe_samples: 0}\n")
    assert runner.invoke(app, ["train", str(config), "--out", str(tmp_path / "out")]).exit_code == 0
    run = next((tmp_path / "out").glob("*_c_*"))
    for fmt in ("netx", "nir"):
        result = runner.invoke(app, ["export", str(run), "--format", fmt])
        assert result.exit_code == 0, result.output
    with h5py.File(run / "export.net") as f:
        assert f["layer/0/weight"].shape == (12, 64) and f["layer/1/weight"].shape == (10, 12)
        assert f["layer/0/type"][0] == b"dense" and f["layer/1/neuron/type"][()] == b"CUBA"
        assert set(f["loihi1/learning"]) == {"forward1", "forward2", "feedback2", "traces"}
        assert f["loihi1/learning/traces/forward.x1/bits"][()] == 7
        assert "provenance" in f["loihi1"]
    graph = nir.read(run / "export.nir")
    assert list(graph.nodes["lif2"].v_threshold) == [1.0] * 10


@pytest.mark.parametrize(("args", "message"), [
    (["describe", "--sizes", "784-x-10"], "--sizes '784-x-10': neurons per layer joined by '-', e.g. 784-500-10"),
    (["describe", "--feedback", "mirror"], "Invalid value for '--feedback'"),
    (["check", "{tmp}/none"], "none: no such folder of equation files"),
    (["evaluate", "{tmp}", "--split", "tset"], "Invalid value for '--split'"),
    (["train", "{config}", "--out", "{config}"], "a file, not a folder for run directories"),
    (["sweep", "{config}"], "c.yaml: base: Field required"),  # a run config is no sweep file
    (["sweep", "{typo}"], "t.yaml:2: grids: unknown key"),
    (["sweep", "{sweep}"], "model.params.soma.v_thr: unknown parameter of soma"),
    (["evaluate", "{run}", "--split", "validation"], "the run has no validation split (data.validation is 0)"),
    (["export", "{tmp}"], "not a run directory (no config.yaml)"),
    (["export", "{run}", "--format", "onnx"], "Invalid value for '--format'"),
])
def test_bad_command_lines_are_one_line_errors(tmp_path, args, message):
    config = tmp_path / "c.yaml"
    config.write_text("name: c\nmodel: {sizes: [64, 10]}\ndata: {source: sklearn}\ntrain: {backend: numpy}\n")
    sweep = tmp_path / "s.yaml"
    sweep.write_text("name: s\nbase: c.yaml\ngrid: {model.params.soma.v_thr: [1, 2]}\n")
    typo = tmp_path / "t.yaml"
    typo.write_text("name: t\ngrids: {model.params.soma.v_th: [1, 2]}\nbase: c.yaml\n")
    run = tmp_path / "run"
    if "{run}" in args:  # a run directory made by the trainer's own first step
        from biograd.config import load_config
        from biograd.launch import start_run

        run = start_run(load_config(config), root=tmp_path).path
    result = runner.invoke(app, [a.format(tmp=tmp_path, config=config, sweep=sweep, typo=typo, run=run)
                                  for a in args])
    assert result.exit_code == 2 and message in " ".join(result.output.split()), result.output
    assert "Traceback" not in result.output


@pytest.mark.parametrize(("overrides", "message"), [
    (["model.params.forward_synapse.eta=.nan"],
     "{config}: model: {eqs}/forward_synapse.yaml: model.params.forward_synapse.eta = nan is not a finite number"),
    (["model.params.network.gain_hidden=.inf"],
     "{config}: model: {eqs}/network.yaml: model.params.network.gain_hidden = inf is not a finite number"),
    (["train.max_weight=.inf"], "{config}: train.max_weight: Input should be a finite number"),
    (["train.seed=-1"], "{config}: train.seed: Input should be greater than or equal to 0"),
    (["model.sizes=[64, 12, 5]"], "{config}: model.sizes: data source 'sklearn' has 10 classes, but the model's "
     "output layer has 5 neurons (model.sizes[-1] must be at least 10)"),
    (["model.sizes=[784, 12, 10]"], "{config}: model.sizes: data source 'sklearn' has 64 inputs per sample, but the "
     "model's input layer has 784 neurons (model.sizes[0] must be 64)"),
    (["data.source=mnist"], "{config}: model.sizes: data source 'mnist' has 784 inputs per sample, but the model's "
     "input layer has 64 neurons (model.sizes[0] must be 784)"),  # known without the MNIST files
    (["data.source=nmnist", "model.sizes=[784, 12, 10]"], "{config}: model.sizes: data source 'nmnist' has 2312 "
     "inputs per sample, but the model's input layer has 784 neurons (model.sizes[0] must be 2312)"),
    (["model.encoder=events"], "{config}: model.encoder: encoder 'events' does not fit data source 'sklearn' (event "
     "data needs encoder: events, images need regular or poisson)"),
    (["model.replicas=2", "record.probe_samples=2"], "{config}: record.probe_samples: probes need a build of their "
     "own per run; an ensemble (model.replicas: 2) trains with record.probe_samples=0 (probe its runs afterwards: "
     "biograd probe)"),
    (["record.probe_samples=2", "record.spikes={layers: [1, 3]}"], "{config}: record.spikes.layers: [3] not in this "
     "network (layers 0-2 of model.sizes [64, 12, 10])"),
])
def test_values_that_cannot_train_are_refused_before_a_run_directory_exists(tmp_path, overrides, message):
    """Non-finite numbers, a negative seed, sizes that do not fit the data, an ensemble with probes: one line
    naming the config file and the key, exit 2, and --out left empty (the data is not read: the source's shape is
    known)."""
    config = tmp_path / "c.yaml"
    config.write_text(f"name: c\nmodel: {{sizes: [64, 12, 10]}}\ntrain: {{backend: numpy}}\n"  # no data folder:
                      f"data: {{source: sklearn, data_dir: {tmp_path / 'none'}}}\n")  # MNIST, N-MNIST unreadable
    out = tmp_path / "out"
    result = runner.invoke(app, ["train", str(config), "--out", str(out), "--no-progress",
                                 *(arg for item in overrides for arg in ("--set", item))])
    assert result.exit_code == 2, result.output
    assert result.output.strip() == "error: " + message.format(config=config, eqs=equations_dir())
    assert not out.exists() or not any(out.iterdir())
