#!/usr/bin/env bash
# Measures the throughput cost of `volley run --jtl` against one nginx on loopback.
#
# nginx (one worker, pinned to CPU 0) responds to every POST with a fixed JSON body. volley runs
# pinned to CPU 1, closed model, 50 workers, for --duration seconds, once without and once with
# --jtl in each round; the order alternates from round to round. Each --jtl run must write one
# row per request, or the script stops.
#
# Usage: benches/jtl-cost.sh [--duration SECONDS] [--rounds N]
#   --duration  seconds per run (default 10)
#   --rounds    runs per setting (default 3)
#
# Prints one line per run, the median ratio `jtl/plain throughput ratio: X.XX` and volley's
# median CPU seconds per 100,000 requests with and without --jtl. "other load"
# is the share of both CPUs used by processes other than nginx and volley: well above 0% means
# the machine was busy and the figures are noisy.
# Installs nginx, util-linux (taskset) and GNU time with apt-get when missing.

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
if ! [[ "$duration" =~ ^[0-9]+$ && "$duration" -ge 1 && "$rounds" =~ ^[0-9]+$ && "$rounds" -ge 1 ]]; then
  echo "invalid --duration $duration or --rounds $rounds: use whole numbers from 1" >&2
  exit 2
fi

# shellcheck source=benches/lib.sh
source benches/lib.sh
bench_init

bench_require nginx-light:/usr/sbin/nginx util-linux:taskset time:/usr/bin/time
if [ "$(nproc)" -lt 2 ]; then
  echo "this benchmark pins nginx and volley to two different CPUs; nproc is $(nproc)" >&2
  exit 1
fi
bench_build_volley
bench_start_nginx
work="$BENCH_WORK"
nginx_pid="$(cat "/proc/$NGINX_PID/task/$NGINX_PID/children")"
nginx_pid="${nginx_pid%% *}"

cat >"$work/volley.toml" <<TOML
name = "jtl-cost"
[target]
url = "$NGINX_BASE"
[request]
method = "POST"
path = "/api/v2/integrations/actions/demo-action/execute"
headers = { "content-type" = "application/json" }
body = '{"id":"{{uuid}}","seq":{{seq}},"org_id":"22222222-2222-4222-8222-222222222222"}'
[load]
model = "closed"
concurrency = 50
ramp_up = "0s"
duration = "${duration}s"
TOML

# Prints the CPU ticks (user + system) of process $1 and its threads.
process_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
# Prints busy and total ticks summed over CPU 0 and CPU 1 (columns of /proc/stat).
cpu_ticks() {
  awk '$1 == "cpu0" || $1 == "cpu1" {busy += $2 + $3 + $4 + $7 + $8 + $9; total += $2 + $3 + $4 + $5 + $6 + $7 + $8 + $9}
       END {print busy, total}' /proc/stat
}
hz="$(getconf CLK_TCK)"

results="$work/results.tsv"
: >"$results"

# Runs volley once as setting $1 with the extra flags that follow, and appends
# "setting rps requests cpu_s other_load" to the results.
run_volley() {
  local setting="$1" report="$work/report"
  shift
  rm -rf "$report"

  local nginx_before busy_before total_before
  nginx_before="$(process_ticks "$nginx_pid")"
  read -r busy_before total_before <<<"$(cpu_ticks)"
  local status=0
  BENCH_LIMIT=$((duration + 60)) bench_run_bounded \
    /usr/bin/time -f '%U %S' -o "$work/time" taskset -c 1 \
    "$VOLLEY" run "$work/volley.toml" --quiet --out "$report" "$@" >"$work/volley.out" 2>&1 || status=$?

  local nginx_after busy_after total_after
  nginx_after="$(process_ticks "$nginx_pid")"
  read -r busy_after total_after <<<"$(cpu_ticks)"
  if [ "$status" -ne 0 ]; then
    echo "volley $setting exited with status $status; its output:" >&2
    cat "$work/volley.out" >&2
    exit 1
  fi
  local rps requests ok
  rps="$(bench_csv_field "$report/summary.csv" achieved_rps)"
  requests="$(bench_csv_field "$report/summary.csv" requests)"
  ok="$(bench_csv_field "$report/summary.csv" ok)"
  if [ "$ok" != "$requests" ]; then
    echo "volley $setting got $((requests - ok)) failed requests, so the run did not measure the success path" >&2
    exit 1
  fi
  if [ "$setting" = jtl ]; then
    local rows
    rows="$(($(wc -l <"$report/results.jtl") - 1))"
    if [ "$rows" != "$requests" ]; then
      echo "results.jtl has $rows rows for $requests requests" >&2
      exit 1
    fi
  fi
  local user_s system_s
  read -r user_s system_s <"$work/time"
  awk -v setting="$setting" -v rps="$rps" -v requests="$requests" -v user="$user_s" -v sys="$system_s" \
    -v nginx="$((nginx_after - nginx_before))" -v busy="$((busy_after - busy_before))" \
    -v total="$((total_after - total_before))" -v hz="$hz" \
    'BEGIN {
      other = 100 * (busy / hz - nginx / hz - user - sys) / (total / hz)
      printf "%s\t%.0f\t%d\t%.2f\t%.0f\n", setting, rps, requests, user + sys, (other < 0 ? 0 : other)
    }' >>"$results"
  tail -n 1 "$results" | awk -F'\t' -v round="$round" '{
    printf "round %s %-5s %9.0f req/s %9d requests, volley cpu %5.2f s, other load %2.0f%%\n",
      round, $1, $2, $3, $4, $5
  }'
}

echo "nginx at $NGINX_BASE (CPU 0), volley on CPU 1, $rounds rounds of ${duration} s"
for round in $(seq 1 "$rounds"); do
  if [ $((round % 2)) -eq 1 ]; then
    run_volley plain
    run_volley jtl --jtl
  else
    run_volley jtl --jtl
    run_volley plain
  fi
done

column_median() { awk -F'\t' -v setting="$1" -v column="$2" '$1 == setting {print $column}' "$results" | bench_median; }
# volley's CPU seconds per 100,000 requests; other processes on the CPUs move it less than req/s.
cost_median() { awk -F'\t' -v setting="$1" '$1 == setting {print 100000 * $4 / $3}' "$results" | bench_median; }
plain="$(column_median plain 2)"
jtl="$(column_median jtl 2)"
echo
printf 'median req/s: plain %.0f, jtl %.0f; other load median %s%%\n' "$plain" "$jtl" \
  "$(awk -F'\t' '{print $5}' "$results" | bench_median)"
printf 'median volley CPU s per 100k requests: plain %.2f, jtl %.2f (jtl/plain %.3f)\n' \
  "$(cost_median plain)" "$(cost_median jtl)" \
  "$(awk -v j="$(cost_median jtl)" -v p="$(cost_median plain)" 'BEGIN {print j / p}')"
# The ratio of medians and the median of the per-round ratios, which pairs runs made close in time.
awk -v j="$jtl" -v p="$plain" 'BEGIN {printf "jtl/plain throughput ratio: %.3f\n", j / p}'
paste <(awk -F'\t' '$1 == "jtl" {print $2}' "$results") <(awk -F'\t' '$1 == "plain" {print $2}' "$results") |
  awk '{print $1 / $2}' | bench_median | awk '{printf "median per-round ratio: %.3f\n", $1}'
