#!/usr/bin/env bash
# client_failover.sh: libshunt's failover across gateways of one shared disk.
# Two `shunt serve` processes export the same file; a client given both URIs
# (shunt copy --dst-failover, shunt bench --failover) keeps writing while the
# first gateway is killed with SIGKILL: it finishes without error and the file
# holds exactly what was written.  The same with nbdkit as the second gateway
# (no extended headers there), and a second gateway whose export has another
# size is refused with a clear error.
. "$(dirname "$0")/client_lib.sh"
jget() { python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))[sys.argv[2]])' "$1" "$2"; }

# gateway FILE [OPTS]: `shunt serve` exporting FILE as "disk"; sets PORT, SHUNT_PID.
gateway() { start_shunt "$(export_arg disk "$1" "${2:-}")"; }

# kill_during PID NAME DELAY: after DELAY seconds, SIGKILL gateway PID (NAME)
# and check that the client ($B) was still running then.
kill_during() {
  sleep "$3"
  if kill -0 "$B" 2>/dev/null; then KILLED_DURING=1; else KILLED_DURING=0; fi
  kill -KILL "$1" 2>/dev/null; wait "$1" 2>/dev/null
  tap_check "$2 was killed while the client was still writing" test "$KILLED_DURING" = 1
}

# ---- shunt copy into the shared disk: gateway 1 dies mid-copy ----
truncate -s 64M "$T/disk.img"
head -c 64M /dev/urandom >"$T/src.img"
# The bandwidth limit (per connection) keeps the copy running for about two
# seconds per gateway.
gateway "$T/disk.img" limit-bw=16M || { tap_fail "gateway 1 starts"; tap_done; exit 1; }
P1=$PORT G1=$SHUNT_PID
gateway "$T/disk.img" limit-bw=16M || { tap_fail "gateway 2 starts"; tap_done; exit 1; }
P2=$PORT G2=$SHUNT_PID
"$SHUNT" copy -C 2 --flush --dst-failover "nbd://127.0.0.1:$P2/disk" \
  "$T/src.img" "nbd://127.0.0.1:$P1/disk" >"$T/copy.out" 2>&1 &
B=$!
kill_during "$G1" "gateway 1 (shunt serve)" 0.7
wait "$B"; rc=$?
tap_check "shunt copy finished through gateway 2 (exit $rc)" test "$rc" = 0
[ "$rc" = 0 ] || sed 's/^/#   /' "$T/copy.out"
tap_check "the shared disk holds exactly the source" cmp "$T/src.img" "$T/disk.img"

# ---- shunt bench --verify: reads check every acknowledged write ----
gateway "$T/disk.img" || { tap_fail "gateway 3 starts"; tap_done; exit 1; }
P3=$PORT G3=$SHUNT_PID
"$SHUNT" bench --verify --read-percent 50 --duration 4 --queue-depth 16 -C 2 --size 8M --json \
  --failover "nbd://127.0.0.1:$P2/disk" "nbd://127.0.0.1:$P3/disk" >"$T/b.json" 2>"$T/b.err" &
B=$!
kill_during "$G3" "gateway 3 (shunt serve)" 1.2
wait "$B"; rc=$?
tap_check "bench --verify survived the gateway's death (exit $rc)" test "$rc" = 0
if [ -s "$T/b.json" ]; then
  tap_check "failed over ($(jget "$T/b.json" failovers) connections, $(jget "$T/b.json" retried) requests resent)" \
    test "$(jget "$T/b.json" failovers)" -ge 1
  tap_check "no errors ($(jget "$T/b.json" errors)), no verify errors ($(jget "$T/b.json" verify_errors))" \
    test "$(jget "$T/b.json" errors)" = 0 -a "$(jget "$T/b.json" verify_errors)" = 0
else
  tap_fail "bench printed its report"; sed 's/^/#   /' "$T/b.err"
fi

# ---- nbdkit as the second gateway ----
if command -v nbdkit >/dev/null; then
  head -c 64M /dev/urandom >"$T/src2.img"
  start_nbdkit file "$T/disk.img"
  PN=$PORT
  gateway "$T/disk.img" limit-bw=16M || { tap_fail "gateway 4 starts"; tap_done; exit 1; }
  P4=$PORT G4=$SHUNT_PID
  "$SHUNT" copy -C 2 --flush --dst-failover "nbd://127.0.0.1:$PN/" \
    "$T/src2.img" "nbd://127.0.0.1:$P4/disk" >"$T/copy2.out" 2>&1 &
  B=$!
  kill_during "$G4" "gateway 4 (shunt serve, extended headers)" 0.7
  wait "$B"; rc=$?
  tap_check "shunt copy finished through nbdkit (structured replies only) (exit $rc)" test "$rc" = 0
  [ "$rc" = 0 ] || sed 's/^/#   /' "$T/copy2.out"
  tap_check "the shared disk holds exactly the second source" cmp "$T/src2.img" "$T/disk.img"
  stop_pid "$NBDKIT_PID"
else
  tap_skip "nbdkit as the second gateway" "nbdkit not installed"
fi

# ---- a second gateway whose export has another size: refused ----
truncate -s 32M "$T/other.img"
gateway "$T/other.img" || { tap_fail "gateway with another disk starts"; tap_done; exit 1; }
P5=$PORT
gateway "$T/disk.img" || { tap_fail "gateway 6 starts"; tap_done; exit 1; }
P6=$PORT G6=$SHUNT_PID
"$SHUNT" bench --read-percent 50 --duration 3 --queue-depth 8 --json --reconnect 3 \
  --failover "nbd://127.0.0.1:$P5/disk" "nbd://127.0.0.1:$P6/disk" >"$T/s.json" 2>"$T/s.err" &
B=$!
sleep 1
kill -KILL "$G6"; wait "$G6" 2>/dev/null
wait "$B"; rc=$?
tap_check "a gateway with another size fails the run (exit $rc)" test "$rc" = 1
if grep -q "nbd://127.0.0.1:$P5/disk: refused: export size 33554432 differs from 67108864" "$T/s.json" "$T/s.err"; then
  tap_ok "the error names the gateway and both sizes"
else
  tap_fail "the error names the gateway and both sizes"; sed 's/^/#   /' "$T/s.json" "$T/s.err"
fi
tap_done
