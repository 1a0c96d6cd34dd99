"""Starting runs: a config checked (sizes against the data, ensemble, backend tools, units, memory, data) before
its run directories are made."""

from __future__ import annotations

import os
from pathlib import Path

from biograd.config import RunConfig, TrainConfig
from biograd.data.splits import check_fits, load_splits, source_shape
from biograd.models.composition import check_composition_units
from biograd.models.elements import equations_dir
from biograd.models.errors import ModelFileError
from biograd.models.network import estimated_bytes, synapse_count
from biograd.models.spec import NetworkSpec
from biograd.packing import check_no_probes
from biograd.plan import slots_per_chunk
from biograd.rundir import RunDirectory
from biograd.signals import stops_deferred


class TooLargeError(ValueError):
    """The configured network would not fit in this machine's memory."""


class MissingToolError(ValueError):
    """The configured backend needs a tool (compiler, pygenn, nvcc) this machine lacks."""


def start_run(config: RunConfig, equations: Path | None = None, root: Path = Path("runs/out")) -> RunDirectory:
    """A new run directory for ``config`` (equation files copied from ``equations``, default the model's),
    made only once the network fits the data (:func:`check_config`), the data loads (checksums included) and the
    network fits in this machine's memory."""
    return start_runs(config, equations, root)[0]


def start_runs(config: RunConfig, equations: Path | None = None, root: Path = Path("runs/out"),
               made: list[RunDirectory] | None = None, source: Path | None = None) -> list[RunDirectory]:
    """:func:`start_run` for each replica of ``model.replicas``: runs of seeds train.seed, train.seed + 1, ...,
    each an ordinary single-network run (its config.yaml has no replicas), to train in one ensemble build.
    A stop signal waits while a run directory is made; ``made`` (a caller's list, returned) receives each as
    soon as it is whole, so that a caller stopped meanwhile knows them. ``source``: the config's file, which
    names what :func:`check_config` refuses (ModelFileError)."""
    equations = equations or equations_dir()
    try:
        check_config(config)
    except ValueError as err:
        if source is None:
            raise
        raise ModelFileError(source, str(err)) from err
    if missing := config.train.backend_in(root).missing():
        raise MissingToolError(missing)
    spec = config.model.using(equations)
    check_composition_units(spec.composition)
    check_memory(spec, config.train, replicas=spec.replicas)
    splits = load_splits(config.data, spec)
    runs, record = ([] if made is None else made), splits.record()
    for k in range(spec.replicas):
        member = config.model_copy(update={"train": config.train.model_copy(update={"seed": config.train.seed + k})})
        with stops_deferred():
            run = RunDirectory.create(member, equations, root)
            run.check_splits(record)
            runs.append(run)
    return runs


def check_config(config: RunConfig) -> None:
    """What the config alone decides, before any data is read (ValueError naming the key): the network fits
    the data source's shape (:func:`~biograd.data.splits.source_shape`), and an ensemble (``model.replicas``
    > 1) records no probes (they need a build of their own per run), and the spikes recorded come from layers
    the network has."""
    check_fits(config.data.source, source_shape(config.data.source), config.model)
    check_no_probes(config.model.replicas, config.record.probe_samples, f"model.replicas: {config.model.replicas}")
    spikes, sizes = config.record.spikes, list(config.model.sizes)
    if spikes is not None and (outside := [layer for layer in spikes.layers or () if not 0 <= layer < len(sizes)]):
        raise ValueError(f"record.spikes.layers: {outside} not in this network (layers 0-{len(sizes) - 1} of "
                         f"model.sizes {sizes})")


def check_memory(spec: NetworkSpec, train: TrainConfig, total: int | None = None, replicas: int = 1) -> None:
    """Refuse a network (an ensemble of ``replicas``) whose estimated memory
    (:func:`~biograd.models.network.estimated_bytes`, for the training build and the evaluation and probe
    builds) exceeds 80% of this machine's memory."""
    total = total or os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    need = estimated_bytes(spec, slots_per_chunk(spec, train), replicas) + \
        2 * estimated_bytes(spec, train.eval_chunk, replicas)
    if need > 0.8 * total:
        network = f"{replicas} x " * (replicas > 1) + "-".join(map(str, spec.sizes))
        raise TooLargeError(f"the network {network} needs about {need / 2**30:.1f} GiB "
                            f"(training, evaluation and probe builds; {synapse_count(spec):,} synapses in training), "
                            f"more than 80% of this machine's {total / 2**30:.1f} GiB")
