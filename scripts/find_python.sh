# Sourced by the make_*venv.sh scripts: find_python X.Y [PREFERRED] prints a working Python X.Y interpreter
# (PREFERRED first, then pythonX.Y on PATH, pyenv's versions, /usr/local, /usr); returns 1 if none works.
find_python() {
  local want=$1 preferred=${2:-} major minor candidate exe version
  major=${want%.*}; minor=${want#*.}
  for candidate in "$preferred" "python$want" "$HOME/.pyenv/versions/"$want*/bin/python$want \
                   "/usr/local/bin/python$want" "/usr/bin/python$want"; do
    [ -n "$candidate" ] || continue
    for exe in $candidate; do
      if command -v "$exe" >/dev/null 2>&1 &&
         "$exe" -c "import sys; assert sys.version_info[:2] == ($major, $minor)" 2>/dev/null; then
        command -v "$exe"; return 0
      fi
    done
  done
  if command -v pyenv >/dev/null 2>&1; then
    version=$(pyenv versions --bare 2>/dev/null | grep -E "^${major}\.${minor}(\.|$)" | tail -n1 || true)
    if [ -n "$version" ]; then echo "$(pyenv root)/versions/$version/bin/python$want"; return 0; fi
  fi
  return 1
}
