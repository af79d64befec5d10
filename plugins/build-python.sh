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
paths=()
if [ -f "$1" ]; then
  # A plugin module: an entry module that exports the world for it.
  case "$1" in *.py) ;; *) echo "$1: a plugin module ends in .py" >&2; exit 2 ;; esac
  plugin_dir=$(cd "$(dirname "$1")" && pwd)
  module=$(basename "$1" .py)
  [[ $module =~ ^[A-Za-z_][A-Za-z0-9_]*$ ]] || { echo "$1: not a Python module name" >&2; exit 2; }
  entry=$(mktemp -d)
  trap 'rm -rf "$entry"' EXIT
  cat >"$entry/witm_entry.py" <<EOF
import witm._world
import $module as _plugin

WitWorld = witm._world.make_world(_plugin)
EOF
  paths=(-p "$entry" -p "$plugin_dir")
  app=witm_entry
else
  paths=(-p "$(cd "$1" && pwd)")
  app=app
fi
# componentize-py runs its own Python interpreter; keep its memory bounded.
# Python writes no bytecode next to the sources (it would be build output).
( ulimit -v 8000000
  PYTHONDONTWRITEBYTECODE=1 "$venv/bin/componentize-py" -d "$root/wit" -w plugin componentize \
    "${paths[@]}" -p "$root/plugins/python" "$app" -o "$out" ) >/dev/null
