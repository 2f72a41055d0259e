#!/usr/bin/env bash
# vhost_restart.sh: `shunt vhost` killed (SIGKILL) in the middle of verified I/O and
# started again on the same socket, three times: the in-tree frontend reconnects as
# qemu does with reconnect=1 (same guest memory and in-flight region, rings
# restarted at their used index); the new back end resubmits what the in-flight
# region lists, and every request completes with the right data (reads verified).
# Without an in-flight region a restart would lose the requests in flight.
. "$(dirname "$0")/../lib.sh"
need_deps
. "$(dirname "$0")/vhost_lib.sh"

img=$T/disk.img sock=$T/r.sock
truncate -s 64M "$img"
start_vhost --threads 2 "$sock=$img,queues=2" || { tap_fail "shunt vhost started"; tap_done; exit; }
timeout 180 "$FE" --verify --inflight --reconnect --min-reconnects 3 --queues 2 --qd 32 \
  --requests 20000 --assume-zero --timeout 30 --ready-file "$T/ready" "$sock" >"$T/fe.json" 2>"$T/fe.err" &
fe_pid=$!
_cleanup_pids+=("$fe_pid")
for ((i = 0; i < 100; i++)); do [ -e "$T/ready" ] && break; sleep 0.05; done
tap_check "the frontend's first requests completed" test -e "$T/ready"
for round in 1 2 3; do
  sleep 0.3
  kill -KILL "$SHUNT_PID"; wait "$SHUNT_PID" 2>/dev/null
  tap_check "restart $round: the stale socket of the killed process is still there" test -S "$sock"
  start_vhost --threads 2 "$sock=$img,queues=2"
  sleep 0.2
  tap_check "restart $round: a new shunt vhost runs on the same socket" shunt_alive
done
wait "$fe_pid"
rc=$?
tap_check "the frontend finished: status 0" test "$rc" -eq 0
tap_check "... every request verified, summary ok" grep -q '"result":"ok"' "$T/fe.json"
tap_check "... after 3 reconnects" grep -q '"reconnects":3' "$T/fe.json"
tap_check "the back ends resubmitted requests left in flight" grep -q "resubmitting [0-9]* requests left in flight" "$T/shunt.log"
tap_check "SIGTERM exits 0" stop_shunt_within 20
[ "$rc" -eq 0 ] || { sed 's/^/# /' "$T/fe.err" | tail -20; cat "$T/fe.json"; }
tap_finish
