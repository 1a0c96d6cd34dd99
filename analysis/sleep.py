"""Sleep alone: how the Hebbian sleep rule turns feedback weights B_l towards W_l^T."""

from __future__ import annotations

import numpy as np
import pandas as pd

from biograd.analysis.backprop import angle_deg
from biograd.models.network import BioGradNetwork
from biograd.models.schedule import INFER, sleep_block


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


def sleep_alignment_curve(net: BioGradNetwork, n_chunks: int, *, sleep: bool = True,
                          eta_sleep: float | None = None) -> pd.DataFrame:
    """Run ``n_chunks`` chunks of sleep (or of idle slots, ``sleep=False``) with W frozen, from
    ``net.state`` (a random start, or a trained state assigned to it).

    Every chunk is one sleep block of ``net.n_slots`` slots shared among the feedback layers;
    ``eta_sleep`` overrides the build's rate (no rebuild). Returns a tidy frame: one row per
    (chunk, layer) with the angle between B_l and W_l^T in degrees, B_l's uniform offset
    (``uniform_offset``), the mean and coefficient of variation of its column scales
    (``column_scales``: ``scale``, ``scale_cv``), the simulated sleep steps so far, and the norms
    of B_l and W_l. Chunk 0 is the starting point.
    """
    spec, n = net.spec, net.n_slots
    layers = sorted(net.feedback)
    per_layer = max(1, n // len(layers))
    kinds = sleep_block(spec.n_layers, per_layer) if sleep else np.full(per_layer * len(layers), INFER)
    zeros_in, zeros_out = np.zeros((len(kinds), spec.sizes[0])), np.zeros((len(kinds), spec.sizes[-1]))
    rows = []

    def record(chunk: int):
        state = net.state
        for l in layers:
            rows.append({"chunk": chunk, "layer": l, "sleep": sleep, "sleep_steps": chunk * per_layer * spec.n_slot,
                         "angle_deg": angle_deg(state.B[l], state.W[l - 1].T),
                         "offset": uniform_offset(state.B[l], state.W[l - 1].T),
                         **_scale_summary(column_scales(state.B[l], state.W[l - 1].T)),
                         "norm_B": float(np.linalg.norm(state.B[l])), "norm_W": float(np.linalg.norm(state.W[l - 1]))})

    record(0)
    for chunk in range(1, n_chunks + 1):
        net.run_chunk(kinds, zeros_in, zeros_out, eta=0.0, eta_sleep=eta_sleep, seed=net.seed + chunk)
        record(chunk)
    frame = pd.DataFrame(rows)
    return frame.assign(eta_sleep=eta_sleep) if eta_sleep is not None else frame
