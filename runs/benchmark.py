"""Training and inference speed on a standalone backend, 1 process, compile time excluded; ensembles of K networks.

    python runs/benchmark.py                       # 784-100-10, 784-500-10, 784-500-500-10
    python runs/benchmark.py --sizes 784-500-10 --samples 5000
    python runs/benchmark.py --sizes 784-500-10 --replicas 1 --replicas 8 --replicas 64   # ensembles
    python runs/benchmark.py --sizes 784-500-10 --templates dense --templates brian2   # project's or Brian2's templates
    python runs/benchmark.py --sizes 784-500-10 --peer   # and snnTorch BPTT in the same run (make peer)
    python runs/benchmark.py --backend cuda_standalone   # on a GPU (make gpu)
    python runs/benchmark.py --backend cuda_standalone --compile-only   # nvcc, no GPU needed
    python runs/benchmark.py --backend genn --genn-backend single_threaded_cpu   # GeNN 5 (make genn); cuda on a GPU
    python runs/benchmark.py --sizes 784-500-10 --profile   # and the share of time per code-object kind
    python runs/benchmark.py --sizes 784-500-10 --perf --no-inference   # the same shares, sampled by perf
    python runs/benchmark.py --sizes 784-500-10 --threads 2   # OpenMP threads in one run (cpp_standalone)

``--compile-only`` builds the training and inference projects and stops (no speeds): a later run
in the same folder reuses every object file whose generated source is unchanged (Brian2 rewrites
only changed files; make compares times), e.g. on a GPU machine after compiling on a login node.

Each network trains embedded MNIST digits with the mnist configs' schedule (sleep mode, a 500-step
sleep block per feedback layer every 100 samples: forward + error phases + sleep all counted) and
then predicts 1,000 digits with the inference-only build. An ensemble of K replicas (one build, K
networks side by side, seeds 0..K-1, each with its own sample order) trains ``--samples`` samples in
all, at least one chunk (``--chunk`` samples) per replica; its speeds are aggregates (samples/s summed
over the replicas) and ``speedup`` is the ratio to the single network (K = 1) of the same size and
backend in the same run. Memory: the peak resident size of the Python process and of the compiled
binary (measured with /usr/bin/time where present). Every measurement runs in a process of its own
(one standalone build per process). ``record_activity_share`` is the time ``record.activity`` adds per
chunk, as a fraction of the training time. ``--templates brian2`` uses Brian2's own
templates instead of the project's (the default: dense pathways, :mod:`biograd.models.dense_pathways`; gated
thresholds, :mod:`biograd.models.thresholds`).
``--peer`` measures snnTorch BPTT (minibatch 128, as many threads as ``--threads``; ``runs/peer_snntorch.py``, in the
``.venv-peer`` environment of ``make peer``) right after each single-network (K = 1) measurement of the
same network, and ``vs_snntorch`` is BioGrad's training samples/s over snnTorch's. ``--backend genn``
translates the same Brian2 network to GeNN 5 (``--genn-backend``: single_threaded_cpu or cuda); its rows
name the backend ``genn_<genn backend>`` and leave the binary's memory empty (GeNN runs in the process).
``--threads N`` runs cpp_standalone with N OpenMP threads (one run on N cores). ``--profile`` builds with
Brian2's code-object timers (a little slower) and adds, for the last training chunk, the share of the
timed time per kind of code object (:data:`CODE_OBJECT_KINDS`: ``share_<kind>``) and ``ns_per_event``,
the propagation pathways' time per synaptic event. ``--perf`` samples the compiled binary with Linux
perf instead (nothing added to the generated code): ``perf_<kind>``, each kind's share of the binary's
samples over the whole measurement (with inference, its build's runs too: use ``--no-inference``), and
``perf_outside``, the samples in no code object (the network loop, reading and writing arrays, and the
kernel: page faults of growing monitors, which the timers count in the monitor). Results: runs/out/benchmark/speed.csv.
"""

from __future__ import annotations

import json
import platform
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Annotated

import pandas as pd
import typer

OUT = Path("runs/out/benchmark")
DEFAULT_SIZES = ["784-100-10", "784-500-10", "784-500-500-10"]
CODE_OBJECT_KINDS = {  # kind -> pattern of Brian2's code-object names (the first that matches counts)
    "propagation": r"forward\d+_pre_codeobject", "learning": r"_pre_learn_codeobject",
    "error_events": r"_pre_err_(pos|neg)_codeobject", "sleep_rule": r"_pre_sleep_spike_codeobject",
    "relay": r"_post_", "spike_queue": r"_push_spikes", "state_update": r"_stateupdater",
    "thresholds": r"_thresholder", "resets": r"_resetter", "monitors": r"_slots_codeobject|_times_codeobject",
    "slot_start": r"_slot_start", "other": r".",
}


