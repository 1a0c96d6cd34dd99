"""Run configs: shipped configs validate; bad keys, units, overrides and YAML give clear errors."""

import shutil
from pathlib import Path

import numpy as np
import pytest
import yaml

from biograd.config import dump_config, load_config
from biograd.models.elements import equations_dir
from biograd.models.errors import ModelFileError
from biograd.plan import sleep_slots

CONFIGS = sorted((Path(__file__).parents[1] / "runs" / "configs").glob("*.yaml"))


def write(tmp_path, text: str) -> Path:
    path = tmp_path / "run.yaml"
    path.write_text(text)
    return path


MINIMAL = "name: t\nmodel: {sizes: [64, 10]}\n"


def test_shipped_configs_are_valid():
    assert {p.stem for p in CONFIGS} >= {"demo", "mnist_1h", "mnist_2h", "nmnist"}
    for path in CONFIGS:
        cfg = load_config(path)
        assert cfg.name == path.stem
        assert cfg.model.sizes[0] == (2312 if cfg.data.source == "nmnist" else 784)
        assert sleep_slots(cfg.model, cfg.train) >= 1


def test_defaults_and_round_trip(tmp_path):
    cfg = load_config(write(tmp_path, MINIMAL))
    assert cfg.data.source == "embedded" and cfg.train.backend == "cpp_standalone"
    again = load_config(write(tmp_path, dump_config(cfg)))
    assert again == cfg


def test_overrides_are_parsed_as_yaml(tmp_path):
    cfg = load_config(write(tmp_path, MINIMAL), ["train.decay.eta=0.5", "model.sizes=[64, 32, 10]",
                                                 "model.feedback=transpose", "data.n_train=null"])
    assert cfg.train.decay == {"eta": 0.5} and cfg.model.sizes == (64, 32, 10) and cfg.model.feedback == "transpose"
    assert cfg.data.n_train is None


def test_the_sleep_schedule_defaults_to_the_composition_files_values(tmp_path):
    """A config that leaves out the sleep schedule gets network.yaml's training: values, from the equation files
    it is validated against (a copy with other values gives other defaults)."""
    cfg = load_config(write(tmp_path, MINIMAL + "train: {sleep_every: 7}\n"))
    table = yaml.safe_load((equations_dir() / "network.yaml").read_text())["training"]
    assert (cfg.train.sleep_every, cfg.train.sleep_duration, cfg.train.warmup_sleep_blocks) == \
        (7, table["sleep_duration"]["value"], table["warmup_sleep_blocks"]["value"])
    copy = tmp_path / "equations"
    shutil.copytree(equations_dir(), copy)
    text = (copy / "network.yaml").read_text()
    (copy / "network.yaml").write_text(text.replace("value: 500 ms\n    description: sleep per feedback layer",
                                                    "value: 200 ms\n    description: sleep per feedback layer"))
    assert load_config(write(tmp_path, MINIMAL), [], copy).train.sleep_duration == "200 ms"


def test_a_config_that_is_not_utf8_is_named_with_its_line(tmp_path):
    path = tmp_path / "run.yaml"
    path.write_bytes(MINIMAL.encode() + b"# caf\xe9\n")
    with pytest.raises(ModelFileError, match=r"run.yaml:3: config is not UTF-8 text \(byte 0xe9\); save it as UTF-8"):
        load_config(path)


def test_sleep_duration_rounds_up_to_slots(tmp_path):
    cfg = load_config(write(tmp_path, MINIMAL + "train: {sleep_duration: 41 ms}\n"))
    assert cfg.model.n_slot == 30 and sleep_slots(cfg.model, cfg.train) == 2


@pytest.mark.parametrize(("text", "overrides", "message"), [
    (MINIMAL + "train: {etaa: 0.1}\n", [], "train.etaa: unknown key"),
    (MINIMAL + "colour: red\n", [], "colour: unknown key"),
    (MINIMAL, ["train.sleep_duration=5 mV"], "sleep_duration must be a time such as '500 ms', got '5 mV'"),
    (MINIMAL, ["train.sleep_duration=5 parsecs"], "train.sleep_duration"),
    (MINIMAL, ["train.sleep_duration=-5 ms"],
     "train: sleep_duration = -5 ms is outside its bounds [1 ms, 1000000 ms] (network.yaml, training:)"),
    (MINIMAL, ["train.sleep_every=0"], "train: sleep_every = 0 is outside its bounds [1, 1000000]"),
    (MINIMAL, ["train.warmup_sleep_blocks=-1"], "train: warmup_sleep_blocks = -1 is outside its bounds [0, 100000]"),
    (MINIMAL, ["train.sleep_duration=500"], "train.sleep_duration: Input should be a valid string"),
    (MINIMAL, ["train.decay.eta=1.5"], "train.decay.eta: 1.5 is not in (0, 1]"),
    (MINIMAL, ["train.decay.etaa=0.5"], "train.decay.etaa: not a chunk parameter of this model (eta)"),
    (MINIMAL, ["train.eta=0.1"], "train.eta: unknown key"),
    (MINIMAL, ["train.epochs=[1"], "--set train.epochs=[1: the value is not YAML (expected ',' or ']'"),
    (MINIMAL, ["model.params.som.v_th=2"], "model.params.som: no element of that name in this network"),
    (MINIMAL, ["model.params.soma.v_thr=2"], "model.params.soma.v_thr: unknown parameter of soma"),
    (MINIMAL, ["model.params.soma.v_th=2 mV"], "model.params.soma.v_th: parameter 'v_th' = 2. mV has other units"),
    (MINIMAL, ["model.params.soma.v_th=0"], "model.params.soma.v_th: parameter 'v_th' = 0. is outside its bounds"),
    (MINIMAL, ["model.params.error_events.gain_error=3"], "it is set per layer in network.yaml"),
    (MINIMAL, ["model.params.network.n_f=2.5"], "n_f = 2.5 must be a whole number"),
    (MINIMAL, ["model.n_f=20"], "model.n_f: unknown key"),
    (MINIMAL, ["model.feedback=mirror"],
     "model.feedback: Input should be 'transpose', 'fixed_random', 'sleep' or 'transpose_residual'"),
    (MINIMAL, ["train.eta"], "override 'train.eta' is not of the form key.sub=value"),
    (MINIMAL, ["name.x=1"], "--set name.x: 'name' is not a section"),
    ("model: {sizes: [64, 10]}\n", [], "name: Field required"),
    ("name: t\nmodel: {sizes: [64, 10]\n", [], "invalid YAML"),
])
def test_errors_name_the_file_and_the_problem(tmp_path, text, overrides, message):
    path = write(tmp_path, text)
    with pytest.raises(ModelFileError) as err:
        load_config(path, overrides)
    assert str(err.value).startswith(str(path)) and message in str(err.value)


