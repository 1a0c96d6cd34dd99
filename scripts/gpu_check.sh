#!/usr/bin/env bash
# The first checks to run on a machine with an NVIDIA GPU, most important first. Not yet run on a GPU:
# expect 15-20 min on 16 cores, most of it nvcc (about 20 s of one core per generated file).
#
#   1. the cuda tests (make test-cuda): a training build compiles; the GPU trains like
#      cpp_standalone from weights passed through run_args; the error dither is uniform and fresh
#   2. the demo config on cuda_standalone for one epoch (the VM's cpp_standalone: 88.4%,
#      runs/out/20261130-203121_demo_a4e11548)
#   3. training and inference speed of 784-500-10 and 784-500-500-10 (runs/benchmark.py)
#
# Usage: scripts/gpu_check.sh [OUT]   (default: runs/out/gpu_check_<time>)
# PY selects the interpreter (default .venv/bin/python, after `make gpu`). Each step has a time
# limit, so one hanging step does not take the others' time; logs and speed.csv go to OUT.
set -u
out=${1:-runs/out/gpu_check_$(date +%Y%m%d-%H%M%S)}
py=${PY:-.venv/bin/python}
mkdir -p "$out"
exec > >(tee "$out/gpu_check.log") 2>&1  # no `wait` below: it would wait for tee as well
start=$(date +%s)
step() { echo "[$(($(date +%s) - start)) s] $*"; }

nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv
"$py" -c "import brian2, brian2cuda; print('brian2', brian2.__version__, 'brian2cuda', brian2cuda.__version__)" || exit 1

step "1. cuda tests"
timeout 900 "$py" -m pytest -m cuda tests/test_cuda.py -p no:cacheprovider -q -rA > "$out/pytest_cuda.log" 2>&1
step "cuda tests: exit $? (log: $out/pytest_cuda.log)"

step "2. demo on cuda_standalone, 1 epoch"
timeout 900 "$py" -m biograd.cli train runs/configs/demo.yaml --set train.backend=cuda_standalone \
    --set train.epochs=1 --set record.probe_samples=0 --no-progress > "$out/demo.log" 2>&1
step "demo: exit $? (log: $out/demo.log)"
grep -i "accuracy\|run directory\|Error reading" "$out/demo.log" | tail -n 5

step "3. speed"
timeout 900 "$py" runs/benchmark.py --backend cuda_standalone --sizes 784-500-10 --sizes 784-500-500-10 \
    --samples 1000 > "$out/benchmark.log" 2>&1
step "benchmark: exit $? (log: $out/benchmark.log)"
cp runs/out/benchmark/speed.csv "$out/" 2>/dev/null
step "done"
