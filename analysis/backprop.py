"""The equivalent rate network: its backprop gradient and the feedback-alignment update.

For one sample, with recorded rates r_0 (input) .. r_L (output), gates g_1 .. g_{L-1} (the
somas' pseudo-derivatives), target y and loss E = 0.5 * ||y - r_L||^2 (no output gate):

    delta_L = y - r_L
    delta_l = (M_{l+1} delta_{l+1}) * g_l            for l = L-1 .. 1
    dW_l    = eta * delta_l r_{l-1}^T                (= -eta dE/dW_l when M = W^T)

Backprop uses M_{l+1} = W_{l+1}^T; feedback alignment uses the feedback weights B_{l+1}.
W[l-1] holds W_l with shape (N_l, N_{l-1}); B[l] holds B_l with shape (N_{l-1}, N_l).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np


def deltas(rates: Sequence[np.ndarray], gates: Sequence[np.ndarray | None], target: np.ndarray,
           feedback: Mapping[int, np.ndarray]) -> list[np.ndarray | None]:
    """Errors delta_1 .. delta_L (index 0 is None); ``feedback[l]`` maps layer l's error to layer l-1."""
    L = len(rates) - 1
    out: list[np.ndarray | None] = [None] * (L + 1)
    out[L] = np.asarray(target, float) - np.asarray(rates[L], float)
    for layer in range(L - 1, 0, -1):
        out[layer] = (feedback[layer + 1] @ out[layer + 1]) * np.asarray(gates[layer], float)
    return out


def weight_updates(rates: Sequence[np.ndarray], gates: Sequence[np.ndarray | None], target: np.ndarray,
                   feedback: Mapping[int, np.ndarray], eta: float = 1.0) -> list[np.ndarray]:
    """dW_l = eta * delta_l r_{l-1}^T for l = 1..L, returned as a list indexed like W (W[l-1])."""
    d = deltas(rates, gates, target, feedback)
    return [eta * np.outer(d[layer], rates[layer - 1]) for layer in range(1, len(rates))]


def backprop_updates(rates, gates, target, W: Sequence[np.ndarray], eta: float = 1.0) -> list[np.ndarray]:
    """The backprop update of the rate network (errors sent back through W^T)."""
    return weight_updates(rates, gates, target, {l: W[l - 1].T for l in range(2, len(W) + 1)}, eta)


def feedback_alignment_updates(rates, gates, target, B: Mapping[int, np.ndarray], eta: float = 1.0):
    """The update with errors sent back through the feedback weights B (feedback alignment)."""
    return weight_updates(rates, gates, target, B, eta)


def angle_deg(a: np.ndarray, b: np.ndarray) -> float:
    """Angle between two arrays seen as flat vectors, in degrees (nan if either is zero)."""
    a, b = np.ravel(a).astype(float), np.ravel(b).astype(float)
    na, nb = np.linalg.norm(a), np.linalg.norm(b)
    if na == 0 or nb == 0:
        return float("nan")
    a, b = a / na, b / nb  # 2*atan2(|a-b|, |a+b|) stays accurate near 0 and 180 degrees, unlike arccos
    return float(np.degrees(2 * np.arctan2(np.linalg.norm(a - b), np.linalg.norm(a + b))))
