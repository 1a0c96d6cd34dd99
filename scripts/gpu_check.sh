#!/usr/bin/env bash
# The checks to run on a machine with an NVIDIA GPU, most important first, each under its own time limit
# (about 10 min in all on 16 cores; nvcc takes most of it, about 20 s of one core per generated file).
#
#   1. the cuda equality tests: a training build compiles; the GPU trains like cpp_standalone from
#      weights passed through run_args, and its EventMonitors (record.spikes) record the same events;
#      the error dither is uniform and fresh at every slot start
#   2. the demo config for one epoch in sleep mode on cuda_standalone (no probe build: no probes, no spikes),
#      its validation accuracy must lie
#      within 2 points of cpp_standalone's (REF_DEMO_EPOCH1, measured on the VM, runs/RESULTS.md)
#   3. ensemble throughput: 784-500-10 at K = 1, 64 and 256 replicas in one build, training samples/s
#      in aggregate (runs/benchmark.py; the single-network single-core cpp_standalone figure is in RESULTS)
#   4. GeNN on CUDA: pygenn built with its CUDA backend (make genn with CUDA_PATH; several minutes), the
#      GeNN equality tests on CUDA (BIOGRAD_GENN_BACKEND=cuda), and the same throughput rows on GeNN CUDA
#   Steps 3 and 4 log the board's power (nvidia-smi, every 0.2 s) while they train; runs/gpu_energy.py then
#   gives measured mJ per training sample against the Loihi estimate (LOIHI_UJ, runs/RESULTS.md: "Loihi precision")
#   (GENN=0 skips step 4; GENN_ONLY=1 runs step 4 alone)
#
# Compile ahead where nvcc but no GPU is present (the VM):  make gpu && .venv/bin/python runs/benchmark.py
#   --backend cuda_standalone --sizes 784-500-10 --replicas 64 --no-inference --compile-only
# then carry runs/out/benchmark/build_* along: a build folder reuses every object file whose source is unchanged.
#
# Usage: scripts/gpu_check.sh [OUT]   (default: runs/out/gpu_check_<time>)
# PY selects the interpreter (default .venv/bin/python, after `make gpu`); logs and speed.csv go to OUT.
set -u
out=${1:-runs/out/gpu_check_$(date +%Y%m%d-%H%M%S)}
py=${PY:-.venv/bin/python}
ref=${REF_DEMO_EPOCH1:-0.872}  # the demo's validation accuracy after epoch 1 on cpp_standalone (runs/RESULTS.md, "Caveats")
mkdir -p "$out"
exec > >(tee "$out/gpu_check.log") 2>&1  # no `wait` below: it would wait for tee as well
start=$(date +%s)
step() { echo "[$(($(date +%s) - start)) s] $*"; }
loihi_uj=${LOIHI_UJ:-37.5}  # Loihi estimate per training sample, 784-500-10 (runs/RESULTS.md, "Loihi precision")
with_power() {  # run "$@" while appending (unix seconds, board watts) to $out/power.csv every 0.2 s
  while true; do
    echo "$(date +%s.%N),$(nvidia-smi --query-gpu=power.draw --format=csv,noheader,nounits | head -n 1)"
    sleep 0.2
  done >> "$out/power.csv" &
  local logger=$! status
  "$@"; status=$?
  kill $logger
  return $status
}

nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv
"$py" -c "import brian2, brian2cuda; print('brian2', brian2.__version__, 'brian2cuda', brian2cuda.__version__)" || exit 1

genn_only=${GENN_ONLY:-0}
if [ "$genn_only" != 1 ]; then
step "1. cuda equality tests"
timeout 240 "$py" -m pytest -m cuda tests/test_cuda.py -k "gpu_trains or dither" -p no:cacheprovider -q -rA \
    > "$out/pytest_cuda.log" 2>&1
step "cuda tests: exit $? (log: $out/pytest_cuda.log)"
tail -n 3 "$out/pytest_cuda.log"

step "2. demo on cuda_standalone, 1 epoch, sleep mode (reference: $ref on cpp_standalone)"
timeout 240 "$py" -m biograd.cli train runs/configs/demo.yaml --set train.backend=cuda_standalone \
    --set train.epochs=1 --set record.probe_samples=0 --set record.spikes=null --no-progress > "$out/demo.log" 2>&1
step "demo: exit $? (log: $out/demo.log)"
accuracy=$(grep -o "epoch 1: validation accuracy [0-9.]*" "$out/demo.log" | awk '{print $NF}')
"$py" -c "a = float('${accuracy:-nan}')
print(f'demo epoch 1 validation accuracy {a:.4f} vs $ref on cpp_standalone:',
      'within 2 points' if abs(a - $ref) <= 0.02 else 'NOT within 2 points')"

step "3. ensemble throughput, 784-500-10, K = 1, 64, 256"
with_power timeout 300 "$py" runs/benchmark.py --backend cuda_standalone --sizes 784-500-10 --replicas 1 \
    --replicas 64 --replicas 256 --samples 25600 --chunk 100 --no-inference > "$out/benchmark.log" 2>&1
step "benchmark: exit $? (log: $out/benchmark.log)"
cp runs/out/benchmark/speed.csv "$out/" 2>/dev/null
fi

if [ "${GENN:-1}" = 1 ]; then
  step "4. GeNN CUDA: build pygenn with CUDA (CUDA_PATH=${CUDA_PATH:=/usr/local/cuda})"
  rm -rf build/genn  # the VM's wheel has the CPU backend only
  CUDA_PATH=$CUDA_PATH timeout 480 make genn > "$out/genn_build.log" 2>&1
  step "pygenn build: exit $? (log: $out/genn_build.log)"
  BIOGRAD_GENN_BACKEND=cuda timeout 300 "$py" -m pytest -m genn tests/test_genn.py -k "equals_cpp_standalone" \
      -p no:cacheprovider -q -rA > "$out/pytest_genn.log" 2>&1
  step "GeNN CUDA equality tests: exit $? (log: $out/pytest_genn.log)"
  tail -n 3 "$out/pytest_genn.log"
  with_power timeout 300 "$py" runs/benchmark.py --backend genn --genn-backend cuda --sizes 784-500-10 \
      --replicas 1 --replicas 64 --replicas 256 --samples 25600 --chunk 100 --no-inference \
      > "$out/benchmark_genn.log" 2>&1
  step "GeNN CUDA benchmark: exit $? (log: $out/benchmark_genn.log)"
  cp runs/out/benchmark/speed.csv "$out/" 2>/dev/null
fi
step "energy per training sample (steps 3-4 against the Loihi estimate $loihi_uj uJ)"
"$py" runs/gpu_energy.py "$out/speed.csv" "$out/power.csv" --loihi-uj "$loihi_uj"
step "done"
