#!/usr/bin/env bash
# Builds {{name}}.wasm from plugin.go with the witm checkout's build script
# (Go and wit-bindgen, installed into ~/.cache/witm the first time).
set -euo pipefail
cd "$(dirname "$0")"
sdk={{sdk_sh}}
"$sdk/plugins/build-go.sh" plugin.go {{name}}.wasm
