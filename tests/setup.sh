#!/usr/bin/env bash
# Installs what the tests need on a fresh Debian machine: the wasm32-wasip2
# target, and the real clients the end-to-end tests drive (curl, headless
# Chromium, NSS's certutil). The Python tools (componentize-py, requests)
# install themselves into ~/.cache/witm on first use.
set -euo pipefail

rustup target list --installed | grep -qx wasm32-wasip2 || rustup target add wasm32-wasip2

need=()
command -v curl >/dev/null || need+=(curl)
command -v chromium >/dev/null || need+=(chromium)
command -v certutil >/dev/null || need+=(libnss3-tools)
[ ${#need[@]} -eq 0 ] && exit 0

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