def measure(sizes: str, samples: int, feedback: str, backend: str, replicas: int = 1, chunk: int = 1000,
            compile_only: bool = False, inference: bool = True, templates: str = "dense",
            genn_backend: str = "single_threaded_cpu", threads: int = 1, profile: bool = False) -> dict:
    """Train and infer in this process; returns one row of speeds (compile times only with ``compile_only``)."""
    import dataclasses

    import numpy as np

    from biograd.analysis.activity import activity_rows
    from biograd.chunks import Evaluator, run_tasks
    from biograd.config import TrainConfig
    from biograd.data.embedded import load_embedded_mnist
    from biograd.data.splits import Split
    from biograd.models.spec import NetworkSpec
    from biograd.plan import build, plan_tasks, sleep_slots

    digits = load_embedded_mnist()
    data = Split(digits.images, digits.labels, "embedded")
    spec = NetworkSpec(sizes=tuple(int(n) for n in sizes.split("-")), feedback=feedback)
    per_replica = max(chunk, -(-samples // replicas))
    train = TrainConfig(sleep_every=100, sleep_duration="500 ms", chunk=chunk, epochs=-(-per_replica // len(data)),
                        backend=backend, templates=templates, genn_backend=genn_backend if backend == "genn" else None)
    seeds = list(range(replicas))
    label = f"genn_{genn_backend}" if backend == "genn" else backend
    name = f"{sizes}_{feedback}_{label}" + (f"_x{replicas}" if replicas > 1 else "") + f"_{templates}" \
        + (f"_t{threads}" if threads > 1 else "") + ("_profiled" if profile else "")
    training_backend = dataclasses.replace(train.backend_in(OUT / f"build_{name}"), threads=threads, profile=profile)
    training_backend.activate()
    binary_rss = (OUT / f"build_{name}_rss.txt").resolve()
    binary_rss.unlink(missing_ok=True)
    if shutil.which("time", path="/usr/bin"):  # the binary's own peak (a fork of this process would count ours)
        import brian2 as b2
        b2.prefs.devices.cpp_standalone.run_cmd_unix = ["/usr/bin/time", "-a", "-o", str(binary_rss), "-f", "%M",
                                                        "./main"]
    net = build(spec, train, seeds=seeds, backend=training_backend)
    t0 = time.perf_counter()
    net.compile()
    compile_s = time.perf_counter() - t0

    def compile_evaluator() -> tuple[Evaluator, float]:
        """The inference-only build (replaces the training build on this process's device), and its compile time."""
        inference_backend = dataclasses.replace(train.backend_in(OUT / f"build_{name}_inference"), threads=threads)
        inference_backend.activate()
        t0 = time.perf_counter()
        evaluator = Evaluator(spec, {"first 1000": Split(data.inputs[:1000], data.labels[:1000], "first 1000")},
                              1000, seeds, None, inference_backend)
        return evaluator, time.perf_counter() - t0

    row = {"sizes": sizes, "feedback": feedback, "backend": label, "replicas": replicas, "chunk": chunk,
           "templates": templates, "threads": threads}
    if compile_only:
        return row | {"compile_s": compile_s, "inference_compile_s": compile_evaluator()[1]}
    plans = [[t for t in plan_tasks(spec, train.model_copy(update={"seed": seed}), len(data)) if t.kind == "train"]
             for seed in seeds]
    done, record_s, t0, started = 0, 0.0, time.perf_counter(), time.time()
    for tasks in zip(*plans, strict=True):
        runs = run_tasks(net, list(tasks), data, train)
        t1 = time.perf_counter()
        for run in runs:
            activity_rows(run.result, run.kinds, spec, sleep_slots(spec, train))  # what record.activity adds per chunk
        record_s += time.perf_counter() - t1
        done += sum(len(task.samples) for task in tasks)
        if done >= samples and done >= replicas * chunk:
            break
    train_s = time.perf_counter() - t0 - record_s
    trained = row | {"train_samples": done, "train_samples_per_s": done / train_s, "compile_s": compile_s,
                     "record_activity_share": record_s / train_s,
                     "train_start_unix": started, "train_end_unix": time.time()}  # for a power log (runs/gpu_energy.py)
    if profile:
        trained |= code_object_shares(net.network.profiling_info, runs[0].result, spec.sizes)
    if not inference:
        return trained | _peak_mib(binary_rss)
    evaluator, inference_compile_s = compile_evaluator()
    t0 = time.perf_counter()
    predicted = evaluator.predict_replicas(net.states, "first 1000")
    infer_s = time.perf_counter() - t0
    return trained | {"inference_samples_per_s": replicas * 1000 / infer_s, "inference_compile_s": inference_compile_s,
                      "train_accuracy_first_1000_after": float(np.mean([np.mean(p == data.labels[:1000])
                                                                       for p in predicted]))} | _peak_mib(binary_rss)


def code_object_kind(name: str) -> str:
    """The kind of the code object ``name`` (:data:`CODE_OBJECT_KINDS`: the first pattern that matches)."""
    import re

    return next(kind for kind, pattern in CODE_OBJECT_KINDS.items() if re.search(pattern, name))


def code_object_shares(profiling_info: list[tuple[str, float]], result, sizes: tuple[int, ...]) -> dict:
    """Share of the timed time per code-object kind (``share_<kind>``), the timed seconds, and the propagation
    pathways' ns per synaptic event: their time over the spikes of each layer (every phase, from a chunk's
    ``result``) times its fan-out, sum_l n_spikes(l) * sizes[l + 1]."""
    seconds = {kind: 0.0 for kind in CODE_OBJECT_KINDS}
    for name, t in profiling_info:
        seconds[code_object_kind(name)] += float(t)
    total = sum(seconds.values())
    return {f"share_{kind}": s / total for kind, s in seconds.items()} | {
        "profiled_s": total, "ns_per_event": 1e9 * seconds["propagation"]
        / sum(result.spikes[layer].sum() * sizes[layer + 1] for layer in range(len(sizes) - 1))}


def _run(options: list[str], perf: bool = False) -> dict:
    """One measurement in a process of its own (one standalone build per process); with ``perf``, sampled."""
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp) / "perf.data"
        sampler = ["perf", "record", "--quiet", "-F", "2000", "-o", str(data), "--"] if perf else []
        child = subprocess.run([*sampler, sys.executable, __file__, "--one", *options], capture_output=True, text=True)
        if child.returncode:
            sys.exit(f"{' '.join(options)} failed (exit {child.returncode}):\n{child.stderr[-4000:]}")
        row = json.loads(child.stdout.strip().splitlines()[-1])
        return row | (perf_shares(data) if perf else {})


def perf_shares(data: Path) -> dict:
    """``perf_<kind>``: each code-object kind's share of the compiled binary's samples in perf's ``data``
    (symbols ``_run_<code object>``); ``perf_outside``: the binary's samples in no code object."""
    import re

    report = subprocess.run(["perf", "report", "-i", str(data), "--comm", "main", "--sort", "sym", "--stdio",
                             "--percentage", "relative"], capture_output=True, text=True, check=True).stdout
    shares = dict.fromkeys([*CODE_OBJECT_KINDS, "outside"], 0.0)
    for percent, symbol in re.findall(r"^\s*([\d.]+)%\s+\[.\]\s+(\S+)", report, flags=re.MULTILINE):
        name = symbol.removeprefix("_run_") if symbol.startswith("_run_") else None
        kind = "outside" if name is None or not name.endswith(("_codeobject", "_push_spikes")) else \
            code_object_kind(name)
        shares[kind] += float(percent) / 100
    return {f"perf_{kind}": share for kind, share in shares.items()}


def _peer(python: Path, sizes: str, threads: int) -> float:
    """snnTorch BPTT training samples/s for ``sizes`` on ``threads`` threads (runs/peer_snntorch.py in the peer
    environment)."""
    if not python.exists():
        sys.exit(f"--peer: {python} not found (make peer creates it)")
    child = subprocess.run([str(python), str(Path(__file__).with_name("peer_snntorch.py")), "--sizes", sizes,
                            "--threads", str(threads)],
                           capture_output=True, text=True)
    if child.returncode:
        sys.exit(f"snnTorch {sizes} failed (exit {child.returncode}):\n{child.stderr[-4000:]}")
    row = json.loads(child.stdout.strip().splitlines()[-1])
    print(f"snnTorch {sizes}, batch {row['batch']}, T = {row['steps']}, {threads} thread(s): "
          f"{row['train_samples_per_s']:.0f} samples/s",
          flush=True)
    return row["train_samples_per_s"]


def _peak_mib(binary_rss: Path) -> dict:
    """Peak resident memory of this process and of the compiled binary (its runs so far), in MiB."""
    binary_kib = [int(line) for line in binary_rss.read_text().split()] if binary_rss.exists() else [float("nan")]
    return {"peak_python_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
            "peak_binary_mib": max(binary_kib) / 1024}


def main(
    sizes: Annotated[list[str] | None, typer.Option(help="network, e.g. 784-500-10 (repeatable)")] = None,
    samples: Annotated[int, typer.Option(help="training samples per measurement (all replicas together)")] = 3000,
    replicas: Annotated[list[int] | None, typer.Option(help="networks per build, K (repeatable; default 1)")] = None,
    chunk: Annotated[int, typer.Option(help="training samples per run of the compiled network")] = 1000,
    feedback: Annotated[str, typer.Option(help="transpose | fixed_random | sleep")] = "sleep",
    backend: Annotated[str, typer.Option(help="cpp_standalone | cuda_standalone | genn")] = "cpp_standalone",
    genn_backend: Annotated[str, typer.Option(help="GeNN backend: single_threaded_cpu | cuda")] = "single_threaded_cpu",
    compile_only: Annotated[bool, typer.Option(help="build the projects, measure nothing")] = False,
    inference: Annotated[bool, typer.Option(help="also measure the inference-only build")] = True,
    templates: Annotated[list[str] | None, typer.Option(
        help="dense | brian2: the project's templates or Brian2's (repeatable)")] = None,
    peer: Annotated[bool, typer.Option(help="measure snnTorch BPTT after each measurement (make peer)")] = False,
    peer_python: Annotated[Path, typer.Option(help="the peer environment's Python")] = Path(".venv-peer/bin/python"),
    threads: Annotated[int, typer.Option(help="OpenMP threads of one run (cpp_standalone)")] = 1,
    profile: Annotated[bool, typer.Option(help="time each code object; shares per kind")] = False,
    perf: Annotated[bool, typer.Option(help="sample the binary with Linux perf; shares per kind")] = False,
    one: Annotated[bool, typer.Option(hidden=True)] = False,
) -> None:
    replicas, templates = replicas or [1], templates or ["dense"]
    if unknown := set(templates) - {"dense", "brian2"}:
        raise typer.BadParameter(f"--templates: dense or brian2, not {', '.join(sorted(unknown))}")
    if one:
        print(json.dumps(measure(sizes[0], samples, feedback, backend, replicas[0], chunk, compile_only, inference,
                                 templates[0], genn_backend, threads, profile)))
        return
    if perf and not shutil.which("perf"):
        raise typer.BadParameter("--perf: the perf tool is not on PATH (Linux perf, linux-tools)")
    OUT.mkdir(parents=True, exist_ok=True)
    machine = f"{platform.node()} ({platform.processor() or 'cpu'})"
    rows = []
    for net in sizes or DEFAULT_SIZES:
        for k in replicas:
            for kind in templates:
                rows.append(_run(["--sizes", net, "--samples", str(samples), "--replicas", str(k),
                                  "--chunk", str(chunk), "--feedback", feedback, "--backend", backend,
                                  "--templates", kind, "--genn-backend", genn_backend, "--threads", str(threads)]
                                 + ["--profile"] * profile
                                 + ["--compile-only"] * compile_only + ["--no-inference"] * (not inference),
                                 perf=perf and not compile_only)
                | {"machine": machine})
                print(pd.DataFrame(rows[-1:]).to_string(index=False), flush=True)
                if peer and not compile_only and k == 1:  # one network against one network
                    rows[-1]["snntorch_samples_per_s"] = _peer(peer_python, net, threads)
                    rows[-1]["vs_snntorch"] = rows[-1]["train_samples_per_s"] / rows[-1]["snntorch_samples_per_s"]
    if compile_only:
        return
    table = pd.DataFrame(rows)
    keys = ["sizes", "templates", "backend"]
    single = {tuple(k): v for *k, v in table[table.replicas == 1][[*keys, "train_samples_per_s"]].values}
    table["speedup"] = table.train_samples_per_s / [single.get(tuple(key), float("nan"))  # NaN where K = 1 not measured
                                                    for key in table[keys].values]
    path = OUT / "speed.csv"  # earlier rows kept (columns added later are empty in them)
    (pd.concat([pd.read_csv(path), table]) if path.exists() else table).to_csv(path, index=False)
    print(f"\n{table.to_string(index=False)}\nappended to {path}")


if __name__ == "__main__":
    typer.run(main)
