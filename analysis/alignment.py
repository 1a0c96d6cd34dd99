"""Gradient alignment: BioGrad's measured weight change against backprop and feedback alignment.

For a probed training sample, with the rates r_l, gates g_l and target y the spiking network
recorded, and the weight change dW_l its synapses made (:func:`biograd.chunks.probe`):

    backprop             dW_BP = eta delta_l r_{l-1}^T, errors sent back through W^T
    feedback alignment   dW_FA = the same with the feedback weights B the network used

Three angles per sample and layer separate the two sources of mismatch:

    biograd_vs_backprop             total: what BioGrad does against the true gradient
    biograd_vs_feedback_alignment   error-spike quantisation and saturation (B held fixed)
    feedback_alignment_vs_backprop  feedback misalignment (B against W^T), with exact errors

With ``transpose`` feedback the network has no B: its feedback is s W^T (BioGradNetwork.feedback_weights; without
it, W^T), and FA equals backprop up to the scale s. ``norm_ratio`` is
|first| / |second|: the scale of BioGrad's step relative to the reference (|B| sets it in FA).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from biograd.analysis.backprop import angle_deg, backprop_updates, feedback_alignment_updates

MODES = ("biograd_vs_backprop", "biograd_vs_feedback_alignment", "feedback_alignment_vs_backprop")


@dataclass
class ProbeSample:
    """One probed training sample: what the network recorded and the weight change it made."""

    index: int  # sample index in the training split
    target: np.ndarray  # teacher rates y
    rates: list[np.ndarray]  # r_0 .. r_L
    gates: list[np.ndarray | None]  # None, g_1 .. g_L
    dW: list[np.ndarray]  # measured change of W_1 .. W_L for learning rate ``eta``
    eta: float = 1.0


def sample_alignment(sample: ProbeSample, W: Sequence[np.ndarray], B: Mapping[int, np.ndarray]) -> list[dict]:
    """Rows {sample, layer, mode, angle_deg, norm_ratio} of one sample at weights (W, B)."""
    bp = backprop_updates(sample.rates, sample.gates, sample.target, W, sample.eta)
    feedback = B if B else {l: W[l - 1].T for l in range(2, len(W) + 1)}
    fa = feedback_alignment_updates(sample.rates, sample.gates, sample.target, feedback, sample.eta)
    rows = []
    for layer, (bio, b, f) in enumerate(zip(sample.dW, bp, fa, strict=True), start=1):
        for mode, (x, y) in zip(MODES, [(bio, b), (bio, f), (f, b)], strict=True):
            ny = np.linalg.norm(y)
            rows.append({"sample": int(sample.index), "layer": layer, "mode": mode, "angle_deg": angle_deg(x, y),
                         "norm_ratio": float(np.linalg.norm(x) / ny) if ny else float("nan")})
    return rows


def probe_alignment_rows(samples: Sequence[ProbeSample], W: Sequence[np.ndarray],
                         B: Mapping[int, np.ndarray]) -> list[dict]:
    """:func:`sample_alignment` for every probed sample."""
    return [row for sample in samples for row in sample_alignment(sample, W, B)]
