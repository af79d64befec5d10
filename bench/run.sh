#!/usr/bin/env bash
# witm beside its peers, in one run, with one load generator (oha), the same
# connections and duration, against one local nginx origin:
#   straight to the origin; witm with no plugin; witm with add-header in each
#   plugin language; mitmdump with the same add_header.py; a plain hudsucker
#   proxy adding the same header (bench/hudsucker-proxy), and over TLS the
#   same proxy speaking HTTP/1.1 to the origin ("hudsucker-h1": by default
#   it carries every client's requests over one HTTP/2 connection to the
#   origin, where witm gives each client tunnel its own connection), and
#   over TLS witm with add-header sharing server connections as hudsucker
#   does ("witm-rust-shared": --share-server-connections); over HTTP/1.1,
#   two references asked as the origin: a TCP relay that parses nothing
#   ("relay", bench/tcp-relay: the floor of any proxy that reads and writes
#   each byte) and nginx as a reverse proxy ("nginx-proxy", a C proxy)
# for HTTP/1.1 keep-alive, HTTPS keep-alive, HTTPS with a new connection per
# request, and HTTP/2 over TLS. Prints requests/s, p50, p99 and the proxy's
# peak RSS per row, and writes the table to bench/results/peers.md.
#
#   bench/run.sh [SECONDS]          # default 10 s per row and round
#   WITM_BENCH_ROUNDS=3             # each mode's rows run this many times
#                                   # in turn; a row shows its median round
#   WITM_BENCH_CONNECTIONS=32       # oha's connections (default 32)
#   WITM_BENCH_MODES="http1 https"  # a subset of: http1 https https-new h2
#   WITM_BENCH_BODY=small|big       # 52 bytes (default) or 1 MiB
#   WITM_BENCH_ROWS="direct witm"   # a subset of the rows
#   WITM_BENCH_WITM=/path/to/witm    # that binary for the witm rows, not the
#                                    # target directory's production build
#                                    # (`make production`, which a build from
#                                    # another worktree may overwrite)
#   WITM_BENCH_BASE=/path/to/witm    # adds a row "witm-base": that (older)
#                                    # binary with no plugin, beside this one
#   WITM_BENCH_PROFILE=witm-rust     # also record that row with perf into
#                                    # bench/results/ROW-MODE.perf.data
#   WITM_BENCH_CALLGRAPH=dwarf       # perf's call graphs (default fp: cheap,
#                                    # but Rust's frames have no pointers)
#   WITM_BENCH_WORKERS=1             # the tokio proxies (witm, hudsucker)
#                                    # with that many worker threads (witm's
#                                    # --workers; default one per core)
#
# Installs what it needs the first time: nginx (Debian), oha (crates.io),
# mitmproxy (PyPI, in a private venv), each under ~/.cache/witm/bench.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
seconds=${1:-10}
rounds=${WITM_BENCH_ROUNDS:-3}
[[ "$rounds" =~ ^[1-9][0-9]?$ ]] || { echo "WITM_BENCH_ROUNDS: a number of rounds, 1 to 99" >&2; exit 2; }
[[ "$seconds" =~ ^[1-9][0-9]*$ ]] || { echo "SECONDS: a whole number of seconds per row" >&2; exit 2; }
connections=${WITM_BENCH_CONNECTIONS:-32}
modes=${WITM_BENCH_MODES:-http1 https https-new h2}
body=${WITM_BENCH_BODY:-small}
tools=${WITM_TOOLS:-$HOME/.cache/witm}/bench
oha_version=1.16.0
mitmproxy_version=11.0.2
target=${CARGO_TARGET_DIR:-$root/target}

# --- tools -------------------------------------------------------------
if ! command -v nginx >/dev/null && [ ! -x /usr/sbin/nginx ]; then
  if [ "$(id -u)" -eq 0 ]; then apt-get install -y -qq nginx-light >/dev/null; else sudo apt-get install -y -qq nginx-light >/dev/null; fi
fi
oha=$tools/cargo/bin/oha
if ! "$oha" --version 2>/dev/null | grep -q "$oha_version"; then
  cargo install --quiet --locked "oha@$oha_version" --root "$tools/cargo"
fi
mitmdump=$tools/venv/bin/mitmdump
if ! "$mitmdump" --version 2>/dev/null | grep -q "$mitmproxy_version"; then
  python3 -m venv "$tools/venv"
  "$tools/venv/bin/pip" install --quiet --disable-pip-version-check "mitmproxy==$mitmproxy_version"
fi
echo "building witm, the add-header plugins and the hudsucker proxy..." >&2
# witm as deployed (Cargo.toml's `production` profile: fat LTO, one codegen
# unit), and hudsucker built the same way (its Cargo.toml).
if [ -z "${WITM_BENCH_WITM:-}" ]; then
  (cd "$root" && cargo build --quiet --profile production -p witm)
fi
(cd "$root" && make --quiet examples >/dev/null)
cargo build --quiet --release --manifest-path "$root/bench/hudsucker-proxy/Cargo.toml" \
  --target-dir "$target/bench-hudsucker"
