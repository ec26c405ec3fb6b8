#!/usr/bin/env bash
# Compares volley's closed-model throughput and cost with wrk, oha and hey against one nginx.
#
# nginx (one worker, pinned to CPU 0) responds to every POST with a fixed JSON body from a
# `return 200` location. Each generator runs pinned to CPU 1 with 50 keep-alive connections
# and a ~200-byte JSON body for --duration seconds. The tools take turns within a round, and
# the order rotates from round to round so that none always runs first after a build or idle
# time. Each run is wrapped in /usr/bin/time -v for peak RSS and CPU seconds.
#
# Usage: benches/compare.sh [--duration SECONDS] [--rounds N] [--tools "T ..."] [--baseline BINARY]
#   --duration  seconds per run (default 10)
#   --rounds    runs per tool (default 3)
#   --tools     the tools to run, from wrk, oha, hey and volley (default all four); the ratio
#               lines need wrk, oha and volley
#   --baseline  another volley binary, such as a build of an earlier commit, run as the tool
#               "baseline" in the same rotation for a before/after comparison
#
# Prints one line per run, a table of medians per tool, and the two ratio lines
# `volley/wrk throughput ratio: X.XX` and `volley/oha throughput ratio: X.XX`.
# "nginx cpu" near 100% means nginx, not the generator, limited that run. "other load" is
# the share of both CPUs used by processes other than nginx and the generator: well above 0%
# means the machine was busy and the run's figure is too low.
# Installs nginx, wrk, hey and GNU time with apt-get and oha with cargo when missing.

set -euo pipefail
cd "$(dirname "$0")/.."

duration=10
rounds=3
baseline=""
tools=(wrk oha hey volley)
while [ $# -gt 0 ]; do
  case "$1" in
    --duration) duration="$2"; shift 2 ;;
    --rounds) rounds="$2"; shift 2 ;;
    --baseline) baseline="$2"; shift 2 ;;
    --tools) read -r -a tools <<<"$2"; shift 2 ;;
    *) echo "unknown option $1; use --duration SECONDS, --rounds N, --tools \"T ...\" and --baseline BINARY" >&2; exit 2 ;;
  esac
done
for tool in "${tools[@]}"; do
  case "$tool" in
    wrk | oha | hey | volley) ;;
    *) echo "unknown tool $tool in --tools; use wrk, oha, hey and volley" >&2; exit 2 ;;
  esac
done
if [ "${#tools[@]}" -eq 0 ]; then
  echo "--tools is empty; name at least one of wrk, oha, hey and volley" >&2
  exit 2
fi
if [ -n "$baseline" ] && [ ! -x "$baseline" ]; then
  echo "the baseline binary $baseline is missing or not executable" >&2
  exit 2
fi
if ! [[ "$duration" =~ ^[0-9]+$ && "$duration" -ge 1 && "$rounds" =~ ^[0-9]+$ && "$rounds" -ge 1 ]]; then
  echo "invalid --duration $duration or --rounds $rounds: use whole numbers from 1" >&2
  exit 2
fi

# shellcheck source=benches/lib.sh
source benches/lib.sh
bench_init

bench_require nginx-light:/usr/sbin/nginx wrk:wrk hey:hey time:/usr/bin/time util-linux:taskset
if ! command -v oha >/dev/null; then
  echo "installing oha with cargo (takes a few minutes)"
  cargo install oha --locked --quiet
fi
if [ "$(nproc)" -lt 2 ]; then
  echo "this benchmark pins nginx and the generator to two different CPUs; nproc is $(nproc)" >&2
  exit 1
fi
bench_build_volley
bench_start_nginx
work="$BENCH_WORK"
url="$NGINX_URL"
# The master process only starts the worker, which handles the requests.
nginx_pid="$(cat "/proc/$NGINX_PID/task/$NGINX_PID/children")"
nginx_pid="${nginx_pid%% *}"

# --- request bodies ------------------------------------------------------------------------

# wrk, oha and hey send one fixed body. volley renders the same shape with a fresh UUID and
# sequence number per request, so its body is a few bytes shorter at low sequence numbers.
fixed_body='{"id":"0f8fad5b-d9cb-469f-a165-70867728950e","seq":1234567,"org_id":"22222222-2222-4222-8222-222222222222","phone":"+15551234567","customer":{"id":"c-000123","tier":"gold","segments":["retail","emea"]}}'
template_body='{"id":"{{uuid}}","seq":{{seq}},"org_id":"22222222-2222-4222-8222-222222222222","phone":"+15551234567","customer":{"id":"c-000123","tier":"gold","segments":["retail","emea"]}}'
printf '%s' "$fixed_body" >"$work/body.json"

