#!/usr/bin/env bash
# Crash recovery, end to end through the CLI: 300 demo.chain (5 steps), 50 demo.flaky
# (fail_times 2) and 20 demo.crash, run by two supervised `gen_durable worker` processes with
# short leases. Workers are restarted whenever they die (demo.crash kills its own process) and
# one is also killed with SIGKILL mid-run. Every instance must end `done` with the right result
# and no row may be left `executing`.
#
#   crash_recovery.sh CLI CONNINFO
set -euo pipefail
cli=$1
db=$2
work=$(mktemp -d)
stop_file=$work/stop

gd() { "$cli" --database "$db" "$@"; }

# A process supervisor in miniature: restart the worker whenever it exits, until told to stop.
supervise() {
  local name=$1
  while [[ ! -e $stop_file ]]; do
    # The binary itself, not through the gd function: $! must be the worker's pid (a function
    # in the background runs in a subshell, and signals sent to that would miss the worker).
    "$cli" --database "$db" worker --name "$name" --queues default:8 --lease-ttl 2000 \
      --heartbeat-interval 400 --poll-interval 50 --reap-interval 300 --drain-timeout 1000 \
      >>"$work/$name.log" 2>&1 &
    echo $! >"$work/$name.pid"
    wait $! || true
    echo "restart" >>"$work/$name.restarts"
  done
}

cleanup() {
  touch "$stop_file"
  sleep 0.3  # a supervisor past its stop check has started its last worker and noted its pid
  for name in a b; do
    [[ -f $work/$name.pid ]] && kill -TERM "$(cat "$work/$name.pid")" 2>/dev/null || true
  done
  wait 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

gd migrate >/dev/null
ids_chain=() ids_flaky=() ids_crash=()
for _ in $(seq 300); do ids_chain+=("$(gd insert demo.chain --state '{"steps": 5}')"); done
for _ in $(seq 50); do ids_flaky+=("$(gd insert demo.flaky --state '{"fail_times": 2}')"); done
for _ in $(seq 20); do ids_crash+=("$(gd insert demo.crash)"); done
echo "inserted ${#ids_chain[@]} chains, ${#ids_flaky[@]} flaky, ${#ids_crash[@]} crash"

supervise a &
supervise b &

# Kill worker a with SIGKILL while it is mid-run (as soon as it holds claims).
for _ in $(seq 200); do
  if [[ -f $work/a.pid ]] && gd list --status executing --limit 1 --json | grep -q .; then break; fi
  sleep 0.05
done
kill -KILL "$(cat "$work/a.pid")" 2>/dev/null || true
echo "killed worker a with SIGKILL"

deadline=$((SECONDS + 240))
while :; do
  stats=$(gd stats --json)
  live=$(jq '[.total | to_entries[] | select(.key != "done" and .key != "failed" and .key != "cancelled") | .value] | add // 0' <<<"$stats")
  [[ $live -eq 0 ]] && break
  if ((SECONDS > deadline)); then
    echo "FAIL: instances still live after 240 s: $stats"
    exit 1
  fi
  sleep 0.5
done

fail=0
check() {  # id expected-status jq-test-on-result
  local out status result
  out=$(gd show "$1" --json)
  status=$(jq -r .status <<<"$out")
  result=$(jq -cS .result <<<"$out")
  if [[ $status != "$2" ]] || ! jq -e "$3" <<<"$result" >/dev/null; then
    echo "FAIL: instance $1: status $status result $result (want $2, $3)"
    fail=1
  fi
}
# A chain always counts its 5 steps. A flaky job succeeds on its third run unless a worker died
# under it (another demo.crash in the same process), which adds a run; likewise a crash job
# completes on its second run or later.
for id in "${ids_chain[@]}"; do check "$id" done '.steps == 5'; done
for id in "${ids_flaky[@]}"; do check "$id" done '.attempts >= 3 and .attempts <= 5'; done
for id in "${ids_crash[@]}"; do check "$id" done '.attempts >= 2 and .attempts <= 5'; done
executing=$(gd list --status executing --json | wc -l)
if [[ $executing -ne 0 ]]; then
  echo "FAIL: $executing rows left executing"
  fail=1
fi
restarts=$(cat "$work"/*.restarts 2>/dev/null | wc -l)
echo "stats: $(gd stats --json)"
echo "worker restarts: $restarts"
# One demo.crash exit can take several in-flight crash rows down with it, so deaths are fewer than
# 21; each crash row's result {attempts: 2} above shows it died once and was recovered.
if ((restarts < 2)); then
  echo "FAIL: expected at least 2 worker deaths (a crash and the SIGKILL), saw $restarts"
  fail=1
fi
[[ $fail -eq 0 ]] && echo "PASS: 370 instances done with the right results, none executing"
exit $fail
