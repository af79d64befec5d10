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
targets=(flow_file mitmproxy har filter)
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
            for expr in '~d example.com & !~c 200' '~q ~b "a\"b"' '(~h x | ~u /a.*) & ~m POST' '~bs [0-9]+' '!(~e)' '~hq foo ~hs bar ~t json'; do
                printf '%s' "$expr" > "corpus/filter/seed$i"; i=$((i+1))
            done ;;
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
