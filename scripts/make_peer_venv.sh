#!/usr/bin/env bash
# The peer environment for the speed table's snnTorch column (runs/peer_snntorch.py, runs/benchmark.py --peer) and
# the NIR export's check in other simulators (scripts/nir_peer_check.py, make test-peer): torch 2.13.0 (CPU build;
# on this project's machines a local file for Python 3.11), snnTorch 1.0, norse 1.1 with nir 1.0 and nirtorch 2.6
# (torchvision 0.28.0, norse's dependency, pinned to torch 2.13: a newer one would bring a newer torch).
# Usage: scripts/make_peer_venv.sh VENV_DIR    (without Python 3.11 it says so and exits 1)
set -euo pipefail
venv=${1:-.venv-peer}
. "$(dirname "$0")/find_python.sh"
if ! python=$(find_python 3.11 "${PYTHON311:-}"); then
  echo "make peer: Python 3.11 not found (pyenv install 3.11, or PYTHON311=/path/to/python3.11)" >&2
  exit 1
fi
[ -x "$venv/bin/python" ] || "$python" -m venv "$venv"
"$venv/bin/python" -m pip install --quiet "torch==2.13.0" "torchvision==0.28.0" "snntorch==1.0.0" "norse==1.1.0" \
  "nir==1.0.8" "nirtorch==2.6" numpy
touch "$venv/.installed"
echo "peer environment ready: $venv ($("$venv/bin/python" --version))"