plugins=$target/bench-peers
mkdir -p "$plugins"
# Only the plugins of the rows asked for (each build takes a while).
wanted() { [ -z "${WITM_BENCH_ROWS:-}" ] || [[ " $WITM_BENCH_ROWS " == *" $1 "* ]]; }
if wanted witm-python; then
  "$root/plugins/build-python.sh" "$root/examples/add-header/add_header.py" "$plugins/add_header_py.wasm"
fi
if wanted witm-js; then
  "$root/plugins/build-js.sh" "$root/examples/add-header/add_header.js" "$plugins/add_header_js.wasm"
fi
if wanted witm-go; then
  "$root/plugins/build-go.sh" "$root/examples/add-header/add_header.go" "$plugins/add_header_go.wasm"
fi
witm=${WITM_BENCH_WITM:-$target/production/witm}
hudsucker=$target/bench-hudsucker/release/hudsucker-proxy
rust_plugin=$target/guests/wasm32-wasip2/release/add_header.wasm

# --- the origin: nginx, HTTP and HTTPS (HTTP/2) on loopback ---------------
# shellcheck source=bench/origin.sh
. "$root/bench/origin.sh"
start_origin
http_port=$origin_port
https_port=$origin_tls_port

# --- the proxies -----------------------------------------------------------
proxy_pid=
start_proxy() { # NAME PORT: starts the proxy NAME on PORT
  local name=$1 port=$2
  # hudsucker's tokio runtime reads it; witm takes --workers.
  local env=(env) workers=()
  [ -z "${WITM_BENCH_WORKERS:-}" ] || env+=("TOKIO_WORKER_THREADS=$WITM_BENCH_WORKERS")
  [ -z "${WITM_BENCH_WORKERS:-}" ] || workers=(--workers "$WITM_BENCH_WORKERS")
  case $name in
    direct) proxy_pid= ; return 0 ;;
    relay) start_relay "$port"; proxy_pid=$relay_pid; return 0 ;;
    nginx-proxy) start_nginx_proxy "$port"; proxy_pid= ; return 0 ;;
    witm) "$witm" "${workers[@]}" -q -p "$port" --confdir "$work/witm" --upstream-ca "$work/origin-ca.pem" >"$work/proxy.log" 2>&1 & ;;
    witm-base) "$WITM_BENCH_BASE" "${workers[@]}" -q -p "$port" --confdir "$work/witm" --upstream-ca "$work/origin-ca.pem" \
        >"$work/proxy.log" 2>&1 & ;;
    witm-rust | witm-python | witm-js | witm-go)
      local plugin
      case $name in
        witm-rust) plugin=$rust_plugin ;;
        witm-python) plugin=$plugins/add_header_py.wasm ;;
        witm-js) plugin=$plugins/add_header_js.wasm ;;
        witm-go) plugin=$plugins/add_header_go.wasm ;;
      esac
      "$witm" "${workers[@]}" -q -p "$port" --confdir "$work/witm" --upstream-ca "$work/origin-ca.pem" -s "$plugin" >"$work/proxy.log" 2>&1 & ;;
    witm-rust-shared) "$witm" "${workers[@]}" -q -p "$port" --confdir "$work/witm" --upstream-ca "$work/origin-ca.pem" \
        --share-server-connections -s "$rust_plugin" >"$work/proxy.log" 2>&1 & ;;
    mitmdump) "$mitmdump" -q -p "$port" --set confdir="$work/mitmproxy" \
        --set ssl_verify_upstream_trusted_ca="$work/origin-ca.pem" \
        -s "$root/examples/add-header/add_header.py" >"$work/proxy.log" 2>&1 & ;;
    hudsucker | hudsucker-h1)
      [ "$name" = hudsucker ] || env+=(WITM_HUDSUCKER_UPSTREAM=http1)
      "${env[@]}" "$hudsucker" "$port" "$work/witm/witm-ca-cert.pem" "$work/witm/witm-ca-key.pem" \
        "$work/origin-ca.pem" >"$work/proxy.log" 2>&1 & ;;
  esac
  proxy_pid=$!
  pids+=("$proxy_pid")
  wait_port "$port"
}
stop_proxy() {
  stop_nginx_proxy
  [ -n "$proxy_pid" ] || return 0
  kill "$proxy_pid" 2>/dev/null || true
  wait "$proxy_pid" 2>/dev/null || true
}
rss_mib() { # RSS after the run (peak in brackets)
  [ -n "$proxy_pid" ] || { echo "-"; return; }
  awk '/VmRSS/ { now = $2 } /VmHWM/ { peak = $2 } END { printf "%.0f (%.0f)", now / 1024, peak / 1024 }' \
    "/proc/$proxy_pid/status" 2>/dev/null || echo "?"
}

# witm's CA is made at its first start (hudsucker signs with the same one),
# and each plugin is compiled once into witm's cache, so no row pays for it.
for name in witm witm-rust witm-python witm-js witm-go; do
  wanted "$name" || [ "$name" = witm ] || continue
  start_proxy "$name" "$(free_port)"
  stop_proxy
done