cat >"$work/post.lua" <<LUA
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.body = '$fixed_body'
LUA

write_scenario() {
  cat >"$work/volley.toml" <<TOML
name = "compare"
[target]
url = "$NGINX_BASE"
[request]
method = "POST"
path = "/api/v2/integrations/actions/demo-action/execute"
headers = { "content-type" = "application/json" }
body = '$template_body'
[load]
model = "closed"
concurrency = 50
ramp_up = "0s"
duration = "${duration}s"
TOML
}
write_scenario

# --- one run -------------------------------------------------------------------------------

# Prints the CPU ticks (user + system) of process $1.
process_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
# Prints busy and total ticks summed over CPU 0 and CPU 1 (columns of /proc/stat).
cpu_ticks() {
  awk '$1 == "cpu0" || $1 == "cpu1" {busy += $2 + $3 + $4 + $7 + $8 + $9; total += $2 + $3 + $4 + $5 + $6 + $7 + $8 + $9}
       END {print busy, total}' /proc/stat
}
hz="$(getconf CLK_TCK)"

# Value of "Label: value" in a GNU time -v report.
time_field() { awk -F': ' -v key="$2" '$1 ~ key {print $2}' "$1"; }

results="$work/results.tsv"
: >"$results"

# Runs tool $1 once and appends "tool rps requests errors rss_mb cpu_s nginx_cpu other" to
# the results.
run_tool() {
  local tool="$1" out="$work/$1.out" timing="$work/$1.time" command=()
  case "$tool" in
    wrk) command=(wrk -t1 -c50 -d"${duration}s" -s "$work/post.lua" "$url") ;;
    oha) command=(oha -z "${duration}s" -c 50 -m POST -T application/json -D "$work/body.json"
      --no-tui --output-format json "$url") ;;
    hey) command=(hey -z "${duration}s" -c 50 -m POST -T application/json -D "$work/body.json" "$url") ;;
    volley | baseline)
      rm -rf "$work/report"
      local binary="$VOLLEY"
      [ "$tool" = baseline ] && binary="$baseline"
      command=("$binary" run "$work/volley.toml" --quiet --out "$work/report")
      ;;
  esac
  local nginx_before busy_before total_before started ended
  nginx_before="$(process_ticks "$nginx_pid")"
  read -r busy_before total_before <<<"$(cpu_ticks)"
  started="$(date +%s.%N)"
  # The time limit is a safety net: every tool stops by itself after --duration.
  local status=0
  BENCH_LIMIT=$((duration + 60)) bench_run_bounded \
    /usr/bin/time -v -o "$timing" taskset -c 1 "${command[@]}" >"$out" 2>&1 || status=$?
  ended="$(date +%s.%N)"
  local nginx_after busy_after total_after
  nginx_after="$(process_ticks "$nginx_pid")"
  read -r busy_after total_after <<<"$(cpu_ticks)"
  if [ "$status" -ne 0 ]; then
    echo "$tool exited with status $status; its output:" >&2
    cat "$out" >&2
    exit 1
  fi

  local rps requests errors
  case "$tool" in
    wrk)
      rps="$(awk '/^Requests\/sec:/ {print $2}' "$out")"
      requests="$(awk '/requests in/ {print $1}' "$out")"
      errors="$(awk '/Non-2xx or 3xx responses:/ {n = $NF} /Socket errors:/ {for (i = 1; i <= NF; i++) if ($i ~ /^[0-9]+,?$/) n += $i} END {print n + 0}' "$out")"
      ;;
    oha)
      # oha counts the requests still in flight at the deadline as "aborted due to deadline"
      # errors and includes them in requestsPerSec; both leave them out here, like wrk.
      read -r rps requests errors < <(python3 -c '
import json, sys
report = json.load(open(sys.argv[1]))
codes = report.get("statusCodeDistribution", {})
ok = sum(count for code, count in codes.items() if code.startswith("2"))
errors = report.get("errorDistribution", {})
failed = sum(codes.values()) - ok + sum(n for kind, n in errors.items() if kind != "aborted due to deadline")
print(ok / report["summary"]["total"], ok + failed, failed)' "$out")
      ;;
    hey)
      rps="$(awk '/Requests\/sec:/ {print $2}' "$out")"
      # Status lines read "  [200]<tab>N responses"; error lines "  [N]<tab>message".
      read -r requests errors < <(awk '
        /^Status code distribution:/ {section = "status"; next}
        /^Error distribution:/ {section = "error"; next}
        /^  \[[0-9]+\]/ {
          number = $1; gsub(/[][]/, "", number)
          if (section == "status") {all += $2; if (number != "200") failed += $2}
          if (section == "error") {all += number; failed += number}
        }
        END {print all + 0, failed + 0}' "$out")
      ;;
    volley | baseline)
      rps="$(bench_csv_field "$work/report/summary.csv" achieved_rps)"
      requests="$(bench_csv_field "$work/report/summary.csv" requests)"
      errors="$((requests - $(bench_csv_field "$work/report/summary.csv" ok)))"
      ;;
  esac
  local rss_kb user_s system_s
  rss_kb="$(time_field "$timing" 'Maximum resident set size')"
  user_s="$(time_field "$timing" 'User time')"
  system_s="$(time_field "$timing" 'System time')"
  awk -v tool="$tool" -v rps="$rps" -v requests="$requests" -v errors="$errors" \
    -v rss="$rss_kb" -v user="$user_s" -v sys="$system_s" \
    -v nginx="$((nginx_after - nginx_before))" -v busy="$((busy_after - busy_before))" \
    -v total="$((total_after - total_before))" -v hz="$hz" -v s="$started" -v e="$ended" \
    'BEGIN {
      cpu = user + sys
      nginx_cpu = 100 * nginx / hz / (e - s)
      other = 100 * (busy / hz - nginx / hz - cpu) / (total / hz)
      printf "%s\t%.0f\t%d\t%d\t%.1f\t%.2f\t%.0f\t%.0f\n", tool, rps, requests, errors,
        rss / 1024, cpu, nginx_cpu, (other < 0 ? 0 : other)
    }' >>"$results"
  tail -n 1 "$results" | awk -F'\t' -v round="$round" '{
    printf "round %s %-6s %9.0f req/s %9d requests %d errors, peak RSS %5.1f MB, cpu %5.2f s, nginx cpu %3.0f%%, other load %2.0f%%\n",
      round, $1, $2, $3, $4, $5, $6, $7, $8
  }'
  if [ "$errors" != "0" ]; then
    echo "$tool got $errors failed requests, so the run did not measure the success path" >&2
    exit 1
  fi
}

