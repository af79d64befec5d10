#!/usr/bin/env bash
# Builds a Python witm plugin into a WebAssembly component.
#   plugins/build-python.sh PLUGIN.py OUT.wasm   # a mitmproxy-style module (the witm SDK)
#   plugins/build-python.sh APP_DIR OUT.wasm     # APP_DIR/app.py defines WitWorld (the raw world)
#   plugins/build-python.sh --tools              # only install componentize-py
# Installs componentize-py (pinned) into a private venv the first time; the
# build's memory is capped so a runaway build fails instead of starving the
# machine.
set -euo pipefail
[ $# -eq 2 ] || [ "${1:-}" = --tools ] || { echo "usage: $0 PLUGIN.py|APP_DIR OUT.wasm | --tools" >&2; exit 2; }
root=$(cd "$(dirname "$0")/.." && pwd)
out=${2:-}
tools=${WITM_TOOLS:-$HOME/.cache/witm}
venv=$tools/py
version=0.25.1
if ! "$venv/bin/componentize-py" --version 2>/dev/null | grep -q "$version"; then
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet --disable-pip-version-check "componentize-py==$version"
fi
[ "$1" = --tools ] && exit 0
mkdir -p "$(dirname "$out")"
# The entry module componentize-py starts from, in a folder of its own. Its
# first line keeps Python from writing bytecode next to the sources while
# the component is made (componentize-py's interpreter runs in a sandbox that
# does not see PYTHONDONTWRITEBYTECODE): it would be build output.
entry=$(mktemp -d)
trap 'rm -rf "$entry"' EXIT
no_bytecode='import sys; sys.dont_write_bytecode = True'
if [ -f "$1" ]; then
  # A plugin module: the entry exports the world for it.
  case "$1" in *.py) ;; *) echo "$1: a plugin module ends in .py" >&2; exit 2 ;; esac
  plugin_dir=$(cd "$(dirname "$1")" && pwd)
  module=$(basename "$1" .py)
  [[ $module =~ ^[A-Za-z_][A-Za-z0-9_]*$ ]] || { echo "$1: not a Python module name" >&2; exit 2; }
  cat >"$entry/witm_entry.py" <<EOF
$no_bytecode
import witm._world
import $module as _plugin

WitWorld = witm._world.make_world(_plugin)
EOF
  paths=(-p "$entry" -p "$plugin_dir")
else
  # The raw world: the entry is APP_DIR/app.py's names.
  cat >"$entry/witm_entry.py" <<EOF
$no_bytecode
from app import *  # noqa: F401,F403
EOF
  paths=(-p "$entry" -p "$(cd "$1" && pwd)")
fi
# componentize-py runs its own Python interpreter; keep its memory bounded.
( ulimit -v 8000000
  "$venv/bin/componentize-py" -d "$root/wit" -w plugin componentize \
    "${paths[@]}" -p "$root/plugins/python" witm_entry -o "$out" ) >/dev/null
