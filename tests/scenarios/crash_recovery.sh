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
# Four inserts at a time: one process per insert took over 100 s on a busy 2-core machine.
insert_n() {  # count fsm [insert flags...]: prints one id per line
  local n=$1
  shift
  seq "$n" | xargs -P 4 -I{} "$cli" --database "$db" insert "$@"
}
mapfile -t ids_chain < <(insert_n 300 demo.chain --state '{"steps": 5}')
mapfile -t ids_flaky < <(insert_n 50 demo.flaky --state '{"fail_times": 2}')
mapfile -t ids_crash < <(insert_n 20 demo.crash)
if ((${#ids_chain[@]} != 300 || ${#ids_flaky[@]} != 50 || ${#ids_crash[@]} != 20)); then
  echo "FAIL: inserts printed ${#ids_chain[@]}, ${#ids_flaky[@]}, ${#ids_crash[@]} ids"
  exit 1
fi
echo "inserted ${#ids_chain[@]} chains, ${#ids_flaky[@]} flaky, ${#ids_crash[@]} crash in ${SECONDS} s"

supervise a &
supervise b &

# Kill worker a with SIGKILL while it is mid-run (as soon as it holds claims).
for _ in $(seq 200); do
  if [[ -f $work/a.pid ]] && gd list --status executing --limit 1 --json | grep -q .; then break; fi
  sleep 0.05
done
kill -KILL "$(cat "$work/a.pid")" 2>/dev/null || true
echo "killed worker a with SIGKILL"

# Within the test's 300 s (SECONDS counts from the script's start), so a slow run reports its
# state instead of being cut off silently.
deadline=270
while :; do
  stats=$(gd stats --json)
  live=$(jq '[.total | to_entries[] | select(.key != "done" and .key != "failed" and .key != "cancelled") | .value] | add // 0' <<<"$stats")
  [[ $live -eq 0 ]] && echo "every instance ended at ${SECONDS} s" && break
  if ((SECONDS > deadline)); then
    echo "FAIL: instances still live after ${SECONDS} s: $stats"
    exit 1
  fi
  sleep 0.5
done

fail=0
# One listing per machine (a `show` per instance took minutes on a busy machine): the machine's
# rows must be exactly the ids inserted, each done with a result passing the jq test.
check_all() {  # fsm jq-test-on-result ids...
  local fsm=$1 test=$2 rows bad
  shift 2
  rows=$(gd list --fsm "$fsm" --limit 1000 --json)
  if [[ $(jq -r .id <<<"$rows" | sort -n) != $(printf '%s\n' "$@" | sort -n) ]]; then
    echo "FAIL: the $fsm rows are not the ids inserted"
    fail=1
  fi
  bad=$(jq -c "select(.status != \"done\" or ((.result | $test) | not)) | {id, status, result}" \
    <<<"$rows")
  if [[ -n $bad ]]; then
    echo "FAIL: $fsm instances not done with a result passing ($test):"
    echo "$bad"
    fail=1
  fi
}
# A chain always counts its 5 steps. A flaky job succeeds on its third run unless a worker died
# under it (another demo.crash in the same process), which adds a run; likewise a crash job
# completes on its second run or later.
check_all demo.chain '.steps == 5' "${ids_chain[@]}"
check_all demo.flaky '.attempts >= 3 and .attempts <= 5' "${ids_flaky[@]}"
check_all demo.crash '.attempts >= 2 and .attempts <= 5' "${ids_crash[@]}"
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
