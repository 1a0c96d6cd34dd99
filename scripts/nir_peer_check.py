"""Run a NIR export (``biograd export RUN --format nir``) in snnTorch 1.0 and norse 1.1, as a reader would.

Runs in the peer environment (``make peer``: Python 3.11, torch, snnTorch 1.0, norse 1.1, nir, nirtorch), not in
the project's: ``tests/test_nir_peers.py`` calls it and compares its output with the project's own inference.

    python scripts/nir_peer_check.py NET.nir PIXELS.npz OUT.npz

PIXELS.npz holds ``pixels`` (samples x inputs, intensities in [0, 1]). What this script does is what the export's
docstring (biograd/export.py) tells a reader to do, from the graph and its metadata alone:

* encode the pixels with the metadata's ``input_encoding`` (the regular rate code: a phase that starts at the
  slot_start value, grows by p * r_max * dt per step, and spikes, losing 1, each step it is >= 1) over ``steps``;
* join each ``nir.Delay`` node's edges (neither reader has the node) and count output spikes over the readout's
  ``steps_without_delays``, the class the largest count, ties to the larger summed output-layer current;
* scale tau_syn and tau_mem to the reader's step: snnTorch's ``import_from_nir`` fixes it (SNNTORCH_DT), norse's
  ``from_nir`` takes it (NORSE_DT).

OUT.npz holds ``input`` (encoded spikes, steps x samples x inputs), per reader (``snntorch``, ``norse``) the output
spike counts (samples x outputs) and ``<reader>_classes``, and ``<reader>_delays``: the error the reader gives for
the graph with its Delay nodes left in ("" if none).
"""

from __future__ import annotations

import contextlib
import io
import json
import re
import sys
import warnings

import nir
import numpy as np
import torch

SNNTORCH_DT = 1e-4  # snntorch.import_nir's step (s), fixed in snnTorch 1.0
NORSE_DT = 1.0  # norse's step (s): a power of two, so that dt/tau_syn is exactly 1 (time in steps)


def encode(pixels: np.ndarray, metadata: dict) -> np.ndarray:
    """The metadata's input encoding of ``pixels``: spikes (steps x samples x inputs), 0 or 1."""
    encoding = json.loads(metadata["input_encoding"])
    if encoding["encoder"] != "regular":
        raise SystemExit(f"this check encodes the regular rate code only, not {encoding['encoder']!r}")
    r_max = float(encoding["parameters"]["r_max"].split()[0])  # Hz
    start = float(re.fullmatch(r"\s*c_input\s*=\s*(\S+)\s*", encoding["equations"]["slot_start"]).group(1))
    dt, steps = float(metadata["dt"]), int(metadata["steps"])
    phase = np.full(pixels.shape, start)
    spikes = np.zeros((steps, *pixels.shape))
    for k in range(steps):
        phase = phase + dt * pixels * r_max  # Brian2's forward Euler of dc/dt = forward*p*r_max
        spikes[k] = phase >= 1
        phase = phase - spikes[k]
    return spikes


def without_delays(graph: nir.NIRGraph) -> nir.NIRGraph:
    """``graph`` with each Delay node taken out and its edges joined (a -> delay -> b becomes a -> b)."""
    delays = {name for name, node in graph.nodes.items() if isinstance(node, nir.Delay)}
    edges = [(a, b) for a, b in graph.edges if a not in delays and b not in delays]
    edges += [(a, c) for a, b in graph.edges if b in delays for d, c in graph.edges if d == b]
    nodes = {name: node for name, node in graph.nodes.items() if name not in delays}
    return nir.NIRGraph(nodes, edges, metadata=graph.metadata)


def at_step(graph: nir.NIRGraph, dt: float, reader_dt: float) -> nir.NIRGraph:
    """``graph`` for a reader stepping ``reader_dt`` seconds: tau_syn and tau_mem scaled by reader_dt / dt."""
    scale, nodes = reader_dt / dt, dict(graph.nodes)
    for name, node in graph.nodes.items():
        if isinstance(node, nir.CubaLIF):
            nodes[name] = nir.CubaLIF(tau_syn=node.tau_syn * scale, tau_mem=node.tau_mem * scale, r=node.r,
                                      v_leak=node.v_leak, v_threshold=node.v_threshold, v_reset=node.v_reset,
                                      w_in=node.w_in)
    return nir.NIRGraph(nodes, list(graph.edges), metadata=graph.metadata)


def counts_and_classes(module, spikes: np.ndarray, window: list[int], current) -> tuple[np.ndarray, np.ndarray]:
    """Output spike counts of ``module`` (nirtorch's: called with input and state, returns output and state) per
    sample over the steps ``window`` = [first, end) of ``spikes``, and the classes: the largest count, ties to the
    larger output-layer current ``current(module, state)`` summed over the same steps."""
    total, summed, state = 0, 0, None
    with torch.no_grad():
        for k, x in enumerate(torch.as_tensor(spikes, dtype=torch.float32)):
            out, state = module(x, state)
            if window[0] <= k < window[1]:
                total, summed = total + out, summed + current(module, state)
    total, summed = np.asarray(total), np.asarray(summed)
    return total, np.lexsort((summed.T, total.T), axis=0)[-1]


def snntorch_module(graph: nir.NIRGraph):
    from snntorch.import_nir import import_from_nir

    with contextlib.redirect_stdout(io.StringIO()):  # it prints a line per graph
        return import_from_nir(graph)


def refusal(load) -> str:
    """The error ``load()`` raises, as one line ("" if none)."""
    try:
        load()
    except Exception as err:  # noqa: BLE001 - the error is the result
        return f"{type(err).__name__}: {err}"
    return ""


def main(net_path: str, pixels_path: str, out_path: str) -> None:
    from norse.torch import from_nir

    warnings.filterwarnings("ignore", category=DeprecationWarning)  # nirtorch.load, which norse 1.1 calls
    graph = nir.read(net_path)
    metadata, dt = graph.metadata, float(graph.metadata["dt"])
    readout = json.loads(metadata["readout"])
    spikes = encode(np.load(pixels_path)["pixels"].astype(np.float64), metadata)
    plain, window = without_delays(graph), readout["steps_without_delays"]
    last = next(a for a, b in plain.edges if b == readout["node"])  # the output layer's CubaLIF
    norse = from_nir(at_step(plain, dt, NORSE_DT), dt=NORSE_DT)
    snntorch = snntorch_module(at_step(plain, dt, SNNTORCH_DT))  # init_hidden: a fresh module starts at rest
    currents = {"norse": lambda m, state: state.state[last][0][0].v,  # nirtorch keeps ((synapse, neuron),)
                "snntorch": lambda m, state: m.get_submodule(last).syn}  # init_hidden: the module holds it
    result = {"input": spikes}
    for name, module in (("norse", norse), ("snntorch", snntorch)):
        result[name], result[f"{name}_classes"] = counts_and_classes(module, spikes, window, currents[name])
    result["norse_delays"] = refusal(lambda: from_nir(graph, dt=dt))
    result["snntorch_delays"] = refusal(lambda: snntorch_module(at_step(graph, dt, SNNTORCH_DT)))
    np.savez(out_path, **result)


if __name__ == "__main__":
    main(*sys.argv[1:4])
