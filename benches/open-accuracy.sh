#!/usr/bin/env bash
# Checks that the open model sends at the rate it is set to: volley (CPU 1) runs one open
# cell per rate against nginx (one worker, CPU 0), and nginx logs the arrival time of every
# request. For each rate it prints what volley reports (achieved rate, dropped requests,
# largest lag behind the schedule) and the rate nginx saw, (requests - 1) / (last arrival -
# first arrival), and compares both with the target.
#
# Usage: benches/open-accuracy.sh [--duration SECONDS] [--rates "RATE:TOLERANCE% ..."]
#                                 [--max-in-flight N] [--on-saturation drop|queue]
#   defaults: 30 s, "5000:0.1 50000:1", 200, drop
# With drop, requests that fall due while every slot is busy are skipped and counted, so a
# rate above the setup's ceiling shows up as dropped requests and a lower achieved rate.
# Exits 1 when a rate misses its tolerance.

set -euo pipefail
cd "$(dirname "$0")/.."

duration=30
rates="5000:0.1 50000:1"
max_in_flight=200
on_saturation=drop
while [ $# -gt 0 ]; do
  case "$1" in
    --duration) duration="$2"; shift 2 ;;
    --rates) rates="$2"; shift 2 ;;
    --max-in-flight) max_in_flight="$2"; shift 2 ;;
    --on-saturation) on_saturation="$2"; shift 2 ;;
    *) echo "unknown option $1; see the usage at the top of $0" >&2; exit 2 ;;
  esac
done

# shellcheck source=benches/lib.sh
source benches/lib.sh
bench_init
bench_require nginx-light:/usr/sbin/nginx util-linux:taskset
bench_build_volley
bench_start_nginx log

body='{"id":"{{uuid}}","seq":{{seq}},"org_id":"22222222-2222-4222-8222-222222222222","phone":"+15551234567","customer":{"id":"c-000123","tier":"gold","segments":["retail","emea"]}}'
missed=0
printf '%8s %12s %12s %9s %9s %12s %9s %10s\n' target 'volley rps' 'nginx rps' 'volley %' \
  'nginx %' requests dropped 'max lag ms'
for pair in $rates; do
  rate="${pair%%:*}"
  tolerance="${pair#*:}"
  cat >"$BENCH_WORK/open.toml" <<TOML
name = "open-accuracy"
[target]
url = "$NGINX_BASE"
[request]
method = "POST"
path = "/api/v2/integrations/actions/demo-action/execute"
headers = { "content-type" = "application/json" }
body = '$body'
[load]
model = "open"
rate = $rate
max_in_flight = $max_in_flight
on_saturation = "$on_saturation"
duration = "${duration}s"
TOML
  # nginx flushes its log buffer every second; wait for it before and after the run.
  sleep 2
  lines_before="$(wc -l <"$NGINX_LOG")"
  rm -rf "$BENCH_WORK/report"
  BENCH_LIMIT=$((duration + 60)) bench_run_bounded taskset -c 1 "$VOLLEY" run \
    "$BENCH_WORK/open.toml" --quiet --out "$BENCH_WORK/report" >"$BENCH_WORK/volley.out" 2>&1 \
    || { cat "$BENCH_WORK/volley.out" >&2; exit 1; }
  sleep 2
  summary="$BENCH_WORK/report/summary.csv"
  achieved="$(bench_csv_field "$summary" achieved_rps)"
  requests="$(bench_csv_field "$summary" requests)"
  ok="$(bench_csv_field "$summary" ok)"
  dropped="$(bench_csv_field "$summary" dropped)"
  lag="$(bench_csv_field "$summary" max_lag_ms)"
  observed="$(tail -n +"$((lines_before + 1))" "$NGINX_LOG" \
    | awk 'NR == 1 {first = $1} {last = $1} END {if (NR > 1 && last > first) printf "%.1f", (NR - 1) / (last - first); else print 0}')"
  read -r volley_error nginx_error verdict < <(awk -v a="$achieved" -v n="$observed" \
    -v r="$rate" -v t="$tolerance" 'BEGIN {
      ve = 100 * (a - r) / r; ne = 100 * (n - r) / r
      ok = (ve <= t && ve >= -t && ne <= t && ne >= -t)
      printf "%+.3f %+.3f %s\n", ve, ne, (ok ? "met" : "missed")
    }')
  printf '%8s %12.1f %12.1f %8s%% %8s%% %12s %9s %10s  %s (tolerance %s%%)\n' "$rate" "$achieved" \
    "$observed" "$volley_error" "$nginx_error" "$requests" "$dropped" "$lag" "$verdict" "$tolerance"
  if [ "$ok" != "$requests" ]; then
    echo "  $((requests - ok)) of $requests requests did not get a 2xx response" >&2
  fi
  [ "$verdict" = met ] || missed=1
done
echo "(open model, on_saturation = $on_saturation, max_in_flight = $max_in_flight, ${duration} s per rate)"
exit "$missed"