[ -n "$baseline" ] && tools+=(baseline)
echo "nginx at $NGINX_BASE (CPU 0), generators on CPU 1, $rounds rounds of ${duration} s"
for round in $(seq 1 "$rounds"); do
  for offset in $(seq 0 $((${#tools[@]} - 1))); do
    run_tool "${tools[$(((round - 1 + offset) % ${#tools[@]}))]}"
  done
done

# --- medians -------------------------------------------------------------------------------

median() { bench_median; }
column_median() { awk -F'\t' -v tool="$1" -v column="$2" '$1 == tool {print $column}' "$results" | median; }
# CPU seconds per 100,000 requests of each run.
cost_median() { awk -F'\t' -v tool="$1" '$1 == tool {print 100000 * $6 / $3}' "$results" | median; }

has_tool() { printf '%s\n' "${tools[@]}" | grep -qx "$1"; }
wrk_rps=""
has_tool wrk && wrk_rps="$(column_median wrk 2)"
echo
printf '%-8s %10s %13s %13s %16s\n' tool 'req/s' 'share of wrk' 'peak RSS MB' 'CPU s/100k req'
for tool in "${tools[@]}"; do
  rps="$(column_median "$tool" 2)"
  printf '%-8s %10.0f %12.1f%% %13.1f %16.2f\n' "$tool" "$rps" \
    "$(awk -v a="$rps" -v b="$wrk_rps" 'BEGIN {print (b > 0 ? 100 * a / b : 0)}')" \
    "$(column_median "$tool" 5)" "$(cost_median "$tool")"
done
echo "(medians over $rounds rounds of ${duration} s; nginx cpu median $(awk -F'\t' '{print $7}' "$results" | median)%, other load median $(awk -F'\t' '{print $8}' "$results" | median)%)"
echo
if has_tool volley && has_tool wrk; then
  awk -v v="$(column_median volley 2)" -v w="$wrk_rps" 'BEGIN {printf "volley/wrk throughput ratio: %.2f\n", v / w}'
fi
if has_tool volley && has_tool oha; then
  awk -v v="$(column_median volley 2)" -v o="$(column_median oha 2)" 'BEGIN {printf "volley/oha throughput ratio: %.2f\n", v / o}'
fi
