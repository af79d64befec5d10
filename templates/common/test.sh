#!/usr/bin/env bash
# Builds {{name}}.wasm, runs it over the saved flow in sample.witm with
# `witm replay` (no network), and checks that the response it wrote to
# out.witm carries `x-{{name}}: hello`.
#   WITM          the witm binary (default: the one that made this project,
#                 else `witm` on PATH)
#   WITM_CONFDIR  witm's state folder (default ~/.witm)
set -euo pipefail
cd "$(dirname "$0")"
./build.sh
witm=${WITM:-{{witm_sh}}}
if [ -z "${WITM:-}" ] && [ ! -x "$witm" ]; then witm=witm; fi
command -v "$witm" >/dev/null || { echo "test.sh: no witm binary at $witm: set WITM" >&2; exit 1; }
witm=("$witm")
if [ -n "${WITM_CONFDIR:-}" ]; then witm+=(--confdir "$WITM_CONFDIR"); fi

"${witm[@]}" replay -q -s {{name}}.wasm -r sample.witm -w out.witm
if [ -z "$("${witm[@]}" flows out.witm --filter "~hs '^x-{{name}}: hello\r\$'")" ]; then
  echo "FAIL: {{name}} did not add 'x-{{name}}: hello' to the response; the flow it wrote:" >&2
  "${witm[@]}" replay -r out.witm --flow 1 >&2
  exit 1
fi
echo "ok: {{name}} added 'x-{{name}}: hello' to the sample flow's response"
