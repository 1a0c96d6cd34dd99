"""``biograd export RUN --format netx|nir``: a run's trained inference network for Loihi tools.

Both formats carry the forward path (input spikes -> dense W_1 -> CUBA layer -> ... -> output layer)
on Loihi 1's grid (:mod:`biograd.models.loihi`); a float run is quantised on it (post-training
quantisation, with the statistics written). The input encoder (pixels -> spikes) is not part of
either network: the input layer's spikes are the network's input (the NIR file's metadata describes it).

**netx** (lava-dl's HDF5 layout, read by ``lava.lib.dl.netx.hdf5.Network``): ``layer/<l>`` for each
weight layer, a ``dense`` layer with integer ``weight`` (N_l x N_{l-1}) and a ``CUBA`` neuron
(``iDecay`` = d_u, ``vDecay`` = d_v, ``vThMant``, ``refDelay`` 1). netx's weights are 8-bit values in
the neuron's units without Loihi's 2^6 (u += weight << 6), so a layer with exponent e is written as
its mantissas with ``vThMant`` = v_th_mant / 2^e: the same spikes, exactly, where the state does not
decay (d_u = 4096, d_v = 0: every integer is scaled by 2^e) and no register overflows (the 24-bit
limits do not scale); with decays, an exponent other than 0 is refused. The group ``loihi1/``
(ignored by netx) holds what netx cannot: per layer the mantissa, weightExponent, numWeightBits,
sign mode and quantisation statistics; the compartment structure; the learning rules in NxSDK's
sum-of-products syntax (derived from the equation files' rules; attribute ``tEpoch``: the learning epoch in
steps) with their traces' parameters; and provenance. A rule with no such form at the run's values (the sleep rule
reads sigma_sleep_pre, which no trace holds, where scale_sleep is not 0) is left out, the rest written: the group
``loihi1/learning`` then has the attribute ``<group>.leftOut`` (e.g. ``feedback2.leftOut``) with the reason.
``loihi1/lava/learning/<group>`` holds each rule as lava-nc 0.10's LearningDense parses it and its bit-approximate
engine applies it (:func:`biograd.models.loihi.lava_text`: a dependency per product, u0 for the per-sample rule; 4-bit
scale mantissas, exponents -7..8; attributes ``tEpoch`` and ``scaleError``, the largest relative rounding of a scale),
or the attribute ``<group>.leftOut`` there with the reason where a scale lies outside the engine's range (smallest
2^-7: the default rates of forward1 and of the sleep rule are below it). A trace's tau 0 (no decay) is
NxSDK's reading; Lava 0.10 reads tau 0 as a trace gone after one step: give it a large tau there
(``scripts/lava_learning_check.py``; ``tests/test_lava_learning.py`` runs the text in Lava).

**NIR** (``nir.write``): Input -> (Delay -> Affine -> CubaLIF) per layer -> Output, with the float
equivalents of the integers in threshold units (weights W, v_threshold 1, v_leak 0, v_reset 0) and time
constants in seconds for forward Euler at dt = one Loihi step (graph metadata ``dt``):
tau_syn = dt * 4096/d_u, tau_mem = dt * 4096/d_v, r = tau_mem/dt and w_in = tau_syn/dt, so that
per step, a spike counting 1 in the step it arrives, I <- I (1 - d_u/4096) + W s and then
v <- v (1 - d_v/4096) + I (the new I). Without leak (d_v = 0) tau_mem is NO_LEAK_STEPS = 2^30 steps: a
leak of 2^-30 (about 1e-9) per step, below float32's resolution, where an infinite tau_mem would make
r/tau_mem undefined for a reader; a power of two, so that r and dt/tau_mem are exact in binary floats.
Spikes travel one step per layer, as on Loihi: each ``delay<l>`` node (``nir.Delay``, dt) holds the
spikes into layer l one step. The metadata (:func:`nir_metadata`) also holds ``steps`` (n_f, steps per
sample), ``input_encoding`` (JSON: the encoder element's description, equations, externals and
parameters, e.g. the regular rate code's r_max) and ``readout`` (JSON: output spike counts over steps
[0, n_f) from rest, the class the largest; ``delay_steps`` L = the number of layers). The graph is a
discrete-time network, one reader step per Loihi step; what a reader must do:

* step dt' per Loihi step with tau_syn and tau_mem scaled by dt'/dt (r and w_in are ratios in steps and
  stay). snnTorch 1.0's ``import_from_nir`` fixes dt' = 1e-4 s. norse 1.1's ``from_nir(graph, dt=dt')`` takes
  any: a power of two (e.g. 1: time in steps) makes dt'/tau_syn exactly 1 in binary floats; at dt = 1e-3 s it
  is 1 - 6e-8 in float32, which may tip a potential that lands exactly on the threshold (common on the
  weights' grid);
* join each Delay node's edges (a -> delay -> b becomes a -> b): neither reader has ``nir.Delay`` (nirtorch
  refuses it for snnTorch and, mapping it to nothing, fails for norse). Every layer then acts in the step its
  input arrives, the same output spikes L steps earlier: count them over steps [0, n_f - L) (``readout``'s
  ``steps_without_delays``);
* feed the n_f steps of the input encoding, every sample from rest (I = v = 0, the encoder restarted); the
  class is the largest count, ties to the larger current I of the output layer summed over the same steps.
  ``scripts/nir_peer_check.py`` does all this (``tests/test_nir_peers.py``: both readers give the project's
  output spike counts and classes).

**Where it writes** (:func:`check_out`): the file goes through a temporary file in the same folder and is
renamed when complete (:func:`biograd.rundir.atomic_path`), so a failed export leaves no file and an
existing one as it was. An existing file is replaced only with ``force``. Inside a run directory (any
folder holding ``config.yaml`` and ``versions.json``, and the exported run) the only files an export may
write are ``export.<anything>`` at its top and files in its ``export/`` folder: everything else there is
an input or record of the run (config, contract, checkpoint, epoch weights, equation copy, tables, status),
never overwritten, with or without ``force``.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from pathlib import Path
from typing import Literal

import brian2 as b2
import numpy as np

from biograd.models.composition import Composition
from biograd.models.elements import equations_dir
from biograd.models.errors import ModelFileError
from biograd.models.loihi import LOIHI, LoihiLayer, LoihiRule, learning_rules, loihi_layers, trace_parameters
from biograd.rundir import RunDirectory, atomic_path, is_run_directory

Format = Literal["netx", "nir"]
NO_LEAK_STEPS = 2.0**30  # NIR's tau_mem, in steps, of a compartment without leak (module docstring)
SUFFIX = {"netx": ".net", "nir": ".nir"}


def export_run(run_dir: Path, fmt: Format, out: Path | None = None, force: bool = False,
               note: Callable[[str], None] = lambda line: None) -> Path:
    """Write the run's last checkpoint (its trained weights) as ``fmt`` to ``out`` (checked by
    :func:`check_out`; default ``<run>/export.net`` or ``.nir``); returns the file. ``note`` gets one line per
    learning rule left out of a netx file (:func:`left_out_line`)."""
    run = RunDirectory(run_dir)
    out = out or run.path / f"export{SUFFIX[fmt]}"
    check_out(out, run.path, force)
    config = run.config
    spec = config.model.using(run.build_equations())
    if LOIHI not in spec.composition.table.precisions:  # a run older than the Loihi elements: today's grid
        spec = spec.using(equations_dir())
    state, _ = run.load_checkpoint()
    layers = loihi_layers(spec, state.W)
    config_sha = hashlib.sha256((run.path / "config.yaml").read_bytes()).hexdigest()
    provenance = {"run": run.path.name, "equations": str(spec.equations), "config_sha256": config_sha,
                  "precision": spec.precision, "versions": run.read_json("versions.json")}
    with atomic_path(out) as tmp:
        if fmt == "netx":
            rules = learning_rules(spec, left_out=True) or \
                learning_rules(spec.using(equations_dir()), left_out=True)  # older copies: no ## rule
            write_netx(tmp, layers, rules=rules, traces=trace_parameters(spec), provenance=provenance)
        else:
            rules = {}
            write_nir(tmp, layers, spec.composition, provenance=provenance)
    for group, rule in rules.items():  # once the file is written
        if isinstance(rule, ModelFileError):
            note(left_out_line(group, rule))
    return out


def left_out_line(group: str, err: ModelFileError) -> str:
    """The one line that says a learning rule was left out of a netx file, and why."""
    return f"note: the learning rule of {group} is left out of loihi1/learning (attribute {group}.leftOut): " \
        f"{err.problem}"


def check_out(out: Path, run_dir: Path, force: bool) -> None:
    """Refuse ``out`` (ValueError, FileExistsError, FileNotFoundError, each one line naming it) where an
    export of ``run_dir`` must not write it (see the module docstring: "Where it writes")."""
    target, run = out.resolve(), run_dir.resolve()
    for folder in target.parents:
        if folder == run or is_run_directory(folder):
            inside = target.relative_to(folder).parts
            if inside[0] != "export" and not (len(inside) == 1 and inside[0].startswith("export.")):
                raise ValueError(f"--out {out}: a file of the run directory {folder}, whose inputs and records are "
                                 f"never overwritten; write {folder / 'export.*'}, a file in "
                                 f"{folder / 'export'}/ or one outside it")
    if target.is_dir():
        raise ValueError(f"--out {out} is a folder: give a file to write")
    if not target.parent.is_dir():
        raise FileNotFoundError(f"--out {out}: no such folder {out.parent}")
    if target.exists() and not force:
        raise FileExistsError(f"{out} exists: give --force to replace it")


def netx_layer(layer: LoihiLayer) -> tuple[np.ndarray, int]:
    """netx's integer weights and vThMant for ``layer`` (see the module docstring)."""
    e = layer.weight_exponent
    no_decay = layer.d_u == 4096 and layer.d_v == 0
    if e != 0 and not no_decay:
        raise ValueError(f"netx holds 8-bit weights without an exponent; weight exponent {e} with decays "
                         f"(d_u {layer.d_u}, d_v {layer.d_v}) has no exact equivalent: use --format nir")
    if e >= 0:
        if layer.v_th_mant % 2**e:
            raise ValueError(f"v_th_mant {layer.v_th_mant} is not divisible by 2^{e}: no exact netx equivalent")
        return layer.mantissa.astype(np.int32), layer.v_th_mant // 2**e
    return layer.mantissa.astype(np.int32), layer.v_th_mant * 2**-e


