"""Train 784-500-10 on full MNIST from a script (the same as `biograd train runs/configs/mnist_1h.yaml`).

Edit the settings below, then run `.venv/bin/python runs/mnist_1h.py`. The run directory
(runs/out/<time>_mnist_1h_<hash>/) gets the resolved config, the equation files, checkpoints,
metrics.parquet and learning_curve.png; `biograd train --resume <run directory>` continues it.
"""

from pathlib import Path

from biograd.config import load_config
from biograd.trainer import Trainer, start_run

CONFIG = Path(__file__).parent / "configs" / "mnist_1h.yaml"
OVERRIDES = [
    "model.feedback=sleep",  # transpose | fixed_random | sleep
    "train.epochs=6",
    # "data.n_train=10000",  # a quicker run on the first 10,000 training digits
    # "data.data_dir=/path/to/mnist",  # default: $BIOGRAD_DATA/mnist or ../shared/data/mnist
]

if __name__ == "__main__":
    run = start_run(load_config(CONFIG, OVERRIDES))
    print(f"run directory: {run.path}")
    Trainer(run).train()
    print(run.accuracy("validation").rename("validation accuracy").to_string())
    print(f"test accuracy: {run.accuracy('test').iloc[-1]:.4f}")
    print(f"learning curve: {run.learning_curve_path}")
