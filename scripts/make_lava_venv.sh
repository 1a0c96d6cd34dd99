#!/usr/bin/env bash
# The Lava environment for the netx cross-check (tests/test_loihi_export.py): lava-nc 0.10 and lava-dl 0.6
# declare Requires-Python >=3.10,<3.11, so they get their own Python 3.10 environment.
# Usage: scripts/make_lava_venv.sh VENV_DIR    (without Python 3.10 it says so and exits 0: the check stays skipped)
set -euo pipefail
venv=${1:-.venv-lava}
. "$(dirname "$0")/find_python.sh"
if ! python=$(find_python 3.10 "${PYTHON310:-}"); then
  echo "make lava: Python 3.10 not found (pyenv install 3.10, or PYTHON310=/path/to/python3.10); the Lava check stays skipped"
  exit 0
fi
[ -x "$venv/bin/python" ] || "$python" -m venv "$venv"
"$venv/bin/python" -m pip install --quiet "lava-nc==0.10.0" "lava-dl==0.6.0"
touch "$venv/.installed"
echo "Lava environment ready: $venv ($("$venv/bin/python" --version))"