def write_netx(path: Path, layers: list[LoihiLayer], *, rules: dict[str, LoihiRule | ModelFileError], provenance: dict,
               traces: dict[str, dict[str, float]] | None = None) -> None:
    import h5py

    with h5py.File(path, "w") as f:
        chip = f.create_group("loihi1")
        for l, layer in enumerate(layers):
            weight, v_th_mant = netx_layer(layer)
            g = f.create_group(f"layer/{l}")
            g.create_dataset("type", (1,), "S10", [b"dense"])
            g.create_dataset("shape", data=np.array([weight.shape[0]]))
            g.create_dataset("weight", data=weight)
            n = g.create_group("neuron")
            n.create_dataset("type", data="CUBA")
            for key, value in (("iDecay", layer.d_u), ("vDecay", layer.d_v), ("vThMant", v_th_mant),
                               ("refDelay", 1)):
                n.create_dataset(key, data=np.int64(value))
            n.create_dataset("gradedSpike", data=False)
            c = chip.create_group(f"layer/{l}")
            c.create_dataset("weightMantissa", data=layer.mantissa)
            for key, value in (("weightExponent", layer.weight_exponent), ("numWeightBits", layer.num_weight_bits),
                               ("vThMant", layer.v_th_mant), ("iDecay", layer.d_u), ("vDecay", layer.d_v),
                               ("clipped", layer.clipped)):
                c.create_dataset(key, data=np.int64(value))
            c.create_dataset("signMode", data="MIXED")
            c.create_dataset("rmsRounding", data=layer.rms_rounding)
        compartments = chip.create_group("compartments")
        compartments.create_dataset("hidden", data="soma (CUBA, spikes) <- apical (error events, ADD join, no spike)")
        compartments.create_dataset("output", data="soma (CUBA, spikes) <- teacher input")
        learning, lava = chip.create_group("learning"), chip.create_group("lava/learning")
        for name, rule in rules.items():
            if isinstance(rule, ModelFileError):  # no sum of products: the reason where the rule would be
                learning.attrs[f"{name}.leftOut"] = rule.problem
                continue
            learning.create_dataset(name, data=rule.text).attrs["tEpoch"] = rule.epoch  # NxSDK's learning epoch
            if rule.lava:  # the text lava-nc's LearningDense runs (LoihiRule), or why there is none
                lava.create_dataset(name, data=rule.lava).attrs.update({"tEpoch": rule.epoch,
                                                                        "scaleError": rule.lava_error})
            else:
                lava.attrs[f"{name}.leftOut"] = rule.lava_problem
        for name, parameters in (traces or {}).items():
            for key, value in parameters.items():
                learning.create_dataset(f"traces/{name}/{key}", data=value)
        chip.create_dataset("provenance", data=json.dumps(provenance, indent=1))


