"""Training and inference speed on a standalone backend, 1 process, compile time excluded.

    python runs/benchmark.py                       # 784-100-10, 784-500-10, 784-500-500-10
    python runs/benchmark.py --sizes 784-500-10 --samples 5000
    python runs/benchmark.py --backend cuda_standalone   # on a GPU (make gpu)
    python runs/benchmark.py --backend cuda_standalone --compile-only   # nvcc, no GPU needed

``--compile-only`` builds the training and inference projects and stops (no speeds): a later run
in the same folder reuses every object file whose generated source is unchanged (Brian2 rewrites
only changed files; make compares times), e.g. on a GPU machine after compiling on a login node.

Each network trains ``--samples`` embedded MNIST digits with the mnist configs' schedule (sleep
mode, a 500-step sleep block per feedback layer every 100 samples: forward + error phases + sleep
all counted) and then predicts 1,000 digits with the inference-only build. Every network runs in
a process of its own (one standalone build per process). ``record_activity_share`` is the time
``record.activity`` adds per chunk, as a fraction of the training time. Results:
runs/out/benchmark/speed.csv.
"""

from __future__ import annotations

import json
import platform
import subprocess
import sys
import time
from pathlib import Path
from typing import Annotated

import pandas as pd
import typer

OUT = Path("runs/out/benchmark")
DEFAULT_SIZES = ["784-100-10", "784-500-10", "784-500-500-10"]


def measure(sizes: str, samples: int, feedback: str, backend: str, compile_only: bool = False) -> dict:
    """Train and infer in this process; returns one row of speeds (compile times only with ``compile_only``)."""
    import numpy as np

    from biograd.analysis.activity import activity_rows
    from biograd.chunks import run_task
    from biograd.config import TrainConfig
    from biograd.data.embedded import load_embedded_mnist
    from biograd.data.splits import Split
    from biograd.models.runners import use_backend
    from biograd.models.spec import NetworkSpec
    from biograd.plan import build, plan_tasks
    from biograd.trainer import Evaluator

    digits = load_embedded_mnist()
    data = Split(digits.images, digits.labels, "embedded")
    spec = NetworkSpec(sizes=tuple(int(n) for n in sizes.split("-")), feedback=feedback)
    train = TrainConfig(sleep_every=100, sleep_duration="500 ms", epochs=max(1, -(-samples // len(data))))
    use_backend(backend, OUT / f"build_{sizes}_{feedback}_{backend}")
    net = build(spec, train)
    t0 = time.perf_counter()
    net.compile()
    compile_s = time.perf_counter() - t0

    def compile_evaluator() -> tuple[Evaluator, float]:
        """The inference-only build (replaces the training build on this process's device), and its compile time."""
        use_backend(backend, OUT / f"build_{sizes}_{feedback}_{backend}_inference")
        t0 = time.perf_counter()
        evaluator = Evaluator(spec, Split(data.inputs[:1000], data.labels[:1000], "first 1000"), 1000, 0, None)
        return evaluator, time.perf_counter() - t0

    if compile_only:
        return {"sizes": sizes, "feedback": feedback, "backend": backend, "compile_s": compile_s,
                "inference_compile_s": compile_evaluator()[1]}
    steps = [s for s in plan_tasks(spec, train, len(data)) if s.kind == "train"]
    done, record_s, t0 = 0, 0.0, time.perf_counter()
    for step in steps:
        run = run_task(net, step, data, train)
        t1 = time.perf_counter()
        activity_rows(run.result, run.kinds, spec, train.sleep_slots(spec))  # what record.activity adds per chunk
        record_s += time.perf_counter() - t1
        done += len(step.samples)
        if done >= samples:
            break
    train_s = time.perf_counter() - t0 - record_s
    evaluator, inference_compile_s = compile_evaluator()
    t0 = time.perf_counter()
    predicted = evaluator.predict(net.state)
    infer_s = time.perf_counter() - t0
    return {"sizes": sizes, "feedback": feedback, "backend": backend, "train_samples": done,
            "train_samples_per_s": done / train_s,
            "inference_samples_per_s": 1000 / infer_s, "compile_s": compile_s,
            "inference_compile_s": inference_compile_s,
            "record_activity_share": record_s / train_s,
            "train_accuracy_first_1000_after": float(np.mean(predicted == data.labels[:1000]))}


def main(
    sizes: Annotated[list[str] | None, typer.Option(help="network, e.g. 784-500-10 (repeatable)")] = None,
    samples: Annotated[int, typer.Option(help="training samples per network")] = 3000,
    feedback: Annotated[str, typer.Option(help="transpose | fixed_random | sleep")] = "sleep",
    backend: Annotated[str, typer.Option(help="cpp_standalone | cuda_standalone")] = "cpp_standalone",
    compile_only: Annotated[bool, typer.Option(help="build the projects, measure nothing")] = False,
    one: Annotated[bool, typer.Option(hidden=True)] = False,
) -> None:
    if one:
        print(json.dumps(measure(sizes[0], samples, feedback, backend, compile_only)))
        return
    OUT.mkdir(parents=True, exist_ok=True)
    rows = []
    for net in sizes or DEFAULT_SIZES:
        child = subprocess.run([sys.executable, __file__, "--one", "--sizes", net, "--samples", str(samples),
                                "--feedback", feedback, "--backend", backend] + ["--compile-only"] * compile_only,
                               capture_output=True, text=True)
        if child.returncode:
            sys.exit(f"{net} on {backend} failed (exit {child.returncode}):\n{child.stderr[-4000:]}")
        rows.append(json.loads(child.stdout.strip().splitlines()[-1]) | {"machine": f"{platform.node()} "
                                                                          f"({platform.processor() or 'cpu'})"})
        print(pd.DataFrame(rows[-1:]).to_string(index=False), flush=True)
    if compile_only:
        return
    table = pd.DataFrame(rows)
    path = OUT / "speed.csv"  # earlier rows kept (columns added later are empty in them)
    (pd.concat([pd.read_csv(path), table]) if path.exists() else table).to_csv(path, index=False)
    print(f"\n{table.to_string(index=False)}\nappended to {path}")


if __name__ == "__main__":
    typer.run(main)
