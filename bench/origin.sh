# Sourced by bench/ab.sh and bench/instructions.sh: a plain-HTTP nginx
# origin on loopback serving a 52-byte `/small` (bench/run.sh's, without
# its TLS side), and the helpers both need. Sourcing it makes `work`, a
# temporary directory, and `pids`, processes to stop: both go on exit,
# with the origin.
work=$(mktemp -d)
pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  stop_origin
  rm -rf "$work"
}
trap cleanup EXIT
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_port() {
  for _ in $(seq 1 600); do
    (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0
    sleep 0.1
  done
  echo "nothing listens on $1" >&2
  return 1
}
# Starts nginx; sets origin_port.
start_origin() {
  local nginx
  nginx=$(command -v nginx || echo /usr/sbin/nginx)
  mkdir -p "$work/www"
  printf '%51s\n' "hello from the bench origin" >"$work/www/small"
  # nginx's workers run as an unprivileged user: they must read the files.
  chmod a+rx "$work" "$work/www"
  chmod a+r "$work/www/"*
  origin_port=$(free_port)
  cat >"$work/nginx.conf" <<CONF
worker_processes 1;
pid $work/nginx.pid;
error_log $work/nginx-error.log;
events { worker_connections 4096; }
http {
  access_log off;
  keepalive_requests 1000000;
  server { listen 127.0.0.1:$origin_port; root $work/www; }
}
CONF
  "$nginx" -c "$work/nginx.conf" -p "$work" -e "$work/nginx-error.log"
  wait_port "$origin_port"
}
stop_origin() {
  if [ -f "$work/nginx.pid" ]; then kill "$(cat "$work/nginx.pid")" 2>/dev/null || true; fi
}
