#!/usr/bin/env bash
# Builds {{name}}.wasm from plugin.py with the witm checkout's build script
# (componentize-py, installed into ~/.cache/witm the first time).
set -euo pipefail
cd "$(dirname "$0")"
sdk={{sdk_sh}}
"$sdk/plugins/build-python.sh" plugin.py {{name}}.wasm
