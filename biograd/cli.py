"""Command line: ``biograd describe | check | demo``."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from biograd.errors import ModelFileError

app = typer.Typer(add_completion=False, no_args_is_help=True, help=__doc__)
console = Console()


@app.command()
def describe(
    element: Annotated[str | None, typer.Argument(help="element name (e.g. soma); omit for the whole model")] = None,
    sizes: Annotated[str, typer.Option(help="layer sizes, e.g. 784-500-10")] = "784-500-10",
    feedback: Annotated[str, typer.Option(help="transpose | fixed_random | sleep")] = "sleep",
) -> None:
    """Print a Markdown description of one element or of a whole network (equations + parameters)."""
    from biograd.describe import describe_element, describe_model
    from biograd.elements import load_element
    from biograd.models.spec import NetworkSpec

    try:
        if element:
            text = describe_element(load_element(element))
        else:
            text = describe_model(NetworkSpec(sizes=tuple(int(n) for n in sizes.split("-")), feedback=feedback))
    except ModelFileError as err:
        console.print(f"[red]error:[/red] {err}")
        raise typer.Exit(2) from err
    sys.stdout.write(text + "\n")


@app.command()
def check(
    directory: Annotated[Path | None, typer.Argument(help="folder of .eqs files (default: equations/)")] = None,
) -> None:
    """Lint every equation file and parameter table: syntax, names, bounds and Brian2 unit checks."""
    from biograd.elements import check_units, equations_dir, load_element

    folder = directory or equations_dir()
    files = sorted(folder.glob("*.eqs"))
    failures = 0
    for path in files:
        try:
            check_units(load_element(path))
            console.print(f"[green]ok[/green]    {path.name}")
        except ModelFileError as err:
            failures += 1
            console.print(f"[red]error[/red] {err}")
    console.print(f"{len(files) - failures} of {len(files)} element files pass")
    if failures or not files:
        raise typer.Exit(1)


@app.command()
def demo(
    epochs: Annotated[int, typer.Option(help="training epochs over the 4,000 embedded digits")] = 3,
    seed: Annotated[int, typer.Option(help="random seed")] = 0,
) -> None:
    """Check model files and data, then train 784-100-10 (sleep mode) on the embedded MNIST digits."""
    from biograd.demo import run

    run(epochs=epochs, seed=seed)


if __name__ == "__main__":
    app()