def nir_metadata(composition: Composition) -> dict[str, float | int | str]:
    """The NIR graph's metadata (module docstring): ``dt`` (s), ``steps`` (n_f), ``input_encoding`` and
    ``readout`` (JSON), every number the composition's (the run's tables with its overrides)."""
    kind = composition.layer_kind(0, inference=True)
    encoder = next(composition.elements[name] for name, listed in
                   zip(composition.element_names(kind), composition.recipe(kind).elements, strict=True)
                   if "{encoder}" in listed)
    n_f, delay = composition.n_f, composition.n_layers
    sections = encoder.eqs.sections.items()
    encoding = {"encoder": composition.encoder, "element": encoder.name, "description": encoder.eqs.header,
                "equations": {" ".join(filter(None, key)): section.code for key, section in sections},
                "external": {name: external.description for name, external in encoder.table.external.items()},
                "parameters": {name: f"{float(q)!r} {'1' if q.is_dimensionless else b2.get_unit(q.dim)}"
                               for name, q in encoder.values.items()}}
    readout = {"node": "output", "statistic": "spike count of each output neuron", "steps": [0, n_f],
               "delay_steps": delay, "steps_without_delays": [0, max(n_f - delay, 0)],
               "class": "argmax of the counts; ties go to the larger input current I summed over the steps",
               "state": "every sample starts from rest (I = v = 0) and the encoder from its slot_start"}
    return {"dt": float(composition.dt), "steps": n_f, "input_encoding": json.dumps(encoding),
            "readout": json.dumps(readout)}


