#!/usr/bin/env bash
# Long-run memory check: volley at a fixed open-model rate against the embedded mock, with
# the peak resident set size (VmHWM) read after the first minute and at the end. Flat memory
# means the end figure is within 10% of the first-minute figure.
#
# Usage: benches/soak-rss.sh [--rate N] [--duration SECONDS]   (defaults: 2000 req/s, 600 s)
set -euo pipefail
cd "$(dirname "$0")/.."

rate=2000
duration=600
while [ $# -gt 0 ]; do
  case "$1" in
    --rate) rate="$2"; shift 2 ;;
    --duration) duration="$2"; shift 2 ;;
    *) echo "unknown option $1; use --rate N and --duration SECONDS" >&2; exit 2 ;;
  esac
done

cargo build --release --quiet
binary="${CARGO_TARGET_DIR:-target}/release/volley"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

cat >"$work/soak.toml" <<TOML
name = "soak"
[target]
url = "embedded"
[target.mock]
rate_limit = "1000000/1s"
latency = { base = "5ms", jitter = "2ms" }
[auth]
type = "oauth2-client-credentials"
token_url = "{target}/oauth/token"
client_id = "demo-client"
client_secret = "demo-secret"
[request]
path = "/api/v2/integrations/actions/demo-action/execute"
headers = { "content-type" = "application/json" }
body = '{"org_id": "11111111-1111-4111-8111-111111111111", "id": "{{uuid}}", "n": {{seq}}}'
[load]
model = "open"
rate = $rate
max_in_flight = 200
duration = "${duration}s"
TOML

"$binary" run "$work/soak.toml" --quiet --out "$work/report" >"$work/stdout" 2>"$work/stderr" &
pid=$!

peak_kib() { awk '/VmHWM/ { print $2 }' "/proc/$pid/status"; }

sleep 60
first=$(peak_kib)
echo "peak RSS after 60 s: $((first / 1024)) MiB"
last=$first
while kill -0 "$pid" 2>/dev/null; do
  value=$(peak_kib 2>/dev/null || true)
  [ -n "$value" ] && last=$value
  sleep 5
done
wait "$pid" || true

requests=$(awk -F, 'NR == 2 { print $8 }' "$work/report/summary.csv")
echo "peak RSS at the end: $((last / 1024)) MiB after ${duration} s at ${rate} req/s ($requests requests)"
awk -v first="$first" -v last="$last" 'BEGIN {
  growth = (last - first) / first * 100
  printf "growth after the first minute: %.1f%% (limit 10%%)\n", growth
  exit (growth > 10)
}'
