#!/usr/bin/env bash
# Two witm binaries side by side (HTTP/1.1 keep-alive unless told), in alternating
# rounds against one local nginx origin (oha, 32 connections): the median
# requests/s of each and the median of the per-round ratios B/A. Rounds
# alternate so that the drift of a noisy machine falls on both alike.
#
#   bench/ab.sh A_BINARY B_BINARY [ROUNDS] [SECONDS]   # default 6 rounds of 4 s
#       B may be bench/hudsucker-proxy's binary (bench/run.sh builds it): it
#       signs with A's CA and gets no WITM_AB_ARGS (it adds the header itself);
#       or B may be "direct": oha straight to the origin, no proxy (the
#       ceiling, for "witm ≥ 0.5 × direct"); or, over HTTP/1.1, "relay": a
#       TCP relay that parses nothing (bench/tcp-relay: the floor any proxy
#       that touches each byte stands on) or "nginx-proxy": nginx as a
#       reverse proxy (a C proxy), each asked as the origin
#   WITM_AB_ARGS="-s path/to/plugin.wasm"              # extra witm arguments (both);
#       then also what each says of the plugin as it stops (its calls,
#       time in it, time flows waited for an instance)
#   WITM_AB_ARGS_B="-s path/to/plugin.wasm"            # extra arguments for B alone:
#       with A and B the same binary, a plugin against none, or
#       "--workers 1" against the default
#   WITM_AB_MODE=https                                 # http1 (default), https (keep-alive
#       through witm's interception), https-new (a new connection per request) or
#       h2 (HTTP/2 over TLS): bench/run.sh's modes
#   WITM_AB_REQUESTS=100000                            # then also: witm's CPU
#       time per request (perf stat's task-clock, user and kernel) over that
#       many requests, each binary twice; it moves less with the noise than
#       requests/s (this VM has no hardware counters)
#
# Uses the tools bench/run.sh installed (nginx, oha under ~/.cache/witm/bench).
set -euo pipefail
a=$1 b=$2 rounds=${3:-6} seconds=${4:-4}
tools=${WITM_TOOLS:-$HOME/.cache/witm}/bench
oha=$tools/cargo/bin/oha
# shellcheck source=bench/origin.sh
. "$(dirname "$0")/origin.sh"
start_origin
case ${WITM_AB_MODE:-http1} in
  http1) url=http://127.0.0.1:$origin_port/small; oha_mode=() ;;
  https) url=https://localhost:$origin_tls_port/small; oha_mode=(--insecure) ;;
  https-new) url=https://localhost:$origin_tls_port/small; oha_mode=(--insecure --disable-keepalive) ;;
  h2) url=https://localhost:$origin_tls_port/small; oha_mode=(--insecure --http2) ;;
  *) echo "WITM_AB_MODE: one of http1 https https-new h2" >&2; exit 2 ;;
esac
read -r -a extra <<<"${WITM_AB_ARGS:-}"
read -r -a extra_b <<<"${WITM_AB_ARGS_B:-}"
start() { # BINARY PORT [CA_DIR] [ARGS...]
  local binary=$1 port=$2 ca=${3:-}
  shift $(($# < 3 ? $# : 3))
  if [ "$(basename "$binary")" = hudsucker-proxy ]; then
    "$binary" "$port" "$ca/witm-ca-cert.pem" "$ca/witm-ca-key.pem" "$work/origin-ca.pem" >"$work/witm-$port.log" 2>&1 &
  else
    "$binary" -q -p "$port" --confdir "$work/witm-$port" --upstream-ca "$work/origin-ca.pem" "${extra[@]}" "$@" \
      >"$work/witm-$port.log" 2>&1 &
  fi
  pids+=("$!")
  wait_port "$port"
}
pa=$(free_port); start "$a" "$pa"
# B's own address, for the references asked as the origin (no proxy).
b_url=
case $b in
  direct) pb=direct; b_url=$url ;;
  relay | nginx-proxy)
    [ "${WITM_AB_MODE:-http1}" = http1 ] || { echo "B=$b: HTTP/1.1 only" >&2; exit 2; }
    pb=$b
    if [ "$b" = relay ]; then
      relay_port=$(free_port)
      start_relay "$relay_port"
      b_url=http://127.0.0.1:$relay_port/small
    else
      start_nginx_proxy
      b_url=http://127.0.0.1:$nginx_proxy_port/small
    fi ;;
