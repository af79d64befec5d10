#!/usr/bin/env bash
# Builds a Python witm plugin into a WebAssembly component.
#   plugins/build-python.sh APP_DIR OUT.wasm
# APP_DIR holds app.py, whose class WitWorld implements the witm:plugin world.
# Installs componentize-py (pinned) into a private venv the first time.
set -euo pipefail
[ $# -eq 2 ] || { echo "usage: $0 APP_DIR OUT.wasm" >&2; exit 2; }
app_dir=$(cd "$1" && pwd)
out=$2
root=$(cd "$(dirname "$0")/.." && pwd)
tools=${WITM_TOOLS:-$HOME/.cache/witm}
venv=$tools/py
version=0.25.1
if ! "$venv/bin/componentize-py" --version 2>/dev/null | grep -q "$version"; then
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet --disable-pip-version-check "componentize-py==$version"
fi
mkdir -p "$(dirname "$out")"
# componentize-py runs its own Python interpreter; keep its memory bounded.
( ulimit -v 8000000
  "$venv/bin/componentize-py" -d "$root/wit" -w plugin componentize \
    -p "$app_dir" -p "$root/plugins/python" app -o "$out" ) >/dev/null
