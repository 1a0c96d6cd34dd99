#!/usr/bin/env bash
# Build pygenn (GeNN 5.4.0) from a source archive into a wheel, then install it into a virtual environment.
# pygenn is not on PyPI. The wheel is kept (build/genn/), so that a new environment installs it in seconds.
# Usage: scripts/make_genn.sh VENV_DIR [ARCHIVE]
#   ARCHIVE defaults to ../shared/vendor/genn-5.4.0.tar.gz; elsewhere download GeNN 5.4.0's source
#   (https://github.com/genn-team/genn/archive/refs/tags/5.4.0.tar.gz) and pass its path.
# Without CUDA_PATH the build has GeNN's CPU backend only; with CUDA_PATH pointing at a CUDA toolkit
# (cuRAND headers, a driver) it builds the CUDA backend as well.
set -euo pipefail
venv=${1:-.venv}
archive=${2:-../shared/vendor/genn-5.4.0.tar.gz}
out=build/genn
version=5.4.0

if [ ! -x "$venv/bin/python" ]; then
  echo "error: $venv not found: run 'make venv' first" >&2; exit 1
fi
wheel=$(ls "$out"/pygenn-"$version"-*.whl 2>/dev/null | head -n 1 || true)
if [ -z "$wheel" ]; then
  if [ ! -f "$archive" ]; then
    echo "error: GeNN source archive not found: $archive (pass GENN_ARCHIVE=PATH to make genn)" >&2; exit 1
  fi
  mkdir -p "$out/src"
  tar xzf "$archive" -C "$out/src"
  src=$(ls -d "$out"/src/genn-*/ | head -n 1)
  "$venv/bin/python" -m pip install --quiet -e ".[genn]"  # pygenn's build requirements (the genn extra)
  echo "building pygenn $version from $archive (about 15 min on 2 cores)"
  start=$SECONDS
  (cd "$src" && env ${CUDA_PATH:+CUDA_PATH=$CUDA_PATH} "$(realpath "$OLDPWD/$venv")/bin/python" -m pip wheel \
      --no-build-isolation --no-deps --wheel-dir "$(realpath "$OLDPWD/$out")" .)
  echo "pygenn wheel built in $((SECONDS - start)) s"
  rm -rf "$out/src"
  wheel=$(ls "$out"/pygenn-"$version"-*.whl | head -n 1)
fi
"$venv/bin/python" -m pip install --quiet --force-reinstall --no-deps "$wheel"
"$venv/bin/python" -c "import pygenn; print('pygenn', pygenn.__version__ if hasattr(pygenn, '__version__') else '$version', 'ready in $venv')"