esac
if [ -z "$b_url" ]; then
  pb=$(free_port); start "$b" "$pb" "$work/witm-$pa" "${extra_b[@]}"
fi
run() { # PORT (or B when it is no witm) -> req/s
  local via=(-x "http://127.0.0.1:$1") to=$url
  [ "$1" != "$pb" ] || [ -z "$b_url" ] || { via=(); to=$b_url; }
  "$oha" --no-tui --output-format json -z "${seconds}s" -c 32 "${oha_mode[@]}" "${via[@]}" \
    "$to" | python3 -c '
import json, sys
d = json.load(sys.stdin)
codes = d["statusCodeDistribution"]
if set(codes) != {"200"}:
    # Fast errors are not throughput: a round with more than 1 % fails.
    line = f"{sys.argv[1]}: not every response was 200: {codes}"
    if codes.get("200", 0) < 0.99 * sum(codes.values()):
        sys.exit(line)
    print(line, file=sys.stderr)
print(round(d["summary"]["requestsPerSec"]))' "$([ "$1" = "$pa" ] && echo A || echo B)"
}
run "$pa" >/dev/null; run "$pb" >/dev/null # warm both
ra=() rb=()
for i in $(seq 1 "$rounds"); do
  if [ $((i % 2)) -eq 1 ]; then x=$(run "$pa"); y=$(run "$pb"); else y=$(run "$pb"); x=$(run "$pa"); fi
  ra+=("$x"); rb+=("$y")
  echo "round $i: A $x  B $y  B/A $(python3 -c "print(f'{$y/$x:.3f}')")" >&2
done
if [ -n "${WITM_AB_REQUESTS:-}" ]; then
  count() { # PID PORT -> CPU µs per request
    perf stat -x, -e task-clock -p "$1" -o "$work/stat" &
    local stat=$!
    sleep 0.5
    "$oha" --no-tui --output-format json -n "$WITM_AB_REQUESTS" -c 32 "${oha_mode[@]}" -x "http://127.0.0.1:$2" \
      "$url" >/dev/null
    kill -INT "$stat"; wait "$stat" || true
    python3 - "$work/stat" "$WITM_AB_REQUESTS" <<'PY'
import sys
n = int(sys.argv[2])
ms = [float(l.split(",")[0]) for l in open(sys.argv[1]) if l[:1].isdigit()]
print(f"{ms[0] * 1000 / n:.2f}")
PY
  }
  ca=() cb=()
  for _ in 1 2; do
    ca+=("$(count "${pids[0]}" "$pa")")
    [ -n "$b_url" ] || cb+=("$(count "${pids[1]}" "$pb")")
  done
  echo "CPU µs per request: A ${ca[*]}, B ${cb[*]}"
fi
python3 - "${ra[*]}" "${rb[*]}" <<'PY'
import statistics, sys
a = [int(x) for x in sys.argv[1].split()]
b = [int(x) for x in sys.argv[2].split()]
ratios = [y / x for x, y in zip(a, b)]
print(f"A median {statistics.median(a):.0f} req/s, B median {statistics.median(b):.0f} req/s, "
      f"B/A median of rounds {statistics.median(ratios):.3f} (min {min(ratios):.3f}, max {max(ratios):.3f})")
PY
# With a plugin: what each witm says of it as it stops (calls, time in the
# plugin, time flows waited for an instance).
for pid in "${pids[@]}"; do
  kill -INT "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
done
for name in A B; do
  [ "$name" = A ] || [ -z "$b_url" ] || continue
  port=$pa; [ "$name" = B ] && port=$pb
  sed -n "s/^.*INFO \(\[[^]]*\] [0-9]* calls\)/$name: \1/p" "$work/witm-$port.log"
done
