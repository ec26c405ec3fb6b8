#!/usr/bin/env bash
# Measures the mock's execute throughput with wrk: the mock pinned to CPU 0, wrk to CPU 1,
# 50 keep-alive connections, a ~200-byte JSON body, no added latency.
#
# Usage: benches/mock-wrk.sh [RUNS] [DURATION]   (defaults: 3 runs of 10s)
# Prints req/s of each run and their median. Exits non-zero if any response was not 2xx,
# because then the figure measures the mock's error path, not execute.
# Run it on an otherwise idle machine. "other load" is the share of CPU 0 that neither the
# mock nor interrupt handling used: well above 0% means other processes competed with the
# mock and the figure is too low.

set -euo pipefail

RUNS="${1:-3}"
DURATION="${2:-10s}"
cd "$(dirname "$0")/.."

if ! command -v wrk >/dev/null; then
  if [ "$(id -u)" -ne 0 ]; then
    echo "wrk is missing: install it with 'sudo apt-get install -y wrk'" >&2
    exit 1
  fi
  apt-get update -qq
  apt-get install -y -qq wrk >/dev/null
fi

cargo build --release --quiet
BINARY="${CARGO_TARGET_DIR:-target}/release/volley"

# Pin the mock and wrk to different cores when there are two, so they do not compete.
MOCK_PIN=()
WRK_PIN=()
if command -v taskset >/dev/null && [ "$(nproc)" -ge 2 ]; then
  MOCK_PIN=(taskset -c 0)
  WRK_PIN=(taskset -c 1)
fi

OUT="$(mktemp)"
"${MOCK_PIN[@]}" "$BINARY" mock --listen 127.0.0.1:0 --rate-limit 100000000/1s \
  >"$OUT" 2>/dev/null &
MOCK_PID=$!
trap 'kill "$MOCK_PID" 2>/dev/null || true; wait "$MOCK_PID" 2>/dev/null || true; rm -f "$OUT"' EXIT

for _ in $(seq 1 100); do
  [ -s "$OUT" ] && break
  sleep 0.1
done
BASE_URL="$(head -n 1 "$OUT" | sed -n 's/^listening on //p')"
if [ -z "$BASE_URL" ]; then
  echo "the mock did not print its address within 10 s" >&2
  exit 1
fi
URL="$BASE_URL/api/v2/integrations/actions/demo-action/execute"

TOKEN="$(curl -sf --noproxy '*' -u demo-client:demo-secret -d grant_type=client_credentials \
  "$BASE_URL/oauth/token" | sed -n 's/.*"access_token":"\([^"]*\)".*/\1/p')"
if [ -z "$TOKEN" ]; then
  echo "failed to get an access token from $BASE_URL/oauth/token" >&2
  exit 1
fi
export TOKEN

cpu_ticks() { awk '{print $14 + $15}' "/proc/$MOCK_PID/stat"; }
# Prints busy, interrupt and total ticks of the mock's CPU (columns of /proc/stat).
cpu0_ticks() {
  awk '$1 == "cpu0" {busy = $2 + $3 + $4 + $7 + $8 + $9; print busy, $7 + $8, busy + $5 + $6}' /proc/stat
}
TICKS_PER_SECOND="$(getconf CLK_TCK)"

RATES=()
for run in $(seq 1 "$RUNS"); do
  ticks_before="$(cpu_ticks)"
  read -r busy_before irq_before total_before <<<"$(cpu0_ticks)"
  started="$(date +%s.%N)"
  report="$("${WRK_PIN[@]}" wrk -t1 -c50 -d"$DURATION" -s benches/mock-post.lua "$URL")"
  ended="$(date +%s.%N)"
  ticks_after="$(cpu_ticks)"
  read -r busy_after irq_after total_after <<<"$(cpu0_ticks)"
  rate="$(echo "$report" | awk '/^Requests\/sec:/ {print $2}')"
  failed="$(echo "$report" | awk '/^non-2xx\/3xx:/ {print $2}')"
  mock_ticks="$((ticks_after - ticks_before))"
  cpu="$(awk -v t="$mock_ticks" -v hz="$TICKS_PER_SECOND" -v s="$started" -v e="$ended" \
    'BEGIN {printf "%.0f", 100 * t / hz / (e - s)}')"
  other="$(awk -v busy="$((busy_after - busy_before))" -v irq="$((irq_after - irq_before))" \
    -v total="$((total_after - total_before))" -v mock="$mock_ticks" \
    'BEGIN {o = 100 * (busy - irq - mock) / total; printf "%.0f", (o < 0 ? 0 : o)}')"
  echo "run $run: $rate req/s, non-2xx/3xx: $failed, mock cpu ${cpu}%, other load ${other}%"
  if [ "$failed" != "0" ]; then
    echo "run $run got non-2xx responses, so it did not measure execute" >&2
    exit 1
  fi
  RATES+=("$rate")
done

MEDIAN="$(printf '%s\n' "${RATES[@]}" | sort -n | awk '{v[NR] = $1} END {print v[int((NR + 1) / 2)]}')"
echo "median: $MEDIAN req/s over $RUNS runs of $DURATION"
