#!/usr/bin/env bash
# vhost_drain.sh: SIGTERM lets every request `shunt vhost` took finish before the
# frontend's connection closes.  The in-tree frontend runs verified I/O (2 queues,
# QD 32, an inflight region) and checks at each close that the back end left none of
# the requests it took unanswered (they would be marked in the inflight region); it
# then reconnects to a back end started again on the same socket, which serves what
# the first never took, and the reads go on verifying every write.  Round 1 stops the
# back end with requests held by the scheduler (limit-iops), round 2 with requests on
# the disk.  Each back end exits 0 and none has requests left to resubmit.
. "$(dirname "$0")/../lib.sh"
need_deps
. "$(dirname "$0")/vhost_lib.sh"

img=$T/disk.img sock=$T/d.sock
truncate -s 64M "$img"
start_vhost --threads 2 "$sock=$img,queues=2,limit-iops=400" ||
  { tap_fail "shunt vhost starts"; tap_finish; exit; }
timeout 180 "$FE" --verify --inflight --reconnect --check-close --min-reconnects 2 --queues 2 --qd 32 \
  --requests 3000 --assume-zero --timeout 30 --ready-file "$T/ready" "$sock" >"$T/fe.json" 2>"$T/fe.err" &
fe_pid=$!
_cleanup_pids+=("$fe_pid")
for ((i = 0; i < 200; i++)); do [ -e "$T/ready" ] && break; sleep 0.05; done
tap_check "the frontend's first requests completed" test -e "$T/ready"
for round in 1 2; do
  sleep 0.5
  tap_check "round $round: SIGTERM with requests in flight: exit 0" stop_shunt_within 20
  if [ "$round" = 1 ]; then
    start_vhost --threads 2 "$sock=$img,queues=2"
  else
    start_vhost --threads 2 "$sock=$img,queues=2,limit-iops=400"
  fi
  tap_check "round $round: shunt vhost started again on the socket" shunt_alive
done
wait "$fe_pid"
rc=$?
tap_check "the frontend finished: status 0, every read verified" \
  bash -c "[ $rc -eq 0 ] && grep -q '\"result\":\"ok\"' '$T/fe.json'"
tap_check "... and found, at both closes, every request the back end took answered" \
  grep -q '"closes_checked":2' "$T/fe.json"
tap_check "no back end found requests left in flight to resubmit" \
  bash -c "! grep -q 'resubmitting' '$T/shunt.log'"
tap_check "the last back end: SIGTERM exits 0" stop_shunt_within 20
[ "$rc" -eq 0 ] || { sed 's/^/# /' "$T/fe.err" | tail -20; cat "$T/fe.json"; }
tap_finish
