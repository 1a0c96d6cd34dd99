"""Sleep alone: how the Hebbian sleep rule turns feedback weights B_l towards W_l^T."""

from __future__ import annotations

import numpy as np

from biograd.analysis.backprop import angle_deg


def uniform_offset(B: np.ndarray, W_T: np.ndarray) -> float:
    """Uniform offset of B relative to its W^T-aligned part: least squares B ~ c W^T + d over all
    synapses, returns d / (c std(W^T)). 0 for a pure mirror c W^T; a value of -0.5 means every b sits
    half a (scaled) weight-standard-deviation below the mirror; NaN while B has no W^T part."""
    (c, d), *_ = np.linalg.lstsq(np.c_[W_T.ravel(), np.ones(W_T.size)], B.ravel(), rcond=None)
    return float(d / (c * W_T.std())) if c else float("nan")  # B = 0 (before any sleep): no mirror to offset


def column_scales(B: np.ndarray, W_T: np.ndarray) -> np.ndarray:
    """Scale of each column of B against W^T: least squares B[:, k] ~ c_k W^T[:, k], one c_k per
    responding neuron k (c_k = <B_k, W_k> / |W_k|^2). Equal c_k mean B ~ c W^T; c_k |W_k| equal
    across k means every column has the same length whatever |W_k| (B ~ W^T diag(1/|W_k|))."""
    return (B * W_T).sum(axis=0) / (W_T * W_T).sum(axis=0)


def _scale_summary(c: np.ndarray) -> dict[str, float]:
    mean = float(c.mean())
    return {"scale": mean, "scale_cv": float(c.std() / abs(mean)) if mean else float("nan")}


def feedback_alignment_rows(W: list[np.ndarray], B: dict[int, np.ndarray]) -> list[dict]:
    """Per feedback layer l: the angle between B_l and W_l^T in degrees, B_l's uniform offset
    (:func:`uniform_offset`), the mean and coefficient of variation of its column scales
    (:func:`column_scales`: ``scale``, ``scale_cv``), and the norms of B_l and W_l."""
    return [{"layer": l, "angle_deg": angle_deg(B[l], W[l - 1].T), "offset": uniform_offset(B[l], W[l - 1].T),
             **_scale_summary(column_scales(B[l], W[l - 1].T)),
             "norm_B": float(np.linalg.norm(B[l])), "norm_W": float(np.linalg.norm(W[l - 1]))} for l in sorted(B)]
