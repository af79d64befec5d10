#!/usr/bin/env bash
# Builds {{name}}.wasm from plugin.js with the witm checkout's build script
# (esbuild, componentize-js and jco, installed into ~/.cache/witm the first time).
set -euo pipefail
cd "$(dirname "$0")"
sdk={{sdk_sh}}
"$sdk/plugins/build-js.sh" plugin.js {{name}}.wasm
