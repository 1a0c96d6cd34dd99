#!/usr/bin/env bash
# Create the project's virtual environment with Python 3.12 and install the project into it.
# Usage: scripts/make_venv.sh VENV_DIR EXTRAS
set -euo pipefail
venv=${1:-.venv}
extras=${2:-dev}

. "$(dirname "$0")/find_python.sh"

if ! python=$(find_python 3.12 "${PYTHON:-}"); then
  cat >&2 <<MSG
error: Python 3.12 not found (brian2 2.10.1, pinned by brian2cuda, needs Python 3.12).
Install it, then rerun make:
  pyenv install 3.12        (or: apt-get install python3.12 python3.12-venv)
or point PYTHON at an interpreter:  make test PYTHON=/path/to/python3.12
MSG
  exit 1
fi

if [ ! -x "$venv/bin/python" ]; then
  echo "creating $venv with $python"
  "$python" -m venv "$venv"
fi
"$venv/bin/python" -m pip install --quiet --upgrade pip
if ! "$venv/bin/python" -m pip install --quiet -e ".[$extras]"; then
  echo "error: installing the project into $venv failed (see pip's message above)." >&2
  echo "Check the network access to PyPI, then rerun make; 'make clean' starts from scratch." >&2
  exit 1
fi
echo "environment ready: $venv ($("$venv/bin/python" --version))"
