"""The rate-network reference on hand-worked cases and against finite differences."""

import numpy as np
import pytest

from biograd.analysis.backprop import (
    angle_deg,
    backprop_updates,
    deltas,
    feedback_alignment_updates,
    weight_updates,
)


def test_angles_of_hand_made_arrays():
    assert angle_deg([1, 0], [0, 2]) == pytest.approx(90)
    assert angle_deg([1, 1], [2, 2]) == pytest.approx(0, abs=1e-6)
    assert angle_deg([1, 0], [-3, 0]) == pytest.approx(180)
    assert angle_deg([1, 0], [1, 1]) == pytest.approx(45)
    assert angle_deg(np.eye(2), np.array([[1, 0], [0, -1]])) == pytest.approx(90)  # flattened matrices
    assert np.isnan(angle_deg([0, 0], [1, 2]))


def test_hand_worked_two_layer_example():
    # input rates r0, hidden rates r1 with gate g1, output r2; W1 (2x2), W2 (1x2)
    r0, r1, r2 = np.array([1.0, 0.5]), np.array([0.4, 0.0]), np.array([0.3])
    g1 = np.array([1.0, 0.0])
    W1, W2 = np.array([[0.2, 0.4], [0.1, -0.3]]), np.array([[0.5, -1.0]])
    y = np.array([0.8])
    # by hand: delta2 = 0.8 - 0.3 = 0.5; delta1 = W2^T delta2 * g1 = [0.25, -0.5] * [1, 0] = [0.25, 0]
    dW1, dW2 = backprop_updates([r0, r1, r2], [None, g1], y, [W1, W2], eta=2.0)
    np.testing.assert_allclose(dW2, 2.0 * np.array([[0.5 * 0.4, 0.5 * 0.0]]))
    np.testing.assert_allclose(dW1, 2.0 * np.array([[0.25 * 1.0, 0.25 * 0.5], [0.0, 0.0]]))
    # feedback alignment with B2 = [[-1], [2]]: delta1 = [-0.5, 1.0] * [1, 0] = [-0.5, 0]
    fa1, fa2 = feedback_alignment_updates([r0, r1, r2], [None, g1], y, {2: np.array([[-1.0], [2.0]])})
    np.testing.assert_allclose(fa1, [[-0.5, -0.25], [0.0, 0.0]])
    np.testing.assert_allclose(fa2, dW2 / 2.0)


def test_backprop_update_is_minus_the_loss_gradient():
    """With fixed gates, r_l = g_l * (W_l r_{l-1}) is differentiable; compare with finite differences."""
    rng = np.random.default_rng(0)
    sizes = (5, 4, 3, 2)
    W = [rng.normal(size=(sizes[l], sizes[l - 1])) for l in range(1, 4)]
    gates = [None, rng.integers(0, 2, 4).astype(float), rng.integers(0, 2, 3).astype(float)]
    x, y = rng.random(5), rng.random(2)

    def forward(weights):
        rates = [x]
        for l, w in enumerate(weights, start=1):
            a = w @ rates[-1]
            rates.append(a * gates[l] if l < 3 else a)  # no gate at the output
        return rates

    def loss(weights):
        return 0.5 * np.sum((y - forward(weights)[-1]) ** 2)

    updates = backprop_updates(forward(W), gates, y, W, eta=1.0)
    for l in range(3):
        numeric = np.zeros_like(W[l])
        for idx in np.ndindex(W[l].shape):
            plus = [w.copy() for w in W]
            minus = [w.copy() for w in W]
            plus[l][idx] += 1e-6
            minus[l][idx] -= 1e-6
            numeric[idx] = (loss(plus) - loss(minus)) / 2e-6
        np.testing.assert_allclose(updates[l], -numeric, rtol=1e-5, atol=1e-8)


def test_deltas_and_updates_are_consistent():
    rng = np.random.default_rng(1)
    rates = [rng.random(3), rng.random(4), rng.random(2)]
    gates = [None, np.ones(4)]
    B = {2: rng.normal(size=(4, 2))}
    d = deltas(rates, gates, np.ones(2), B)
    assert d[0] is None and d[2].shape == (2,) and d[1].shape == (4,)
    ups = weight_updates(rates, gates, np.ones(2), B, eta=0.5)
    np.testing.assert_allclose(ups[1], 0.5 * np.outer(d[2], rates[1]))
