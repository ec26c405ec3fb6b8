#!/usr/bin/env bash
# Checks volley's coordinated-omission correction against a server that stalls: `volley mock`
# (CPU 0) delays every response that is ready in the first second of each 10 s period until
# that second ends, and volley (CPU 1) runs the open model at 1,000 req/s with
# max_in_flight = 50 and on_saturation = "queue".
#
# Expected corrected p99: a request due at time x into a stall completes at the stall's end,
# so its latency from the due time is 1 s - x, uniform between 0 and 1 s. Stalls cover 10% of
# the time, so 10% of requests have that latency and the rest almost none. The p99 of all
# requests is the latency that 1% of them exceed, the slowest tenth of the stalled ones:
# 1 s * (1 - 0.1) = 900 ms. Draining the queue after a stall adds a little (about 1,000
# queued requests at volley's throughput), so the measured value sits slightly above.
# The uncorrected p99, from the actual send, stays low. The 50 slots fill in the first 50 ms
# of a stall (0.5% of all requests). The requests due later wait for a free slot, so they are
# sent only after the stall, to a server that responds at once.
#
# Usage: benches/coordinated-omission.sh [--duration SECONDS]   (default 30, at least 30)
# Exits 1 when the corrected p99 is not within 10% of 900 ms.

set -euo pipefail
cd "$(dirname "$0")/.."

duration=30
while [ $# -gt 0 ]; do
  case "$1" in
    --duration) duration="$2"; shift 2 ;;
    *) echo "unknown option $1; use --duration SECONDS" >&2; exit 2 ;;
  esac
done
if ! [[ "$duration" =~ ^[0-9]+$ ]] || [ "$duration" -lt 30 ] || [ $((duration % 10)) -ne 0 ]; then
  echo "invalid --duration $duration: use a multiple of 10 s from 30 s, so that stalls cover exactly 10% of the run" >&2
  exit 2
fi

# shellcheck source=benches/lib.sh
source benches/lib.sh
bench_init
bench_require util-linux:taskset curl:curl
bench_build_volley
bench_start_mock --stall-every 10s --stall-for 1s

cat >"$BENCH_WORK/co.toml" <<TOML
name = "coordinated-omission"
[target]
url = "$MOCK_BASE"
[auth]
type = "oauth2-client-credentials"
token_url = "{target}/oauth/token"
client_id = "demo-client"
client_secret = "demo-secret"
[request]
method = "POST"
path = "/api/v2/integrations/actions/demo-action/execute"
headers = { "content-type" = "application/json" }
body = '{"org_id": "11111111-1111-4111-8111-111111111111", "id": "{{uuid}}", "n": {{seq}}}'
[load]
model = "open"
rate = 1000
max_in_flight = 50
on_saturation = "queue"
duration = "${duration}s"
TOML

BENCH_LIMIT=$((duration + 60)) bench_run_bounded taskset -c 1 "$VOLLEY" run \
  "$BENCH_WORK/co.toml" --quiet --out "$BENCH_WORK/report" >"$BENCH_WORK/volley.out" 2>&1 \
  || { cat "$BENCH_WORK/volley.out" >&2; exit 1; }

summary="$BENCH_WORK/report/summary.csv"
requests="$(bench_csv_field "$summary" requests)"
ok="$(bench_csv_field "$summary" ok)"
corrected="$(bench_csv_field "$summary" p99_ms)"
uncorrected="$(bench_csv_field "$summary" p99_uncorrected_ms)"
achieved="$(bench_csv_field "$summary" achieved_rps)"
echo "requests: $requests ($ok ok), achieved $achieved req/s over ${duration} s"
echo "corrected p99: $corrected ms"
echo "uncorrected p99: $uncorrected ms"
echo "expected corrected p99: 900 ms (10% of requests wait uniformly 0 to 1 s for the stall's end)"
awk -v c="$corrected" 'BEGIN {
  off = 100 * (c - 900) / 900
  printf "corrected p99 is %+.1f%% off the expected value (limit 10%%)\n", off
  exit (off > 10 || off < -10)
}'
