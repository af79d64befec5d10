# capped MB COMMAND...: runs COMMAND, and kills it and everything it started
# if their resident memory together passes MB megabytes (a runaway build
# tool fails instead of starving the machine). Sourced by the build scripts.
# Resident memory, not address space: JavaScript engines reserve far more
# address space than they use, so `ulimit -v` cannot cap them.
capped() {
  local limit_mb=$1
  shift
  "$@" &
  local pid=$!
  while kill -0 "$pid" 2>/dev/null; do
    local rss
    rss=$(ps -e -o pid=,ppid=,rss= | awk -v root="$pid" '
      { parent[$1] = $2; rss[$1] = $3 }
      END {
        for (p in parent) {
          q = p
          while (q != "" && q != root && q in parent && q != parent[q]) q = parent[q]
          if (q == root) total += rss[p]
        }
        print total + 0
      }')
    if [ "$rss" -gt $((limit_mb * 1024)) ]; then
      echo "$1: over ${limit_mb} MB of memory, stopped" >&2
      pkill -KILL -P "$pid" 2>/dev/null || true
      kill -KILL "$pid" 2>/dev/null || true
      wait "$pid" 2>/dev/null || true
      return 1
    fi
    sleep 0.5
  done
  wait "$pid"
}
