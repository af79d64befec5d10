#!/usr/bin/env bash
# Builds {{name}}.wasm from src/lib.rs: cargo, for the wasm32-wasip2 target
# (added with rustup if it is missing).
set -euo pipefail
cd "$(dirname "$0")"
if command -v rustup >/dev/null && ! rustup target list --installed | grep -qx wasm32-wasip2; then
  rustup target add wasm32-wasip2
fi
cargo build --quiet --release --target wasm32-wasip2
target=$(cargo metadata --format-version 1 --no-deps | sed -n 's/.*"target_directory":"\([^"]*\)".*/\1/p')
cp "$target/wasm32-wasip2/release/{{crate}}.wasm" {{name}}.wasm
