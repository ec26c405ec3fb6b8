# Helpers shared by the benchmark scripts in this folder; source this file, do not run it.
#
# A script calls bench_init first: it creates the temporary folder $BENCH_WORK and sets a
# trap that, on exit, stops every process registered with bench_track (by PID) and removes
# the folder. Servers listen on 127.0.0.1 only.

# Sets up $BENCH_WORK and the cleanup trap.
bench_init() {
  BENCH_WORK="$(mktemp -d)"
  BENCH_PIDS=()
  trap bench_cleanup EXIT
}

# Registers PID $1 to be stopped when the script exits.
bench_track() {
  BENCH_PIDS+=("$1")
}

# Forgets PID $1 once it has been waited for, so that a later process reusing the number is
# never stopped.
bench_untrack() {
  local kept=() pid
  for pid in "${BENCH_PIDS[@]}"; do
    [ "$pid" = "$1" ] || kept+=("$pid")
  done
  BENCH_PIDS=("${kept[@]}")
}

bench_cleanup() {
  local pid
  for pid in "${BENCH_PIDS[@]}"; do
    if kill -0 "$pid" 2>/dev/null; then
      kill "$pid" 2>/dev/null || true
      wait "$pid" 2>/dev/null || true
    fi
  done
  rm -rf "$BENCH_WORK"
}

# Installs the Debian packages among "$@" whose command ($package:$command pairs) is missing.
bench_require() {
  local missing=() pair
  for pair in "$@"; do
    command -v "${pair#*:}" >/dev/null || [ -x "${pair#*:}" ] || missing+=("${pair%%:*}")
  done
  [ "${#missing[@]}" -eq 0 ] && return 0
  if [ "$(id -u)" -ne 0 ]; then
    echo "missing: ${missing[*]}; install them with 'sudo apt-get install -y ${missing[*]}'" >&2
    exit 1
  fi
  echo "installing ${missing[*]} with apt-get"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
}

# Builds volley in release mode and sets $VOLLEY to the binary.
bench_build_volley() {
  cargo build --release --quiet
  VOLLEY="${CARGO_TARGET_DIR:-target}/release/volley"
}

# Prints a free TCP port on 127.0.0.1. Another process may take it before it is used, which
# makes the server fail to start with a clear message rather than measure the wrong thing.
bench_free_port() {
  python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# Starts nginx with one worker on CPU 0, which responds to every request with 200 and a fixed JSON
# body. Sets NGINX_PID and NGINX_URL (the execute path). With $1 = log, it writes one access
# log line per request, the request's arrival time in seconds ($msec), to $NGINX_LOG.
bench_start_nginx() {
  local port dir="$BENCH_WORK/nginx" access_log="access_log off;"
  port="$(bench_free_port)"
  mkdir -p "$dir"
  NGINX_LOG="$dir/access.log"
  if [ "${1:-}" = log ]; then
    access_log="log_format arrival '\$msec'; access_log $NGINX_LOG arrival buffer=256k flush=1s;"
  fi
  cat >"$dir/nginx.conf" <<CONF
worker_processes 1;
daemon off;
pid $dir/nginx.pid;
error_log $dir/error.log warn;
events { worker_connections 4096; }
http {
  $access_log
  client_body_temp_path $dir/body;
  proxy_temp_path $dir/proxy;
  fastcgi_temp_path $dir/fastcgi;
  uwsgi_temp_path $dir/uwsgi;
  scgi_temp_path $dir/scgi;
  # The default of 1000 requests per connection would make every client reconnect mid-run.
  keepalive_requests 1000000000;
  keepalive_timeout 60s;
  server {
    listen 127.0.0.1:$port;
    location / {
      default_type application/json;
      return 200 '{"status":"SUCCESS","correlationId":"5b9f6a1c-8d2e-4f3a-9c7b-1e2d3f4a5b6c"}';
    }
  }
}
CONF
  taskset -c 0 /usr/sbin/nginx -c "$dir/nginx.conf" -p "$dir" &
  NGINX_PID=$!
  bench_track "$NGINX_PID"
  NGINX_URL="http://127.0.0.1:$port/api/v2/integrations/actions/demo-action/execute"
  local _
  for _ in $(seq 1 100); do
    curl -sf --noproxy '*' -o /dev/null -X POST -d '{}' "$NGINX_URL" && break
    sleep 0.1
  done
  if ! curl -sf --noproxy '*' -o /dev/null -X POST -d '{}' "$NGINX_URL"; then
    echo "nginx did not respond on port $port within 10 s; its log:" >&2
    cat "$dir/error.log" >&2
    exit 1
  fi
  NGINX_BASE="http://127.0.0.1:$port"
}

# Starts `volley mock` on CPU 0 with the extra flags "$@" and a rate limit no run reaches.
# Sets MOCK_PID, MOCK_BASE (the base URL) and MOCK_TOKEN (an access token of demo-client).
bench_start_mock() {
  local out="$BENCH_WORK/mock.out"
  taskset -c 0 "$VOLLEY" mock --listen 127.0.0.1:0 --rate-limit 1000000000/1s "$@" \
    >"$out" 2>"$BENCH_WORK/mock.err" &
  MOCK_PID=$!
  bench_track "$MOCK_PID"
  local _
  for _ in $(seq 1 100); do
    [ -s "$out" ] && break
    sleep 0.1
  done
  MOCK_BASE="$(head -n 1 "$out" | sed -n 's/^listening on //p')"
  if [ -z "$MOCK_BASE" ]; then
    echo "the mock did not print its address within 10 s; its errors:" >&2
    cat "$BENCH_WORK/mock.err" >&2
    exit 1
  fi
  MOCK_TOKEN="$(curl -sf --noproxy '*' -u demo-client:demo-secret -d grant_type=client_credentials \
    "$MOCK_BASE/oauth/token" | sed -n 's/.*"access_token":"\([^"]*\)".*/\1/p')"
  if [ -z "$MOCK_TOKEN" ]; then
    echo "failed to get an access token from $MOCK_BASE/oauth/token" >&2
    exit 1
  fi
}

# Prints the median of the numbers on standard input, one a line.
bench_median() {
  sort -g | awk '{v[NR] = $1} END {if (NR % 2) print v[(NR + 1) / 2]; else print (v[NR / 2] + v[NR / 2 + 1]) / 2}'
}

# Prints column $2 of the data row of CSV file $1 (a one-cell summary.csv), found by name.
bench_csv_field() {
  awk -F, -v name="$2" 'NR == 1 {for (i = 1; i <= NF; i++) if ($i == name) column = i}
                        NR == 2 {print $column}' "$1"
}

# Runs "$@" in the background with a time limit of $BENCH_LIMIT seconds, registered for
# cleanup, and waits for it. Returns its exit status.
bench_run_bounded() {
  timeout --kill-after=10 "$BENCH_LIMIT" "$@" &
  local pid=$!
  bench_track "$pid"
  local status=0
  wait "$pid" || status=$?
  bench_untrack "$pid"
  return "$status"
}
