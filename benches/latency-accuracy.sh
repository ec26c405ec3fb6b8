#!/usr/bin/env bash
# Compares the latency volley measures with wrk's on the same server in the same run.
# `volley mock --latency-base 10ms` (CPU 0) responds to every execute call after 10 ms. wrk
# (`-t1 -c50 --latency`) and volley (closed model, 50 workers) take turns on CPU 1, each for
# --duration seconds per round. Both send the ~200-byte body of benches/mock-post.lua.
#
# Usage: benches/latency-accuracy.sh [--duration SECONDS] [--rounds N]   (defaults: 10 s, 3)
# Prints p50 and p99 of every run, the medians, and how far volley's medians are from wrk's.
# Exits 1 when either differs by more than 5%.

set -euo pipefail
cd "$(dirname "$0")/.."

duration=10
rounds=3
while [ $# -gt 0 ]; do
  case "$1" in
    --duration) duration="$2"; shift 2 ;;
    --rounds) rounds="$2"; shift 2 ;;
    *) echo "unknown option $1; use --duration SECONDS and --rounds N" >&2; exit 2 ;;
  esac
done

# shellcheck source=benches/lib.sh
source benches/lib.sh
bench_init
bench_require wrk:wrk util-linux:taskset curl:curl
bench_build_volley
bench_start_mock --latency-base 10ms
export TOKEN="$MOCK_TOKEN"
url="$MOCK_BASE/api/v2/integrations/actions/demo-action/execute"

# The same body and headers as benches/mock-post.lua, which wrk sends.
cat >"$BENCH_WORK/latency.toml" <<TOML
name = "latency-accuracy"
[target]
url = "$MOCK_BASE"
[auth]
type = "bearer"
token = "$MOCK_TOKEN"
[request]
method = "POST"
path = "/api/v2/integrations/actions/demo-action/execute"
headers = { "content-type" = "application/json", "x-genesys-org-id" = "22222222-2222-4222-8222-222222222222" }
body = '{"org_id":"22222222-2222-4222-8222-222222222222","phone":"+15551234567","customer":{"id":"c-000123","tier":"gold","segments":["retail","emea"]},"interaction":{"queue":"support","channel":"voice","attempt":1}}'
[load]
model = "closed"
concurrency = 50
ramp_up = "0s"
duration = "${duration}s"
TOML

# Prints wrk's percentile $2 (such as 99%) from report $1 in milliseconds.
wrk_percentile() {
  awk -v p="$2" '$1 == p {
    value = $2; unit = value; sub(/[0-9.]+/, "", unit); sub(/[a-z]+$/, "", value)
    factor = (unit == "us" ? 0.001 : (unit == "s" ? 1000 : 1))
    printf "%.3f\n", value * factor
  }' "$1"
}

results="$BENCH_WORK/results.tsv"
: >"$results"
for round in $(seq 1 "$rounds"); do
  # Alternate which tool goes first, so neither always follows the other.
  order=(wrk volley)
  [ $((round % 2)) -eq 0 ] && order=(volley wrk)
  for tool in "${order[@]}"; do
    if [ "$tool" = wrk ]; then
      BENCH_LIMIT=$((duration + 60)) bench_run_bounded taskset -c 1 wrk -t1 -c50 \
        -d"${duration}s" --latency -s benches/mock-post.lua "$url" >"$BENCH_WORK/wrk.out" 2>&1 \
        || { cat "$BENCH_WORK/wrk.out" >&2; exit 1; }
      failed="$(awk '/^non-2xx\/3xx:/ {print $2}' "$BENCH_WORK/wrk.out")"
      p50="$(wrk_percentile "$BENCH_WORK/wrk.out" 50%)"
      p99="$(wrk_percentile "$BENCH_WORK/wrk.out" 99%)"
      rps="$(awk '/^Requests\/sec:/ {print $2}' "$BENCH_WORK/wrk.out")"
    else
      rm -rf "$BENCH_WORK/report"
      BENCH_LIMIT=$((duration + 60)) bench_run_bounded taskset -c 1 "$VOLLEY" run \
        "$BENCH_WORK/latency.toml" --quiet --out "$BENCH_WORK/report" >"$BENCH_WORK/volley.out" 2>&1 \
        || { cat "$BENCH_WORK/volley.out" >&2; exit 1; }
      summary="$BENCH_WORK/report/summary.csv"
      failed="$(($(bench_csv_field "$summary" requests) - $(bench_csv_field "$summary" ok)))"
      p50="$(bench_csv_field "$summary" p50_ms)"
      p99="$(bench_csv_field "$summary" p99_ms)"
      rps="$(bench_csv_field "$summary" achieved_rps)"
    fi
    if [ "$failed" != "0" ]; then
      echo "$tool got $failed failed requests, so the run did not measure the 10 ms path" >&2
      exit 1
    fi
    printf '%s\t%s\t%s\t%s\n' "$tool" "$p50" "$p99" "$rps" >>"$results"
    printf 'round %s %-6s p50 %7.3f ms  p99 %7.3f ms  %8.1f req/s\n' "$round" "$tool" "$p50" "$p99" "$rps"
  done
done

column_median() { awk -F'\t' -v tool="$1" -v column="$2" '$1 == tool {print $column}' "$results" | bench_median; }
wrk_p50="$(column_median wrk 2)"
wrk_p99="$(column_median wrk 3)"
volley_p50="$(column_median volley 2)"
volley_p99="$(column_median volley 3)"
echo
printf '%-8s %10s %10s\n' tool 'p50 ms' 'p99 ms'
printf '%-8s %10.3f %10.3f\n' wrk "$wrk_p50" "$wrk_p99"
printf '%-8s %10.3f %10.3f\n' volley "$volley_p50" "$volley_p99"
echo "(medians over $rounds rounds of ${duration} s against volley mock --latency-base 10ms)"
awk -v v50="$volley_p50" -v w50="$wrk_p50" -v v99="$volley_p99" -v w99="$wrk_p99" 'BEGIN {
  d50 = 100 * (v50 - w50) / w50; d99 = 100 * (v99 - w99) / w99
  printf "volley p50 is %+.1f%% off wrk'"'"'s, p99 %+.1f%% (limit 5%% each)\n", d50, d99
  exit (d50 > 5 || d50 < -5 || d99 > 5 || d99 < -5)
}'
