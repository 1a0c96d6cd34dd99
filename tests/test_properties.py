"""Property-based tests: any input to the config loader and the data readers gives a valid object or
the project's own error (ModelFileError, DataError), never another exception."""

import gzip
import struct
import warnings

import numpy as np
import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from biograd.config import RunConfig, load_config
from biograd.data.errors import DataError
from biograd.data.mnist import parse_idx, read_idx
from biograd.data.nmnist import EVENT_DTYPE, OVERFLOW_Y, decode_bin
from biograd.models.errors import ModelFileError
from biograd.models.params import finite

SETTINGS = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
scalars = st.one_of(st.none(), st.booleans(), st.integers(-10**6, 10**6), st.floats(allow_nan=True),
                    st.text(max_size=12), st.sampled_from(["500 ms", "-1 ms", "2 mV", "sleep", "numpy", "[1, 2]"]))
keys = st.sampled_from(["name", "model", "data", "train", "record", "sizes", "feedback", "params", "soma", "v_th",
                        "network", "n_f", "epochs", "sleep_duration", "decay", "eta", "source", "backend", "x"])
trees = st.recursive(scalars, lambda children: st.one_of(st.lists(children, max_size=4),
                                                         st.dictionaries(keys, children, max_size=5)), max_leaves=12)


def config_or_own_error(path, overrides=()):
    try:
        return load_config(path, list(overrides))
    except ModelFileError as err:
        assert str(err).startswith(str(path)), err
        return None


@SETTINGS
@given(text=st.text(max_size=300))
def test_any_text_is_a_config_or_a_model_file_error(tmp_path, text):
    path = tmp_path / "any.yaml"
    path.write_text(text)
    config = config_or_own_error(path)
    assert config is None or isinstance(config, RunConfig)


@SETTINGS
@given(tree=trees, overrides=st.lists(st.tuples(st.lists(keys, min_size=1, max_size=3), scalars), max_size=3))
def test_any_yaml_tree_and_overrides_give_a_config_or_a_model_file_error(tmp_path, tree, overrides):
    path = tmp_path / "tree.yaml"
    path.write_text(yaml.safe_dump(tree))
    items = [f"{'.'.join(k)}={yaml.safe_dump(v, default_flow_style=True).strip().removesuffix('...').strip()}"
             for k, v in overrides]
    config = config_or_own_error(path, items)
    assert config is None or isinstance(config, RunConfig)


@SETTINGS
@given(model=st.fixed_dictionaries({"sizes": st.lists(st.integers(-2, 30), max_size=4)},
                                   optional={"feedback": st.sampled_from(["sleep", "transpose", "x"]),
                                             "params": st.dictionaries(st.sampled_from(["soma", "network", "som"]),
                                                                       st.dictionaries(keys, scalars, max_size=2),
                                                                       max_size=2)}))
def test_any_model_section_gives_a_config_or_a_model_file_error(tmp_path, model):
    path = tmp_path / "model.yaml"
    path.write_text(yaml.safe_dump({"name": "t", "model": model}))
    config = config_or_own_error(path)
    assert config is None or config.model.composition.n_slot > 0


@SETTINGS
@given(data=st.binary(max_size=64))
def test_any_bytes_are_an_idx_array_or_a_data_error(data):
    try:
        array = parse_idx(data)
    except DataError:
        return
    assert array.dtype == np.uint8 and array.size == len(data) - 4 - 4 * data[3]


@SETTINGS
@given(dims=st.lists(st.integers(0, 4), min_size=1, max_size=3), cut=st.integers(-8, 8),
       magic=st.sampled_from([0x801, 0x803, 0x802, 0xD03]), zipped=st.booleans())
def test_any_idx_file_is_read_or_a_data_error(tmp_path, dims, cut, magic, zipped):
    body = struct.pack(f">I{len(dims)}I", magic, *dims) + bytes(int(np.prod(dims)))
    body = body[: len(body) + cut] if cut < 0 else body + bytes(cut)
    path = tmp_path / ("x.idx.gz" if zipped else "x.idx")
    path.write_bytes(gzip.compress(body) if zipped else body)
    try:
        array = read_idx(path, 0x803, verify=False)
    except DataError as err:
        assert str(err).startswith(str(path))
        return
    assert magic == 0x803 and array.ndim == 3 and array.dtype == np.uint8


@SETTINGS
@given(data=st.binary(max_size=80))
def test_any_bytes_are_events_or_a_data_error(data):
    try:
        events = decode_bin(data)
    except DataError:
        return
    overflow_markers = sum(data[k + 1] == OVERFLOW_Y for k in range(0, len(data), 5))  # not events: dropped
    assert events.dtype == EVENT_DTYPE and len(events) == len(data) // 5 - overflow_markers
    assert np.all(np.diff(events["t"]) >= 0) and np.all(events["x"] < 34) and np.all(events["y"] < 34)


def test_a_yaml_list_is_not_a_config(tmp_path):
    path = tmp_path / "list.yaml"
    path.write_text("- 1\n- 2\n")
    with pytest.raises(ModelFileError, match="list.yaml"):
        load_config(path, ["train.epochs=2"])


NUMERIC_KEYS = ["model.params.forward_synapse.eta", "model.params.network.gain_hidden",
                "model.params.network.init_scale", "model.params.feedback_synapse.lambda_sleep", "train.max_weight",
                "train.seed"]
numbers = st.one_of(st.floats(), st.sampled_from([float("nan"), float("inf"), -float("inf"), -1.0, 1e308]),
                    st.integers(-2**70, 2**70))


@settings(SETTINGS, max_examples=40)
@given(key=st.sampled_from(NUMERIC_KEYS), value=numbers, unit=st.sampled_from(["", " ms", " mV", " Hz"]))
def test_any_number_for_a_numeric_key_loads_finite_or_names_the_key(tmp_path, key, value, unit):
    """NaN, inf, negative, huge or in the wrong unit: the config loads with finite values (a seed >= 0), or the
    error names the key; never another exception."""
    path = tmp_path / "n.yaml"
    path.write_text("name: t\nmodel: {sizes: [64, 12, 10]}\n")  # feedback synapses too
    text = yaml.safe_dump(value).removesuffix("...\n").strip() + unit
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)  # eta = 0 is warned about
            warnings.simplefilter("ignore", RuntimeWarning)  # Brian2 printing a huge value in an error
            config = load_config(path, [f"{key}={text}"])
    except ModelFileError as err:
        assert str(err).startswith(str(path)) and key in str(err), err
        return
    composition = config.model.composition
    values = [*composition.values.values(), *(v for el in composition.elements.values() for v in el.values.values())]
    assert all(finite(v) for v in values) and np.isfinite(config.train.max_weight) and config.train.seed >= 0
