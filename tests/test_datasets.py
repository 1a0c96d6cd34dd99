"""Splits for training runs: sizes, checks against the model, stimulus rows for a chunk."""

import numpy as np
import pytest
from support import TRAIN, tiny_spec

from biograd.config import DataConfig
from biograd.data.paths import resolve_data_dir
from biograd.data.splits import Split, chunk_stimulus, load_splits
from biograd.models.network import BioGradNetwork
from biograd.models.spec import NetworkSpec


def test_sklearn_split_sizes_and_limits():
    splits = load_splits(DataConfig(source="sklearn", n_train=100, n_test=50), tiny_spec((64, 10)))
    train, test = splits.train, splits.test
    assert train.inputs.shape == (100, 64) and test.inputs.shape == (50, 64) and not train.events
    assert 0 <= train.inputs.min() and train.inputs.max() <= 1 and set(np.unique(train.labels)) <= set(range(10))
    assert splits.validation is None and splits.per_epoch is test
    whole = load_splits(DataConfig(source="sklearn", test_fraction=0.25), tiny_spec((64, 10)))
    assert len(whole.train) + len(whole.test) == 1797 and abs(len(whole.test) - 449) <= 10


def test_validation_is_the_last_samples_of_the_training_part_and_the_test_split_never_moves():
    """The validation split is held out before ``n_train``; no setting (n_train, validation) changes the test
    split, and it is the same for every run seed (it does not take one)."""
    spec = tiny_spec((64, 10))
    whole = load_splits(DataConfig(source="sklearn"), spec)
    held = load_splits(DataConfig(source="sklearn", validation=300, n_train=200), spec)
    k = len(whole.train) - 300
    np.testing.assert_array_equal(held.validation.inputs, whole.train.inputs[k:])
    np.testing.assert_array_equal(held.train.inputs, whole.train.inputs[:200])
    assert held.per_epoch is held.validation and set(held.named()) == {"train", "validation", "test"}
    assert held.test.record() == whole.test.record()
    assert held.record()["validation"]["samples"] == 300 and held.train.record() != whole.train.record()
    with pytest.raises(ValueError, match=r"data.validation = 5000 leaves no training samples"):
        load_splits(DataConfig(source="sklearn", validation=5000), spec)


def test_input_size_and_encoder_must_fit_the_data():
    with pytest.raises(ValueError, match=r"has 64 inputs per sample, but the model's input layer has 784"):
        load_splits(DataConfig(source="sklearn"), tiny_spec((784, 10)))
    with pytest.raises(ValueError, match="encoder 'events' does not fit data source 'sklearn'"):
        load_splits(DataConfig(source="sklearn"), NetworkSpec(sizes=(64, 10), encoder="events"))


def test_chunk_stimulus_leaves_sleep_slots_empty():
    images = Split(np.arange(12.0).reshape(3, 4) / 12, np.arange(3), "x")
    rows = chunk_stimulus(images, np.array([-1, 2, 0, -1]), n_slot=5)
    assert np.array_equal(rows, np.stack([np.zeros(4), images.inputs[2], images.inputs[0], np.zeros(4)]))
    events = Split(np.ones((2, 3, 4)), np.arange(2), "ev")  # 3 forward bins of 4 channels
    rows = chunk_stimulus(events, np.array([-1, 1]), n_slot=5).reshape(2, 5, 4)
    assert rows[0].sum() == 0 and np.all(rows[1, :3] == 1) and np.all(rows[1, 3:] == 0)


@pytest.mark.skipif(resolve_data_dir("nmnist") is None, reason="no N-MNIST data folder")
def test_nmnist_events_binned_into_the_forward_phase_drive_the_input_layer():
    spec = NetworkSpec(sizes=(2312, 16, 10), encoder="events")
    splits = load_splits(DataConfig(source="nmnist", n_train=4, n_test=2), spec)
    train, test = splits.train, splits.test
    assert train.inputs.shape == (4, 20, 2312) and test.inputs.shape == (2, 20, 2312) and train.events
    assert train.inputs.sum(axis=(1, 2)).min() > 1000  # a recording has thousands of events
    for polarity in (slice(0, 1156), slice(1156, 2312)):  # both ON and OFF events
        assert np.all(train.inputs[:, :, polarity].sum(axis=(1, 2)) > 0)
    net = BioGradNetwork(spec, slots=4)
    result = net.run_chunk(np.full(4, TRAIN), chunk_stimulus(train, np.arange(4), spec.n_slot), np.zeros((4, 10)))
    active = (train.inputs > 0.5).sum(axis=1) / spec.n_f  # per channel: bins with an event / n_f
    np.testing.assert_allclose(result.rates[0], active)  # an input spike in every bin with events
