"""Run configs: shipped configs validate; bad keys, units, overrides and YAML give clear errors."""

import shutil
from pathlib import Path

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
    (MINIMAL, ["model.feedback=mirror"], "model.feedback: Input should be 'transpose', 'fixed_random' or 'sleep'"),
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
