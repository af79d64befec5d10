#!/usr/bin/env bash
# Builds a JavaScript witm plugin into a WebAssembly component.
#   plugins/build-js.sh PLUGIN.js OUT.wasm
#   plugins/build-js.sh --tools            # only install the tools
# PLUGIN.js exports the events it wants (see plugins/js/witm.js); it may
# import "witm" (the SDK) and modules next to it. Installs the pinned tools
# of plugins/js/package.json into ~/.cache/witm/js the first time; each
# build step's memory is capped.
set -euo pipefail
[ $# -eq 2 ] || [ "${1:-}" = --tools ] || { echo "usage: $0 PLUGIN.js OUT.wasm | --tools" >&2; exit 2; }
root=$(cd "$(dirname "$0")/.." && pwd)
. "$root/plugins/capped.sh"
. "$root/plugins/js-tools.sh"
js_tools
tools=$js_tools
[ "$1" = --tools ] && exit 0
plugin=$(cd "$(dirname "$1")" && pwd)/$(basename "$1")
[ -f "$plugin" ] || { echo "$1: no such file" >&2; exit 2; }
mkdir -p "$(dirname "$2")"
out=$(cd "$(dirname "$2")" && pwd)/$(basename "$2")
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
exports=(start clientConnect request response error clientDisconnect done httpConnect
  tlsClienthello requestHeaders responseHeaders websocketMessage serverConnect serverDisconnect
  tick)
{
  echo "import * as plugin from '$plugin';"
  echo "import { makeWorld } from '$root/plugins/js/witm.js';"
  echo "const world = makeWorld(plugin);"
  for name in "${exports[@]}"; do echo "export const $name = world.$name;"; done
} >"$work/entry.js"
# One file for componentize-js: the plugin, the SDK, and what they import;
# the host's interfaces (witm:plugin/...) stay imports.
capped 2000 "$tools/node_modules/.bin/esbuild" "$work/entry.js" --bundle --format=esm \
  --platform=neutral --log-level=warning "--alias:witm=$root/plugins/js/witm.js" \
  '--external:witm:*' "--outfile=$work/bundle.js"
capped 6000 node "$tools/componentize.mjs" "$work/bundle.js" "$root/wit" "$out"
# The raw WIT's typings for editors, beside the SDK's (plugins/js/types/,
# not tracked): once per change of the WIT.
types=$root/plugins/js/types
if [ ! -f "$types/plugin.d.ts" ] || [ "$root/wit/plugin.wit" -nt "$types/plugin.d.ts" ]; then
  (cd "$tools" && capped 2000 node --import ./preopens.mjs node_modules/@bytecodealliance/jco/dist/jco.js \
    guest-types "$root/wit" -n plugin -o "$types" >/dev/null)
fi