# --- the runs --------------------------------------------------------------
# Each mode's rows run in turn, ROUNDS times over: a slow phase of this
# machine then lands on every row of a round instead of on one row, and
# each row reports its median round.
results=$root/bench/results
mkdir -p "$results"
table=$work/table.md
{
  echo "| mode | setup | requests/s | range over rounds | ratio to direct | ratio to witm | p50 ms | p99 ms | proxy RSS MiB after (peak) |"
  echo "|---|---|---|---|---|---|---|---|---|"
} >"$table"
field() { python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); print(eval(sys.argv[2]))' "$1" "$2"; }
for mode in $modes; do
  case $mode in
    http1) url=http://127.0.0.1:$http_port/$body; extra=() ;;
    https) url=https://localhost:$https_port/$body; extra=(--insecure) ;;
    https-new) url=https://localhost:$https_port/$body; extra=(--insecure --disable-keepalive) ;;
    h2) url=https://localhost:$https_port/$body; extra=(--insecure --http2) ;;
  esac
  rows=(direct)
  [ "$mode" != http1 ] || rows+=(relay nginx-proxy)
  rows+=(witm)
  [ -z "${WITM_BENCH_BASE:-}" ] || rows+=(witm-base)
  rows+=(witm-rust witm-python witm-js witm-go hudsucker)
  # Plain HTTP has no HTTP/2 to the origin: the two hudsucker rows are one,
  # and witm's requests share server connections anyway.
  [ "$mode" = http1 ] || rows+=(hudsucker-h1 witm-rust-shared)
  rows+=(mitmdump)
  [ -z "${WITM_BENCH_ROWS:-}" ] || read -r -a rows <<<"$WITM_BENCH_ROWS"
  runs=$work/runs-$mode.tsv # row, round, requests/s, p50, p99, RSS (or "failed" and why)
  : >"$runs"
  for round in $(seq "$rounds"); do
    # Each round starts one row further on (direct, witm, ... then witm,
    # ..., direct): no row always runs first, or always after the same one.
    shift_by=$(((round - 1) % ${#rows[@]}))
    for name in "${rows[@]:shift_by}" "${rows[@]:0:shift_by}"; do
      port=$(free_port)
      start_proxy "$name" "$port"
      proxy=() to=$url
      case $name in
        direct) ;;
        relay | nginx-proxy) to=http://127.0.0.1:$port/$body ;;
        *) proxy=(-x "http://127.0.0.1:$port") ;;
      esac
      out=$work/oha.json
      profiler=
      if [ "${WITM_BENCH_PROFILE:-}" = "$name" ] && [ -n "$proxy_pid" ] && [ "$round" = 1 ]; then
        perf record -q -F 499 --call-graph "${WITM_BENCH_CALLGRAPH:-fp}" -p "$proxy_pid" -o "$results/$name-$mode.perf.data" \
          -- sleep "$seconds" 2>/dev/null &
        profiler=$!
      fi
      if ! "$oha" --no-tui --output-format json -z "${seconds}s" -c "$connections" "${extra[@]}" "${proxy[@]}" "$to" >"$out" 2>"$work/oha.err"; then
        printf '%s\t%s\tfailed\t%s\n' "$name" "$round" "$(tail -1 "$work/oha.err" | tr '\t' ' ')" >>"$runs"
        stop_proxy
        continue
      fi
      rss=$(rss_mib)
      [ -z "$profiler" ] || wait "$profiler" || true
      stop_proxy
      rps=$(field "$out" 'round(d["summary"]["requestsPerSec"])')
      ok=$(field "$out" 'd["statusCodeDistribution"].get("200", 0)')
      p50=$(field "$out" 'round(d["latencyPercentiles"]["p50"] * 1000, 2)')
      p99=$(field "$out" 'round(d["latencyPercentiles"]["p99"] * 1000, 2)')
      if [ "$ok" -eq 0 ]; then
        # Fast errors are not throughput: a round with no 200 fails.
        codes=$(field "$out" '" ".join(f"{k}x{v}" for k, v in d["statusCodeDistribution"].items()) or "none"')
        printf '%s\t%s\tfailed\tno 200 responses (status codes: %s)\n' "$name" "$round" "$codes" >>"$runs"
        continue
      fi
      printf '%s\t%s\t%s\t%s\t%s\t%s\n' "$name" "$round" "$rps" "$p50" "$p99" "$rss" >>"$runs"
      echo "$mode round $round: $name $rps requests/s, p50 $p50 ms, p99 $p99 ms" >&2
    done
  done
  python3 "$root/bench/rounds.py" "$mode" "$runs" "${rows[@]}" >>"$table"
done
{
  echo "# witm beside its peers"
  echo
  echo "$(date -u +%Y-%m-%d), $(nproc) cores, $(uname -m); oha $oha_version, $connections connections," \
    "${seconds} s per row, $rounds rounds (each row's median), body $body; nginx origin on loopback; mitmproxy $mitmproxy_version."
  echo "Command: \`${WITM_BENCH_WORKERS:+WITM_BENCH_WORKERS=$WITM_BENCH_WORKERS }WITM_BENCH_ROUNDS=$rounds bench/run.sh $seconds\`."
  echo
  cat "$table"
} >"$results/peers.md"
cat "$results/peers.md"
