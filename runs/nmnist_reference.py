"""A non-spiking reference for an N-MNIST data set: logistic regression on each recording's event count per pixel
and polarity (34 x 34 x 2 = 2312 features), on the splits a config makes (default: runs/configs/nmnist.yaml, the
shipped subset: 800 train / 200 validation / 100 test recordings).

    python runs/nmnist_reference.py                              # the shipped subset
    python runs/nmnist_reference.py --set data.data_dir=data/NMNIST   # the full set

Features: log(1 + count), standardised on the training split. The inverse regularisation C is chosen on
the validation split from a log grid; the test split is evaluated once, with the chosen C. Results: printed,
and runs/out/nmnist_reference.json.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import numpy as np
import typer
from sklearn.linear_model import LogisticRegression
from sklearn.preprocessing import StandardScaler

from biograd.config import load_config
from biograd.data.splits import Split, load_splits

GRID = np.logspace(-4, 1, 11)  # C, the inverse regularisation strength


def counts(split: Split) -> np.ndarray:
    """Events per input channel over the whole recording, log(1 + n): (samples, 2312)."""
    return np.log1p(split.inputs.sum(axis=1))


def main(config: Annotated[Path, typer.Argument(help="a run config with an N-MNIST data section")] =
         Path("runs/configs/nmnist.yaml"),
         set_: Annotated[list[str] | None, typer.Option("--set", help="config override")] = None,
         out: Annotated[Path, typer.Option(help="result file")] = Path("runs/out/nmnist_reference.json")) -> None:
    cfg = load_config(config, set_ or [])
    splits = load_splits(cfg.data, cfg.model)
    if splits.validation is None:
        raise typer.BadParameter("the config holds out no validation split (data.validation)")
    scaler = StandardScaler().fit(counts(splits.train))
    x = {name: scaler.transform(counts(split)) for name, split in splits.named().items()}
    y = {name: split.labels for name, split in splits.named().items()}
    fits = {c: LogisticRegression(C=c, max_iter=5000).fit(x["train"], y["train"]) for c in GRID}
    validation = {c: float(np.mean(fit.predict(x["validation"]) == y["validation"])) for c, fit in fits.items()}
    chosen = max(validation, key=validation.get)
    result = {"model": "logistic regression on log(1 + events per pixel and polarity)", "config": str(config),
              "overrides": set_ or [], "samples": {name: len(labels) for name, labels in y.items()},
              "C chosen on validation": float(chosen), "validation accuracy": validation[chosen],
              "test accuracy": float(np.mean(fits[chosen].predict(x["test"]) == y["test"])),
              "validation accuracy per C": {f"{c:.3g}": v for c, v in validation.items()}}
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps({k: v for k, v in result.items() if k != "validation accuracy per C"}, indent=2))


if __name__ == "__main__":
    typer.run(main)
