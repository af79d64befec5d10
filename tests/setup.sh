#!/usr/bin/env bash
# Installs what the tests need on a fresh Debian machine: the wasm32-wasip2
# target, and the real clients the end-to-end tests drive (curl, headless
# Chromium, NSS's certutil), and the plugin toolchains (componentize-py,
# the JavaScript tools, Go and wit-bindgen) into ~/.cache/witm. The Python
# clients (grpcio, requests) install themselves on first use.
set -euo pipefail

rustup target list --installed | grep -qx wasm32-wasip2 || rustup target add wasm32-wasip2

need=()
command -v curl >/dev/null || need+=(curl)
command -v chromium >/dev/null || need+=(chromium)
command -v certutil >/dev/null || need+=(libnss3-tools)
if [ ${#need[@]} -gt 0 ]; then
  if [ "$(id -u)" -eq 0 ]; then
    apt=(apt-get)
  elif sudo -n true 2>/dev/null; then
    apt=(sudo apt-get)
  else
    echo "the tests need: ${need[*]} — install them with: sudo apt-get install ${need[*]}" >&2
    exit 1
  fi
  export DEBIAN_FRONTEND=noninteractive
  "${apt[@]}" install -y -qq "${need[@]}" >/dev/null \
    || { "${apt[@]}" update -qq && "${apt[@]}" install -y -qq "${need[@]}" >/dev/null; }
fi

# The plugin toolchains the tests build guests with, pinned, into
# ~/.cache/witm (once; Go's wit-bindgen takes a few minutes the first time).
root=$(cd "$(dirname "$0")/.." && pwd)
"$root/plugins/build-python.sh" --tools
"$root/plugins/build-js.sh" --tools
"$root/plugins/build-go.sh" --tools