def write_nir(path: Path, layers: list[LoihiLayer], composition: Composition, *, provenance: dict) -> None:
    import nir

    metadata = nir_metadata(composition)
    dt = metadata["dt"]
    nodes = {"input": nir.Input(input_type=np.array([layers[0].mantissa.shape[1]]))}
    edges, previous = [], "input"
    for l, layer in enumerate(layers, start=1):
        n, n_in = layer.mantissa.shape
        tau_syn = dt * 4096 / layer.d_u if layer.d_u else np.inf
        tau_mem = dt * (4096 / layer.d_v if layer.d_v else NO_LEAK_STEPS)
        nodes[f"delay{l}"] = nir.Delay(delay=np.full(n_in, dt))
        nodes[f"affine{l}"] = nir.Affine(weight=layer.weight, bias=np.zeros(n))
        nodes[f"lif{l}"] = nir.CubaLIF(tau_syn=np.full(n, tau_syn), tau_mem=np.full(n, tau_mem),
                                       r=np.full(n, tau_mem / dt), v_leak=np.zeros(n), v_threshold=np.ones(n),
                                       v_reset=np.zeros(n), w_in=np.full(n, tau_syn / dt))
        edges += [(previous, f"delay{l}"), (f"delay{l}", f"affine{l}"), (f"affine{l}", f"lif{l}")]
        previous = f"lif{l}"
    nodes["output"] = nir.Output(output_type=np.array([layers[-1].mantissa.shape[0]]))
    edges.append((previous, "output"))
    graph = nir.NIRGraph(nodes, edges, metadata=metadata | {"provenance": json.dumps(provenance)})
    nir.write(path, graph)
