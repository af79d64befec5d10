#!/usr/bin/env bash
# Instructions witm executes per request (valgrind's callgrind), with no
# plugin and with the Rust add-header: a count that does not move with
# this machine's noise, so two builds can be compared on a change too small
# for requests/s to show. What it leaves out: the kernel's work (the
# sockets, ~30 % of a request's CPU) and what an instruction costs (cache
# misses, a big copy's speed).
#
#   bench/instructions.sh BINARY [BINARY_B]
#   WITM_IR_REQUESTS=2000            requests counted (after 300 to warm)
#   WITM_IR_PLUGIN=path/to/add_header.wasm   (default: the built guest)
#   WITM_IR_ARGS="--share-server-connections"   more witm arguments (every run)
#   WITM_IR_KEEP=DIR                 keep the callgrind files there, for
#                                    callgrind_annotate
#   WITM_IR_MODE=http1               or https (HTTP/1.1 in a CONNECT
#                                    tunnel, kept alive), https-new (a new
#                                    connection, tunnel and TLS handshake
#                                    per request) or h2 (HTTP/2 over TLS),
#                                    as bench/ab.sh's modes
#
# One keep-alive client (oha -c 1) through witm to the nginx origin of
# bench/origin.sh. Needs valgrind (installed from Debian if missing) and the
# oha bench/run.sh installs.
set -euo pipefail
binaries=("$@")
[ ${#binaries[@]} -ge 1 ] || { echo "usage: $0 BINARY [BINARY_B]" >&2; exit 2; }
requests=${WITM_IR_REQUESTS:-2000}
root=$(cd "$(dirname "$0")/.." && pwd)
plugin=${WITM_IR_PLUGIN:-${CARGO_TARGET_DIR:-$root/target}/guests/wasm32-wasip2/release/add_header.wasm}
oha=${WITM_TOOLS:-$HOME/.cache/witm}/bench/cargo/bin/oha
[ -x "$oha" ] || { echo "no oha at $oha: run bench/run.sh once" >&2; exit 2; }
[ -f "$plugin" ] || { echo "no plugin at $plugin: make guests" >&2; exit 2; }
if ! command -v valgrind >/dev/null; then
  if [ "$(id -u)" -eq 0 ]; then apt-get install -y -qq valgrind >/dev/null; else sudo apt-get install -y -qq valgrind >/dev/null; fi
fi
# shellcheck source=bench/origin.sh
. "$(dirname "$0")/origin.sh"
start_origin
keep=${WITM_IR_KEEP:-$work}
read -r -a extra <<<"${WITM_IR_ARGS:-}"
case ${WITM_IR_MODE:-http1} in
  http1) url=http://127.0.0.1:$origin_port/small; oha_mode=() ;;
  https) url=https://localhost:$origin_tls_port/small; oha_mode=(--insecure) ;;
  https-new) url=https://localhost:$origin_tls_port/small; oha_mode=(--insecure --disable-keepalive) ;;
  h2) url=https://localhost:$origin_tls_port/small; oha_mode=(--insecure --http2) ;;
  *) echo "WITM_IR_MODE: one of http1 https https-new h2" >&2; exit 2 ;;
esac
mkdir -p "$keep"

count() { # NAME BINARY [witm args] -> instructions per request
  local name=$1 binary=$2 port
  shift 2
  port=$(free_port)
  # glibc copies large blocks with `rep movsb` depending on where they
  # lie, which callgrind counts per byte: always its vector loop instead.
  GLIBC_TUNABLES=glibc.cpu.x86_rep_movsb_threshold=1073741824 \
    valgrind --tool=callgrind --compress-strings=no --compress-pos=no \
    --callgrind-out-file="$keep/callgrind.$name.%p" \
    "$binary" -q -p "$port" --confdir "$work/witm-$name" --upstream-ca "$work/origin-ca.pem" "${extra[@]}" "$@" >"$work/$name.log" 2>&1 &
  local pid=$!
  pids+=("$pid")
  wait_port "$port"
  "$oha" --no-tui -n 300 -c 1 "${oha_mode[@]}" -x "http://127.0.0.1:$port" "$url" >/dev/null
  callgrind_control -z "$pid" >/dev/null 2>&1
  "$oha" --no-tui -n "$requests" -c 1 "${oha_mode[@]}" -x "http://127.0.0.1:$port" "$url" >/dev/null
  callgrind_control -d "$pid" >/dev/null 2>&1
  kill "$pid"
  wait "$pid" 2>/dev/null || true
  local file
  file=$(ls -t "$keep/callgrind.$name."*.1 | head -1)
  local total
  total=$(sed -n 's/^summary: //p' "$file")
  echo $((total / requests))
}

declare -A ir
for i in "${!binaries[@]}"; do
  ir[$i,none]=$(count "b$i-none" "${binaries[$i]}")
  ir[$i,plugin]=$(count "b$i-plugin" "${binaries[$i]}" -s "$plugin")
done
echo "| binary | no plugin, instructions/request | add-header | add-header / no plugin |"
echo "|---|---|---|---|"
for i in "${!binaries[@]}"; do
  echo "| ${binaries[$i]} | ${ir[$i,none]} | ${ir[$i,plugin]} | $(python3 -c "print(f'{${ir[$i,plugin]}/${ir[$i,none]}:.3f}')") |"
done
if [ ${#binaries[@]} -ge 2 ]; then
  echo "B / A: no plugin $(python3 -c "print(f'{${ir[1,none]}/${ir[0,none]}:.3f}')")," \
    "add-header $(python3 -c "print(f'{${ir[1,plugin]}/${ir[0,plugin]}:.3f}')")"
fi
