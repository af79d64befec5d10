#!/usr/bin/env bash
# Fuzzes each of witm's parsers for SECONDS (default 60) with libFuzzer
# (cargo-fuzz, nightly), seeded from the fixtures and the regressions found
# before; prints the executions per target and fails on a crash, whose
# input is left in fuzz/artifacts/TARGET/ (copy it to fuzz/regressions/TARGET/
# and fix it: regressions run first every time).
#   fuzz/run.sh 10        # what CI runs
#   fuzz/run.sh 600       # a longer run
set -euo pipefail
cd "$(dirname "$0")"
seconds=${1:-60}
targets=(flow_file mitmproxy har filter client_bytes config)
command -v cargo-fuzz >/dev/null || cargo install cargo-fuzz --locked --version 0.13.2
rustup toolchain list | grep -q '^nightly' || rustup toolchain install nightly --profile minimal
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$PWD/target}/fuzz

# Seeds: the fixtures other tools wrote, and files witm writes in its tests.
mkdir -p corpus
seed() {
    local dir=corpus/$1
    shift
    mkdir -p "$dir"
    for f in "$@"; do
        if [ -f "$f" ]; then cp "$f" "$dir/"; fi
    done
}
for target in "${targets[@]}"; do
    case $target in
        flow_file) seed "$target" ../tests/fixtures/*.witm ;;
        mitmproxy) seed "$target" ../tests/fixtures/mitmproxy/*.flow ../tests/fixtures/*.flow ;;
        har) seed "$target" ../tests/fixtures/mitmproxy/*.har ../tests/fixtures/*.har ;;
        filter) mkdir -p corpus/filter
            i=0
            for expr in '~d example.com & !~c 200' '~q ~b "a\"b"' '(~h x | ~u /a.*) & ~m POST' '~bs [0-9]+' '!(~e )' '~hq foo ~hs bar ~t json'; do
                printf '%s' "$expr" > "corpus/filter/seed$i"; i=$((i+1))
            done ;;
        client_bytes) mkdir -p corpus/client_bytes
            printf 'GET http://example.com/a?b=c HTTP/1.1\r\nHost: example.com\r\n\r\n' > corpus/client_bytes/get
            printf 'POST http://example.com/ HTTP/1.1\r\nHost: example.com\r\nTransfer-Encoding: chunked\r\nTE: trailers\r\n\r\n3\r\nabc\r\n0\r\nx-t: 1\r\n\r\nGET http://[::1]:81/ HTTP/1.1\r\nContent-Length: 2\r\n\r\nhi' > corpus/client_bytes/chunked
            printf 'CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\nProxy-Authorization: Basic YTpi\r\n\r\n' > corpus/client_bytes/connect
            printf 'GET /relative HTTP/1.1\r\nHost: example.com:8080\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n' > corpus/client_bytes/upgrade
            printf 'PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\x00\x00\x00\x04\x00\x00\x00\x00\x00' > corpus/client_bytes/h2 ;;
        config) mkdir -p corpus/config
            sed -n 's/^\/\/! \{0,1\}//p' ../host/cli/src/config.rs | sed -n '/^```toml$/,/^```$/p' | sed '1d;$d' > corpus/config/doc
            printf 'listen_port = 9000\nignore_hosts = "^internal"\n[[plugins]]\npath = "a.wasm"\n--set\nplugins.a.failure=closed\nadmin_port=9090\n' > corpus/config/sets ;;
    esac
    mkdir -p "regressions/$target"
done

cargo +nightly fuzz build 2>&1 | tail -3
for target in "${targets[@]}"; do
    log=$(mktemp)
    # Memory capped per run: a parser that allocates without bound fails.
    if ! cargo +nightly fuzz run "$target" "corpus/$target" "regressions/$target" -- \
        -max_total_time="$seconds" -rss_limit_mb=2048 -malloc_limit_mb=1024 -max_len=65536 \
        -print_final_stats=1 >"$log" 2>&1; then
        tail -40 "$log"
        echo "fuzz: $target crashed; the input is in fuzz/artifacts/$target/" >&2
        exit 1
    fi
    runs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$log" | grep -o '[0-9]*$' || echo '?')
    echo "fuzz: $target: $runs executions in ${seconds} s, no crash"
    rm -f "$log"
done
