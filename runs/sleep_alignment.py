"""Sleep alone aligns feedback with forward weights: angle(B, W^T) per sleep chunk, with and without sleep.

Run:  .venv/bin/python runs/sleep_alignment.py [--chunks 12]
Writes runs/out/sleep_alignment/{curve.csv, curve.png}. Edit SPEC to try other sizes or rules.
"""

import argparse
from pathlib import Path

import brian2 as b2
import pandas as pd
import seaborn as sns

from biograd.analysis.sleep import sleep_alignment_curve
from biograd.models.network import BioGradNetwork
from biograd.models.spec import NetworkSpec

SPEC = NetworkSpec(sizes=(20, 40, 10), feedback="sleep", params={"feedback_synapse": {"eta_sleep": 0.003}})


def main(chunks: int, out: Path) -> pd.DataFrame:
    b2.prefs.codegen.target = "numpy"
    curves = [sleep_alignment_curve(BioGradNetwork(SPEC, n_slots=50, seed=2), chunks, sleep=s) for s in (True, False)]
    curve = pd.concat(curves, ignore_index=True)
    out.mkdir(parents=True, exist_ok=True)
    curve.to_csv(out / "curve.csv", index=False)
    ax = sns.lineplot(curve, x="sleep_steps", y="angle_deg", hue="sleep", marker="o")
    ax.set(xlabel="time steps (sleep blocks, W frozen)", ylabel="angle(B, W^T) [deg]", ylim=(0, 95),
           title=f"sleep alignment, {'-'.join(map(str, SPEC.sizes))}")
    ax.figure.savefig(out / "curve.png", dpi=120, bbox_inches="tight")
    return curve


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--chunks", type=int, default=12)
    parser.add_argument("--out", type=Path, default=Path("runs/out/sleep_alignment"))
    args = parser.parse_args()
    print(main(args.chunks, args.out)[["sleep", "sleep_steps", "angle_deg"]].to_string(index=False))
