"""Cost of one synaptic event on cpp_standalone: Brian2's synapse templates against dense pathways.

    python runs/event_cost.py            # 784 Poisson inputs at 200 Hz -> 500 neurons, 10 s, on_pre='v_post += w'

The minimal network of the speed issue: all-to-all, every input spike adds its weight to 500
potentials (~7.8e8 events). Brian2's profiler times each code object; the cost per event is the
time of the pathway's code objects (the synapse loop and, for Brian2's templates, the push into the
spike queue) over the number of events. Both builds draw the same spikes (seeded) and must end with
the same potentials. Prints one line per template.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import brian2 as b2
import numpy as np
import typer

from biograd.models.dense_pathways import use_dense_pathways


def measure(templates: str, directory: Path, n_pre: int = 784, n_post: int = 500, rate_hz: float = 200,
            seconds: float = 10) -> tuple[float, np.ndarray]:
    """ns per event of the pathway, and the final potentials."""
    b2.set_device("cpp_standalone", directory=str(directory), build_on_run=False)
    b2.device.reinit()
    b2.device.activate(directory=str(directory), build_on_run=False)
    b2.seed(1)
    source = b2.PoissonGroup(n_pre, rates=rate_hz * b2.Hz, name="source")
    target = b2.NeuronGroup(n_post, "v : 1", name="target")
    synapses = b2.Synapses(source, target, "w : 1", on_pre="v_post += w", name="pathway")
    synapses.connect()
    synapses.w = "rand()"
    if templates == "dense":
        use_dense_pathways(synapses)
    spikes = b2.SpikeMonitor(source, name="spikes")
    b2.run(seconds * b2.second, namespace={}, profile=True)
    b2.device.build(directory=str(directory), run=True)
    pathway_s = sum(float(t) for name, t in b2.magic_network.profiling_info if name.startswith("pathway_pre"))
    return 1e9 * pathway_s / (spikes.num_spikes * n_post), target.v[:].copy()


def main(samples: int = typer.Option(3, help="builds run per template (the fastest counts)")) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        potentials = {}
        for templates in ("brian2", "dense"):
            costs = []
            for _ in range(samples):
                cost, potentials[templates] = measure(templates, Path(tmp) / templates)
                costs.append(cost)
            print(f"{templates}: {min(costs):.3f} ns per event (runs: {', '.join(f'{c:.3f}' for c in costs)})")
        print("final potentials equal:", bool(np.array_equal(potentials["brian2"], potentials["dense"])))


if __name__ == "__main__":
    typer.run(main)
