#!/usr/bin/env bash
# client_reconnect.sh: libshunt's reconnect against a real server that dies.
# nbdkit (file plugin) is killed with SIGKILL in the middle of a verified
# `shunt bench --reconnect` run and restarted on the same port: the run must
# finish with no errors and no verification failures, having reconnected.
# Without --reconnect the same crash must fail the run clearly.
. "$(dirname "$0")/client_lib.sh"
command -v nbdkit >/dev/null || { tap_skip "reconnect" "nbdkit not installed"; tap_done; exit; }
jget() { python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))[sys.argv[2]])' "$1" "$2"; }

truncate -s 64M "$T/disk.img"
start_nbdkit file "$T/disk.img"
URI=nbd://127.0.0.1:$PORT/
"$SHUNT" bench --verify --read-percent 50 --duration 4 --queue-depth 8 -C 2 --size 4M --reconnect 20 --json "$URI" >"$T/r.json" 2>"$T/r.err" &
B=$!
sleep 1.2
kill -KILL "$NBDKIT_PID"; wait "$NBDKIT_PID" 2>/dev/null
sleep 0.3
nbdkit -f -i 127.0.0.1 -p "$PORT" file "$T/disk.img" >>"$T/nbdkit.log" 2>&1 &
_cleanup_pids+=($!)
NBDKIT_PID=$!
wait "$B"
rc=$?
tap_check "bench survived a server crash: exit $rc" test "$rc" = 0
tap_check "reconnected ($(jget "$T/r.json" reconnects) times, $(jget "$T/r.json" retried) requests retried)" \
  test "$(jget "$T/r.json" reconnects)" -ge 1
tap_check "no errors ($(jget "$T/r.json" errors)), no verify errors ($(jget "$T/r.json" verify_errors))" \
  test "$(jget "$T/r.json" errors)" = 0 -a "$(jget "$T/r.json" verify_errors)" = 0

# Without reconnect: in-flight requests fail with a clear error, exit 1.
wait_port "$PORT" 10
"$SHUNT" bench --read-percent 50 --duration 3 --queue-depth 8 --json "$URI" >"$T/n.json" 2>"$T/n.err" &
B=$!
sleep 1
kill -KILL "$NBDKIT_PID"; wait "$NBDKIT_PID" 2>/dev/null
wait "$B"
rc=$?
tap_check "without --reconnect a crash fails the run (exit $rc)" test "$rc" = 1
if grep -q "connection 0 lost" "$T/n.json"; then tap_ok "the error says the connection was lost"
else tap_fail "the error says the connection was lost"; sed 's/^/#   /' "$T/n.json"; fi
tap_check "the run stopped instead of spinning ($(jget "$T/n.json" errors) errors)" \
  test "$(jget "$T/n.json" errors)" -le 9

# shunt copy --reconnect: the server dies in the middle of a (rate-limited) copy.
stop_pid "$NBDKIT_PID"
head -c 96M /dev/urandom >"$T/src.img"
truncate -s 96M "$T/dst.img"
start_nbdkit --filter=rate file "$T/dst.img" rate=64M
"$SHUNT" copy --reconnect 20 --json "$T/src.img" "nbd://127.0.0.1:$PORT/" >"$T/c.json" 2>"$T/c.err" &
B=$!
sleep 0.7
kill -KILL "$NBDKIT_PID"; wait "$NBDKIT_PID" 2>/dev/null
sleep 0.3
nbdkit -f -i 127.0.0.1 -p "$PORT" --filter=rate file "$T/dst.img" rate=64M >>"$T/nbdkit.log" 2>&1 &
_cleanup_pids+=($!)
wait "$B"
rc=$?
tap_check "copy survived a server crash (exit $rc)" test "$rc" = 0
tap_check "the copy is complete and identical" cmp "$T/src.img" "$T/dst.img"
tap_done
