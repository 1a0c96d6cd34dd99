"""Shared test helpers: tiny network specs and the slot codes of the model's composition file."""

from __future__ import annotations

import brian2 as b2
import numpy as np

from biograd.models.elements import compose, load_element
from biograd.models.schedule import sleep_block
from biograd.models.spec import NetworkSpec

CODES = NetworkSpec(sizes=(2, 2, 2)).composition  # the slot codes of equations/network.yaml
TRAIN, INFER = CODES.slot_train, CODES.slot_infer


def tiny_spec(sizes=(6, 5, 4), feedback: str = "sleep", *, network: dict | None = None, **params) -> NetworkSpec:
    """A small network; ``network`` overrides network.yaml, ``params`` an element's table by name."""
    overrides = ({"network": network} if network else {}) | params
    return NetworkSpec(sizes=tuple(sizes), feedback=feedback, params=overrides)


def block(spec: NetworkSpec, slots_per_layer: int) -> np.ndarray:
    """One sleep block of ``spec`` (``slots_per_layer`` slots per feedback layer)."""
    return sleep_block(spec.composition, slots_per_layer)


def one_hot(labels: np.ndarray, n_out: int) -> np.ndarray:
    """Teacher input rows: 1 for the label's output neuron (teacher.yaml scales it by y_high)."""
    targets = np.zeros((len(labels), n_out))
    targets[np.arange(len(labels)), labels] = 1.0
    return targets


def y_high(spec: NetworkSpec) -> float:
    return float(spec.composition.elements["teacher"].values["y_high"])


N_F, N_E = 8, 3
N_SLOT = N_F + 2 * N_E  # as for a network with two weight layers


def make_group(names, n, *, declared="", overrides=None, slot_kinds=(1, 1), err_phase=1, layer=1, threshold=None):
    """A NeuronGroup composed from element files, with the schedule constants provided (``threshold``: the
    group's own, instead of its elements')."""
    elements = [load_element(name) for name in names]
    for el in elements:
        for key, value in (overrides or {}).get(el.name, {}).items():
            el.values[key] = value
    codes = {k: v for k, v in CODES.constants().items() if k.startswith("slot_") or k == "v_th_mant"}
    provided = codes | {"n_slot": N_SLOT, "n_f": N_F, "n_e": N_E, "layer": layer, "err_phase": err_phase,
                "slot_kind": b2.TimedArray(np.asarray(slot_kinds, float), dt=N_SLOT * b2.ms)}
    spec = compose(elements, provided, declared={d.split(":")[0].strip() for d in declared.splitlines() if d})
    kwargs = spec.neuron_kwargs() | {"model": spec.equations + b2.Equations(declared)}
    if threshold:
        kwargs["threshold"] = threshold
    group = b2.NeuronGroup(n, **kwargs, name="g")
    for event, code in spec.on_event.items():
        group.run_on_event(event, code)
    objects = [group]
    if spec.slot_start:
        objects.append(group.run_regularly(spec.slot_start, dt=N_SLOT * b2.ms, when="start"))
    for name, value in spec.initial_values.items():
        setattr(group, name, value)
    if "gain_error" in group.variables:  # set per layer by network.yaml in a network; here 1 unless a test sets it
        group.gain_error = 1.0
    return group, objects


def executed_notebook_cells(notebook, runs: list, workdir) -> list:
    """Run a jupytext notebook with BIOGRAD_RUNS = ``runs`` in ``workdir``; assert that no cell failed, that every
    code cell shows something and every plt.show() cell an image; return the code cells (with their outputs)."""
    import os

    import pytest

    from biograd.runs import RUNS_VARIABLE

    jupytext = pytest.importorskip("jupytext", reason="the notebooks extra: pip install -e '.[notebooks]'")
    NotebookClient = pytest.importorskip("nbclient").NotebookClient
    mp = pytest.MonkeyPatch()
    mp.setenv(RUNS_VARIABLE, os.pathsep.join(str(run) for run in runs))
    try:
        nb = jupytext.read(notebook)
        NotebookClient(nb, timeout=300, kernel_name="python3", resources={"metadata": {"path": str(workdir)}}).execute()
    finally:
        mp.undo()
    cells = [cell for cell in nb.cells if cell.cell_type == "code"]
    assert not [o for cell in cells for o in cell.outputs if o.output_type == "error"]
    for cell in cells:
        assert cell.outputs, f"shows nothing:\n{cell.source}"
        if "plt.show()" in cell.source:
            assert any("image/png" in o.get("data", {}) for o in cell.outputs), f"no figure:\n{cell.source}"
    return cells


class SlowBuild:
    """A stand-in for a worker's build that compiles: a child process that runs ``seconds`` (as make does), its
    pid written to ``pidfile`` as it starts. A worker (biograd.workers) serves it; calls find no method."""

    def __init__(self, pidfile: str, seconds: float, backend):
        import subprocess
        from pathlib import Path

        child = subprocess.Popen(["sleep", str(seconds)])
        Path(pidfile).write_text(str(child.pid))
        child.wait()


def process_alive(pid: int) -> bool:
    """Whether process ``pid`` runs (Linux /proc: exists and is not a zombie)."""
    from pathlib import Path

    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def handles_sigterm(pid: int) -> bool:
    """Whether the process has installed its SIGTERM handler (Linux /proc: SigCgt), i.e. biograd is loading."""
    import signal
    from pathlib import Path

    try:
        status = Path(f"/proc/{pid}/status").read_text().splitlines()
        caught = next(line for line in status if line.startswith("SigCgt"))
    except (OSError, StopIteration):
        return False
    return bool(int(caught.split()[1], 16) & (1 << (signal.SIGTERM - 1)))


def untrained_run(root, params: str = "{}"):
    """A 64-12-10 sleep run on sklearn digits (backend numpy) with a checkpoint of seeded random weights, made
    without training; ``params``: its model.params as YAML. Returns the RunDirectory."""
    from biograd.config import load_config
    from biograd.launch import start_run
    from biograd.models.network import PlasticState
    from biograd.rundir import Progress

    config = root / "c.yaml"
    config.write_text(f"name: c\nmodel: {{sizes: [64, 12, 10], feedback: sleep, params: {params}}}\ndata: {{source: "
                      "sklearn, n_train: 40, n_test: 20, validation: 0}\ntrain: {backend: numpy}\n")
    run = start_run(load_config(config), root=root / "out")
    rng = np.random.default_rng(0)
    state = PlasticState(W=[0.05 * rng.standard_normal((12, 64)), 0.05 * rng.standard_normal((10, 12))],
                         B={2: 0.05 * rng.standard_normal((12, 10))}, bias={1: np.zeros(12), 2: np.zeros(10)})
    run.save_checkpoint(state, Progress())
    return run, state
