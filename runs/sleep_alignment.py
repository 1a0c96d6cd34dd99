"""Sleep alone aligns feedback with forward weights: angle(B, W^T) per sleep block, W frozen.

Two experiments:
  .venv/bin/python runs/sleep_alignment.py [--chunks 12]
      a small random network (SPEC below), with and without sleep -> runs/out/sleep_alignment/
  .venv/bin/python runs/sleep_alignment.py --run runs/out/<run> [--epoch 6] [--eta-sleep 1e-3,3e-4] [--chunks 200]
      a trained run's W and B (weights_epoch<k>.npz), its network and sleep block, one curve per
      eta_sleep: where the sleep rule's angle settles for these weights -> runs/out/sleep_alignment/<run>_epoch<k>/
      With --current-equations, the project's equations/ instead of the run's copy: how an edited
      rule behaves on the same trained weights (-> ..._epoch<k>_current/). With --precision, another
      arithmetic (float, loihi_weights, ...) on the same weights (-> ..._epoch<k>_<precision>/).
The curve.csv also holds B's uniform offset and column scales per block (analysis.sleep:
uniform_offset, column_scales: mean `scale` and its coefficient of variation `scale_cv`).
"""

import argparse
from pathlib import Path

import brian2 as b2
import pandas as pd
import seaborn as sns

from biograd.chunks import sleep_alignment_curve
from biograd.models.backend import Backend
from biograd.models.network import BioGradNetwork
from biograd.models.spec import NetworkSpec
from biograd.plan import sleep_kinds
from biograd.rundir import RunDirectory

SPEC = NetworkSpec(sizes=(20, 40, 10), feedback="sleep", params={"feedback_synapse": {"eta_sleep": 0.003}})


def random_network(chunks: int) -> pd.DataFrame:
    """The small network from its random start, with and without sleep (numpy)."""
    b2.prefs.codegen.target = "numpy"
    return pd.concat([sleep_alignment_curve(BioGradNetwork(SPEC, slots=50, seed=2), chunks, sleep=s)
                      for s in (True, False)], ignore_index=True)


def trained_run(run: RunDirectory, epoch: int, etas: list[float], chunks: int, out: Path,
                current_equations: bool = False, precision: str | None = None) -> pd.DataFrame:
    """The run's state after ``epoch``; every chunk is one of its sleep blocks (cpp_standalone, one build),
    simulated with the run's equations or, with ``current_equations``, the project's; at the run's
    precision or ``precision``."""
    config = run.config
    if precision:
        config = config.model_copy(update={"model": config.model.model_copy(update={"precision": precision})})
    block = sleep_kinds(config.model, config.train)
    if not len(block):
        raise SystemExit(f"{run.path}: feedback {config.model.feedback!r} with {config.model.n_layers} weight layers "
                         "has no sleep blocks")
    start, _ = run.load_checkpoint(run.path / f"weights_epoch{epoch}.npz")
    backend = Backend("cpp_standalone", out / "build")
    backend.activate()
    equations = None if current_equations else run.build_equations()
    net = BioGradNetwork(config.model, slots=len(block), seed=config.train.seed, equations=equations, backend=backend)
    curves = []
    for eta in etas:
        net.state = start
        curves.append(sleep_alignment_curve(net, chunks, eta_sleep=eta))
        columns = ["eta_sleep", "layer", "angle_deg", "offset", "scale", "scale_cv", "norm_B"]
        print(curves[-1].groupby("layer").tail(1)[columns].to_string(index=False))
    return pd.concat(curves, ignore_index=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--chunks", type=int, default=None, help="sleep blocks (default 12, or 200 with --run)")
    parser.add_argument("--run", type=Path, help="a run directory with weights_epoch<k>.npz")
    parser.add_argument("--epoch", type=int, default=6)
    parser.add_argument("--eta-sleep", default="0.001", help="comma-separated rates of the sleep rule (--run)")
    parser.add_argument("--current-equations", action="store_true",
                        help="simulate with the project's equations/, not the run's copy (--run)")
    parser.add_argument("--precision", help="the arithmetic to sleep in, if not the run's (--run)")
    parser.add_argument("--out", type=Path, default=Path("runs/out/sleep_alignment"))
    args = parser.parse_args()
    if args.run is None:
        out, curve = args.out, random_network(args.chunks or 12)
        hue, title = "sleep", f"sleep alignment, {'-'.join(map(str, SPEC.sizes))}"
    else:
        run = RunDirectory(args.run)
        suffix = "_current" * args.current_equations + (f"_{args.precision}" if args.precision else "")
        out = args.out / f"{run.path.name}_epoch{args.epoch}{suffix}"
        curve = trained_run(run, args.epoch, [float(x) for x in args.eta_sleep.split(",")], args.chunks or 200, out,
                            args.current_equations, args.precision)
        hue, title = "eta_sleep", f"sleep from {run.path.name}, epoch {args.epoch} (W frozen)"
    out.mkdir(parents=True, exist_ok=True)
    curve.to_csv(out / "curve.csv", index=False)
    ax = sns.lineplot(curve, x="sleep_steps", y="angle_deg", hue=hue, style="layer", palette="deep",
                      marker="o" if curve["chunk"].max() <= 30 else None)
    ax.set(xlabel="time steps (sleep blocks, W frozen)", ylabel="angle(B, W^T) [deg]", ylim=(0, 95), title=title)
    ax.figure.savefig(out / "curve.png", dpi=120, bbox_inches="tight")
    print(f"wrote {out}/curve.csv and curve.png")


if __name__ == "__main__":
    main()
