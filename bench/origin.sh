# Sourced by bench/run.sh, bench/ab.sh and bench/instructions.sh: the nginx
# origin on loopback (HTTP, and HTTPS with HTTP/2) and the helpers they
# need. Sourcing it makes `work`, a
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
# Starts nginx: plain HTTP on origin_port, and HTTPS with HTTP/2 on
# origin_tls_port (for `localhost` and 127.0.0.1, signed by a CA made here,
# $work/origin-ca.pem, which the proxies are told to trust). It serves a
# 52-byte `/small` and a 1 MiB `/big`.
start_origin() {
  local nginx
  nginx=$(command -v nginx || echo /usr/sbin/nginx)
  openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 -subj "/CN=bench origin CA" \
    -keyout "$work/origin-ca.key" -out "$work/origin-ca.pem" 2>/dev/null
  openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj "/CN=localhost" \
    -keyout "$work/origin.key" -out "$work/origin.csr" 2>/dev/null
  printf 'subjectAltName=DNS:localhost,IP:127.0.0.1\n' >"$work/san.ext"
  openssl x509 -req -in "$work/origin.csr" -CA "$work/origin-ca.pem" -CAkey "$work/origin-ca.key" \
    -CAcreateserial -days 2 -extfile "$work/san.ext" -out "$work/origin.pem" 2>/dev/null
  mkdir -p "$work/www"
  printf '%51s\n' "hello from the bench origin" >"$work/www/small"
  head -c $((1 << 20)) /dev/zero >"$work/www/big"
  # nginx's workers run as an unprivileged user: they must read the files.
  chmod a+rx "$work" "$work/www"
  chmod a+r "$work/www/"*
  origin_port=$(free_port)
  origin_tls_port=$(free_port)
  cat >"$work/nginx.conf" <<CONF
worker_processes 1;
pid $work/nginx.pid;
error_log $work/nginx-error.log;
events { worker_connections 4096; }
http {
  access_log off;
  keepalive_requests 1000000;
  server {
    listen 127.0.0.1:$origin_port;
    listen 127.0.0.1:$origin_tls_port ssl http2;
    ssl_certificate $work/origin.pem;
    ssl_certificate_key $work/origin.key;
    root $work/www;
  }
}
CONF
  "$nginx" -c "$work/nginx.conf" -p "$work" -e "$work/nginx-error.log"
  wait_port "$origin_port"
  wait_port "$origin_tls_port"
}
stop_origin() {
  if [ -f "$work/nginx.pid" ]; then kill "$(cat "$work/nginx.pid")" 2>/dev/null || true; fi
  stop_nginx_proxy
}
# A reference for the HTTP/1.1 rows: nginx as a reverse proxy in front of
# the origin, on nginx_proxy_port (PORT, or a free one; a C proxy that parses and forwards each
# request, with kept-alive connections to the origin; one worker per core,
# or WITM_BENCH_WORKERS, as the tokio proxies). Clients ask it as they would
# the origin: it takes no absolute-form requests, as a forward proxy would.
start_nginx_proxy() { # [PORT]
  local nginx
  nginx=$(command -v nginx || echo /usr/sbin/nginx)
  nginx_proxy_port=${1:-$(free_port)}
  cat >"$work/nginx-proxy.conf" <<CONF
worker_processes ${WITM_BENCH_WORKERS:-$(nproc)};
pid $work/nginx-proxy.pid;
error_log $work/nginx-proxy-error.log;
events { worker_connections 4096; }
http {
  access_log off;
  keepalive_requests 1000000;
  upstream origin { server 127.0.0.1:$origin_port; keepalive 64; }
  server {
    listen 127.0.0.1:$nginx_proxy_port;
    location / {
      proxy_pass http://origin;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
    }
  }
}
CONF
  "$nginx" -c "$work/nginx-proxy.conf" -p "$work" -e "$work/nginx-proxy-error.log"
  wait_port "$nginx_proxy_port"
}
# The other HTTP/1.1 reference: a TCP relay that parses nothing
# (bench/tcp-relay), built (once) into $CARGO_TARGET_DIR/bench-relay and
# started on PORT in front of the origin's plain HTTP port, with as many
# worker threads as the tokio proxies (WITM_BENCH_WORKERS, else one per
# core); its pid is relay_pid, and it goes with the script's other pids.
start_relay() { # PORT
  local bench target
  bench=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
  target=${CARGO_TARGET_DIR:-$bench/../target}/bench-relay
  cargo build --quiet --release --manifest-path "$bench/tcp-relay/Cargo.toml" --target-dir "$target"
  local env=(env)
  [ -z "${WITM_BENCH_WORKERS:-}" ] || env+=("TOKIO_WORKER_THREADS=$WITM_BENCH_WORKERS")
  "${env[@]}" "$target/release/tcp-relay" "$1" "127.0.0.1:$origin_port" >"$work/relay.log" 2>&1 &
  relay_pid=$!
  pids+=("$relay_pid")
  wait_port "$1"
}
stop_nginx_proxy() {
  [ -f "$work/nginx-proxy.pid" ] || return 0
  local pid
  pid=$(cat "$work/nginx-proxy.pid")
  kill "$pid" 2>/dev/null || true
  # Gone once its pid file is (nginx removes it as it exits).
  for _ in $(seq 1 100); do [ -f "$work/nginx-proxy.pid" ] || return 0; sleep 0.05; done
}