def test_missing_file(tmp_path):
    with pytest.raises(ModelFileError, match="cannot read config"):
        load_config(tmp_path / "nope.yaml")


def test_a_zero_learning_rate_is_warned_about(tmp_path):
    with pytest.warns(UserWarning, match=r"eta = 0: the weights it trains will not change"):
        load_config(write(tmp_path, MINIMAL), ["model.params.forward_synapse.eta=0"])


BRANCHED = "name: t\nmodel: {sizes: [64, 12, 10]}\n"  # two weight layers: feedback synapses too


@pytest.mark.parametrize(("override", "message"), [
    ("model.params.forward_synapse.eta=.nan",
     "model: {eqs}/forward_synapse.yaml: model.params.forward_synapse.eta = nan is not a finite number"),
    ("model.params.network.gain_hidden=.inf",
     "model: {eqs}/network.yaml: model.params.network.gain_hidden = inf is not a finite number"),
    ("model.params.network.init_scale=-.inf",
     "model: {eqs}/network.yaml: model.params.network.init_scale = -inf is not a finite number"),
    ("model.params.feedback_synapse.lambda_sleep=.nan",
     "model: {eqs}/feedback_synapse.yaml: model.params.feedback_synapse.lambda_sleep = nan is not a finite number"),
    ("model.params.network.dt=1e400 ms",  # past the float range: inf
     "model: {eqs}/network.yaml: model.params.network.dt = 1e400 ms is not a finite number"),
    ("train.max_weight=.inf", "train.max_weight: Input should be a finite number"),
    ("train.max_weight=.nan", "train.max_weight: Input should be a finite number"),
    ("train.decay.eta=.nan", "train.decay.eta: Input should be a finite number"),
    ("data.test_fraction=.nan", "data.test_fraction: Input should be a finite number"),
    ("train.seed=-1", "train.seed: Input should be greater than or equal to 0"),
])
def test_non_finite_numbers_and_negative_seeds_are_refused_naming_the_key(tmp_path, override, message):
    """YAML's .nan and .inf passed the bounds (every comparison with NaN is False) and trained to NaN; numpy
    refused a negative seed only after the run directory was made."""
    path = write(tmp_path, BRANCHED)
    with pytest.raises(ModelFileError) as err:
        load_config(path, [override])
    assert str(err.value) == f"{path}: " + message.format(eqs=equations_dir())


def test_a_non_finite_table_value_is_refused_naming_the_file_and_line(tmp_path):
    copy = tmp_path / "equations"
    shutil.copytree(equations_dir(), copy)
    table = copy / "forward_synapse.yaml"
    text = table.read_text()
    line = next(k for k, row in enumerate(text.splitlines(), 1) if row.strip() == "eta:")
    table.write_text(text.replace("  eta:\n    value: ", "  eta:\n    value: .nan  # ", 1))
    with pytest.raises(ModelFileError) as err:
        load_config(write(tmp_path, MINIMAL), [], copy)
    assert f"{table}:{line}: parameter 'eta' = nan is not a finite number" in str(err.value)


def test_a_data_sources_shape_is_the_loaded_datas():
    """launch checks model.sizes against source_shape before any data is read; it must be the data's shape
    (sklearn's, loaded here; the embedded set takes seconds to parse: its (5000, 784) is test_data_embedded's)."""
    from biograd.config import DataConfig
    from biograd.data.splits import DataShape, load_splits, source_shape
    from biograd.models.spec import NetworkSpec

    shape = source_shape("sklearn")
    splits = load_splits(DataConfig(source="sklearn"), NetworkSpec(sizes=(shape.inputs, shape.classes)))
    labels = np.concatenate([splits.train.labels, splits.test.labels])
    assert shape == DataShape(splits.train.n_inputs, len(np.unique(labels)), splits.train.events) == (64, 10, False)
    assert set(labels) == set(range(shape.classes))
    with pytest.raises(ValueError, match=r"^model.sizes: data source 'sklearn' has 10 classes, but the model's output "
                       r"layer has 9 neurons \(model.sizes\[-1\] must be at least 10\)$"):
        load_splits(DataConfig(source="sklearn"), NetworkSpec(sizes=(64, 9)))  # the loaded labels, checked too
    assert [source_shape(s) for s in ("embedded", "mnist", "nmnist")] == [(784, 10, False), (784, 10, False),
                                                                          (2312, 10, True)]
