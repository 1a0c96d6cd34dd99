"""Why sleep does not align 8-bit feedback weights, and what does: angle(B, W^T) through sleep, W frozen.

    taskset -c 0 .venv/bin/python runs/sleep_loihi_candidates.py [--chunks 12] [--only NAME,...]

A 64-64-10 sleep network is trained briefly (float, 300 sklearn digits, numpy runtime); its B is first brought near
the float rule's alignment (``--prealign`` blocks at 10x eta_sleep); from that same (W, B) every candidate sleeps
``--chunks`` blocks of 2,000 steps at the Loihi setting's rule (eta_sleep 1e-3, lambda_sleep 0.318,
runs/configs/mnist_1h_loihi.yaml), in float or at 8-bit weights (precision loihi_weights). Per candidate and block:
the angle, |B| and the spread of B about its W^T-aligned part (``resid_steps``: rms of B - W^T diag(c), c fitted
per column, in B's steps b_res). The per-spike update is r = eta_sleep (x - x_mean) / b_res steps; its rounding
adds a variance of about E|r| (1 - E|r|) b_res^2 per spike against the rule's own eta_sleep^2 Var(x) (printed).
-> runs/out/sleep_alignment/loihi_candidates.csv (last block per candidate) and loihi_candidates_curve.csv.
"""

import argparse
from pathlib import Path

import brian2 as b2
import numpy as np
import pandas as pd
from sklearn.datasets import load_digits

from biograd.analysis.sleep import column_scales
from biograd.chunks import run_task, sleep_alignment_curve
from biograd.config import TrainConfig
from biograd.data.splits import Split
from biograd.models.network import BioGradNetwork, PlasticState
from biograd.models.spec import NetworkSpec
from biograd.plan import build, plan_tasks

SIZES = (64, 64, 10)
RULE = {"eta_sleep": 1e-3, "lambda_sleep": 0.318}  # runs/configs/mnist_1h_loihi.yaml
TRAIN = TrainConfig(sleep_every=100, chunk=100, sleep_duration="200 ms", warmup_sleep_blocks=10, seed=1, epochs=1,
                    backend="numpy")
# name: (precision, feedback_synapse overrides on top of RULE)
CANDIDATES = {
    "float": ("float", {}),
    "loihi_per_spike": ("loihi_weights", {"t_epoch_sleep": 1, "carry_sleep": 0}),
    "loihi_epoch_10": ("loihi_weights", {"t_epoch_sleep": 10, "carry_sleep": 0}),
    "loihi_epoch_50": ("loihi_weights", {"t_epoch_sleep": 50, "carry_sleep": 0}),
    "loihi_epoch_500": ("loihi_weights", {"t_epoch_sleep": 500, "carry_sleep": 0}),
    "loihi_carry_per_spike": ("loihi_weights", {"t_epoch_sleep": 1, "carry_sleep": 1}),
    "loihi_carry_epoch_50": ("loihi_weights", {"t_epoch_sleep": 50, "carry_sleep": 1}),
    "float_eta4_lambda/4": ("float", {"eta_sleep": 4e-3, "lambda_sleep": 0.318 / 4}),
    "loihi_eta4_lambda/4": ("loihi_weights", {"eta_sleep": 4e-3, "lambda_sleep": 0.318 / 4, "t_epoch_sleep": 1,
                                                  "carry_sleep": 0}),
}


def spec(precision: str = "float", **overrides) -> NetworkSpec:
    return NetworkSpec(sizes=SIZES, feedback="sleep", precision=precision,
                       params={"feedback_synapse": RULE | overrides})


def trained_state(n_train: int = 300) -> PlasticState:
    """W and B after a brief float training on sklearn digits."""
    images, labels = load_digits(return_X_y=True)
    order = np.random.default_rng(0).permutation(len(images))
    train = Split(images[order][:n_train] / 16, labels[order][:n_train], "train")
    net = build(spec(), TRAIN)
    for step in plan_tasks(spec(), TRAIN, len(train)):
        if step.kind != "evaluate":
            run_task(net, step, train, TRAIN)
    return net.state


def residual_steps(B: np.ndarray, W: np.ndarray, step: float) -> float:
    """rms of B minus its per-column projection on W^T, in units of ``step``."""
    return float(np.sqrt(((B - W.T * column_scales(B, W.T)) ** 2).mean()) / step)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--chunks", type=int, default=12, help="sleep blocks of 2,000 steps per candidate")
    parser.add_argument("--prealign", type=int, default=4, help="float sleep blocks at 10x eta_sleep first")
    parser.add_argument("--only", default=None, help="comma-separated candidate names (default: all)")
    parser.add_argument("--out", type=Path, default=Path("runs/out/sleep_alignment"))
    args = parser.parse_args()
    b2.prefs.codegen.target = "numpy"
    state = trained_state()
    pre = BioGradNetwork(spec(eta_sleep=10 * RULE["eta_sleep"]), slots=50, seed=7)
    pre.state = state
    sleep_alignment_curve(pre, args.prealign)
    start = pre.state
    loihi = BioGradNetwork(spec("loihi_weights"), slots=1, seed=0)
    b_res = float(np.ravel(loihi.feedback[2].b_res[:])[0])
    noise = loihi.spec.composition.elements["sleep_noise"].values
    p, a = float(noise["p_noise"]), float(1 - b2.defaultclock.dt / noise["tau_sleep"])
    sd_x = float(np.sqrt(a * a * p * (1 - p) / (1 - a * a)))  # sd of the trace as the rule reads it (before the spike)
    r = RULE["eta_sleep"] * sd_x / b_res
    print(f"b_res {b_res:.5f}; per-spike update sd {r:.4f} steps: rounding variance ~{0.8 * r:.4f} b_res^2 "
          f"against the rule's {r * r:.5f} b_res^2 ({0.8 / r:.0f}x)")
    names = args.only.split(",") if args.only else list(CANDIDATES)
    curves = []
    for name in names:
        precision, overrides = CANDIDATES[name]
        net = BioGradNetwork(spec(precision, **overrides), slots=50, seed=11)
        net.state = start
        curve = sleep_alignment_curve(net, args.chunks)
        curve = curve.assign(candidate=name, precision=precision, resid_steps=np.nan, **(RULE | overrides))
        last = net.state
        curve.loc[curve.index[-1], "resid_steps"] = residual_steps(last.B[2], last.W[1], b_res)
        curve.loc[curve.index[0], "resid_steps"] = residual_steps(start.B[2], start.W[1], b_res)
        print(curve[["candidate", "sleep_steps", "angle_deg", "norm_B", "resid_steps"]].iloc[[0, -1]]
              .to_string(index=False), flush=True)
        curves.append(curve)
    curve = pd.concat(curves, ignore_index=True)
    args.out.mkdir(parents=True, exist_ok=True)
    suffix = "" if args.only is None else "_" + "_".join(n.replace("/", "") for n in names)
    curve.to_csv(args.out / f"loihi_candidates_curve{suffix}.csv", index=False)
    table = curve.groupby("candidate", sort=False).tail(1)
    table.to_csv(args.out / f"loihi_candidates{suffix}.csv", index=False)
    columns = ["candidate", "angle_deg", "norm_B", "resid_steps", "t_epoch_sleep", "carry_sleep"]
    print(table[columns].to_string(index=False))


if __name__ == "__main__":
    main()
