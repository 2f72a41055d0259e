#!/usr/bin/env bash
# rbd_failover.sh: a libshunt client fails over between `shunt serve` gateways
# of one RBD image (backend=rbd, the default lock=auto).  Gateway 1 is killed
# with SIGKILL while `shunt copy --dst-failover` writes through it (a bandwidth
# limit keeps the copy running); the copy finishes through gateway 2 with exit
# 0, gateway 2 wrote the rest (its stats), and the image read through Ceph
# itself (`rbd export`) equals the source: nothing acknowledged is lost.  The
# dead gateway's exclusive lock passes to gateway 2 once librbd breaks it (the
# dead client's watch expires; librbd blocklists it): the wait is bounded and
# reported.  Then the same with `shunt bench --verify --failover`, and once more
# with the operator breaking the dead gateway's lock at once (`rbd lock rm`).
. "$(dirname "$0")/../lib.sh"
. "$(dirname "$0")/rbd_lib.sh"
need_deps
rbd_require

img=$(rbd_image failover 64M) || { tap_fail "rbd create"; tap_done; exit 1; }

# serve NAME SPEC...: a gateway of its own with a control socket; sets NAME_PORT and NAME_PID.
serve() {
  local name=$1 port; shift
  port=$(free_port)
  "$SHUNT" serve --listen "127.0.0.1:$port" --control "$T/$name.ctl" "$@" >>"$T/$name.log" 2>&1 &
  _cleanup_pids+=($!)
  eval "${name}_PORT=$port ${name}_PID=$!"
  wait_port "$port" 30 || { echo "gateway $name did not start:"; cat "$T/$name.log"; return 1; }
}

# written NAME: the bytes gateway NAME's export "d" has written (shunt stats --json).
written() {
  "$SHUNT" stats --control "$T/$1.ctl" --json | /usr/bin/python3 -c '
import json, sys
print(json.load(sys.stdin)["exports"][0]["bytes_written"])'
}

# lock_owner SPEC: the address holding the image's exclusive lock (empty when none).
lock_owner() {
  timeout 30 rbd lock ls --format json "$1" 2>/dev/null | /usr/bin/python3 -c '
import json, sys
l = json.load(sys.stdin)
l = list(l.values()) if isinstance(l, dict) else l
print(l[0]["address"] if l else "")'
}

# watchers SPEC: the addresses watching the image, one a line.
watchers() {
  timeout 30 rbd status --format json "$1" 2>/dev/null | /usr/bin/python3 -c '
import json, sys
for w in json.load(sys.stdin)["watchers"]:
    print(w["address"])'
}

# kill_during NAME PID DELAY: after DELAY seconds, SIGKILL gateway NAME (PID) and
# check that the client ($B) was still running then; sets T_KILL.
kill_during() {
  local running=0
  sleep "$3"
  kill -0 "$B" 2>/dev/null && running=1
  kill -KILL "$2" 2>/dev/null
  T_KILL=$(date +%s)
  wait "$2" 2>/dev/null
  tap_check "$1 was killed while the client was still writing" test "$running" = 1
}

# lock_moves SPEC FROM: wait (at most 120 s) until the lock is no longer FROM's;
# prints the seconds since T_KILL.
lock_moves() {
  local i o
  for i in $(seq 120); do
    o=$(lock_owner "$1")
    [ -n "$o" ] && [ "$o" != "$2" ] && { echo $(($(date +%s) - T_KILL)); return 0; }
    sleep 1
  done
  return 1
}

# finish_within SECONDS: wait for the client ($B), killing it after SECONDS; sets RC.
finish_within() {
  local i
  for ((i = 0; i < $1 * 10; i++)); do
    kill -0 "$B" 2>/dev/null || break
    sleep 0.1
  done
  kill -0 "$B" 2>/dev/null && { echo "# the client still ran after $1 s: killed"; kill -KILL "$B"; }
  wait "$B"; RC=$?
}

# ---- shunt copy: gateway 1 dies in the middle of the writes ----
# The bandwidth limit (per connection) keeps the copy running for about four
# seconds on one gateway; the kill lands after one or two.
serve g1 "d=$img,backend=rbd,limit-bw=8M" && serve g2 "d=$img,backend=rbd,limit-bw=8M" \
  || { tap_fail "two gateways started"; tap_done; exit 1; }
head -c 64M /dev/urandom >"$T/src.img"
"$SHUNT" copy -C 2 --flush --dst-failover "nbd://127.0.0.1:$g2_PORT/d" \
  "$T/src.img" "nbd://127.0.0.1:$g1_PORT/d" >"$T/copy.out" 2>&1 &
B=$!
sleep 1
# Only gateway 1 has written: the lock is its own; gateway 2 is the other watcher.
owner1=$(lock_owner "$img")
addr2=$(watchers "$img" | grep -vxF "$owner1" | head -n 1)
kill_during "gateway 1" "$g1_PID" 0
tap_check "before the kill, gateway 1 held the lock ($owner1) and gateway 2 watched the image ($addr2)" \
  test -n "$owner1" -a -n "$addr2"
if secs=$(lock_moves "$img" "$owner1"); then
  tap_ok "the dead gateway's lock was broken and taken over $secs s after the kill (librbd: its watch expired)"
else
  tap_fail "the dead gateway's lock moved within 120 s of the kill (still $(lock_owner "$img"))"
fi
tap_check "gateway 2 holds the lock now" test "$(lock_owner "$img")" = "$addr2"
tap_check "the dead gateway is blocklisted" bash -c "timeout 30 ceph osd blocklist ls 2>/dev/null | grep -qF '$owner1'"
finish_within 180
tap_check "shunt copy finished through gateway 2 (exit $RC)" test "$RC" = 0
[ "$RC" = 0 ] || sed 's/^/#   /' "$T/copy.out"
w2=$(written g2)
tap_check "gateway 2 wrote the rest ($w2 bytes)" test "${w2:-0}" -gt 0
tap_check "rbd export: the image holds exactly the source" rbd_same "$img" "$T/src.img"

# ---- shunt bench --verify: reads check every acknowledged write ----
serve g3 "d=$img,backend=rbd" || { tap_fail "gateway 3 started"; tap_done; exit 1; }
"$SHUNT" bench --verify --read-percent 50 --duration 6 --queue-depth 16 -C 2 --size 8M --json \
  --failover "nbd://127.0.0.1:$g2_PORT/d" "nbd://127.0.0.1:$g3_PORT/d" >"$T/b.json" 2>"$T/b.err" &
B=$!
sleep 2
owner3=$(lock_owner "$img")
kill_during "gateway 3" "$g3_PID" 0
tap_check "gateway 3 took the lock from gateway 2 when the bench wrote through it" \
  test -n "$owner3" -a "$owner3" != "$addr2"
if secs=$(lock_moves "$img" "$owner3"); then
  tap_ok "the lock came back to gateway 2 $secs s after the kill"
else
  tap_fail "the dead gateway's lock moved within 120 s of the kill (still $(lock_owner "$img"))"
fi
finish_within 180
tap_check "bench --verify survived the gateway's death (exit $RC)" test "$RC" = 0
jget() { /usr/bin/python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))[sys.argv[2]])' "$1" "$2"; }
if [ -s "$T/b.json" ]; then
  tap_check "failed over ($(jget "$T/b.json" failovers) connections, $(jget "$T/b.json" retried) requests resent)" \
    test "$(jget "$T/b.json" failovers)" -ge 1
  tap_check "no errors ($(jget "$T/b.json" errors)), no verify errors ($(jget "$T/b.json" verify_errors))" \
    test "$(jget "$T/b.json" errors)" = 0 -a "$(jget "$T/b.json" verify_errors)" = 0
else
  tap_fail "bench printed its report"; sed 's/^/#   /' "$T/b.err"
fi
tap_check "gateway 2 still serves" kill -0 "$g2_PID"

# ---- the operator breaks the dead gateway's lock at once (rbd lock rm) ----
serve g4 "d=$img,backend=rbd" || { tap_fail "gateway 4 started"; tap_done; exit 1; }
"$SHUNT" bench --verify --read-percent 50 --duration 4 --queue-depth 16 -C 2 --size 8M --json \
  --failover "nbd://127.0.0.1:$g4_PORT/d" "nbd://127.0.0.1:$g2_PORT/d" >"$T/b2.json" 2>"$T/b2.err" &
B=$!
sleep 1
kill_during "gateway 2" "$g2_PID" 0
# rbd lock rm breaks the lock and blocklists its holder: librbd need not wait for
# the dead client's watch to expire.
lock_rm() {
  local l
  l=$(timeout 30 rbd lock ls --format json "$img" | /usr/bin/python3 -c '
import json, sys
l = json.load(sys.stdin)
l = list(l.values()) if isinstance(l, dict) else l
print(l[0]["id"] + "\t" + l[0]["locker"] if l else "")')
  [ -n "$l" ] || { echo "no lock on $img"; return 1; }
  timeout 30 rbd lock rm "$img" "${l%%$'\t'*}" "${l#*$'\t'}"
}
tap_check "rbd lock rm broke the dead gateway's lock" lock_rm
if secs=$(lock_moves "$img" "$addr2"); then
  tap_ok "gateway 4 took the lock $secs s after the kill"
else
  tap_fail "gateway 4 took the lock within 120 s of the kill (still $(lock_owner "$img"))"
fi
tap_check "the dead gateway is blocklisted" bash -c "timeout 30 ceph osd blocklist ls 2>/dev/null | grep -qF '$addr2'"
finish_within 180
tap_check "bench --verify survived the gateway's death (exit $RC)" test "$RC" = 0
if [ -s "$T/b2.json" ]; then
  tap_check "failed over ($(jget "$T/b2.json" failovers) connections), no errors ($(jget "$T/b2.json" errors)), no verify errors ($(jget "$T/b2.json" verify_errors))" \
    test "$(jget "$T/b2.json" failovers)" -ge 1 -a "$(jget "$T/b2.json" errors)" = 0 -a "$(jget "$T/b2.json" verify_errors)" = 0
else
  tap_fail "bench printed its report"; sed 's/^/#   /' "$T/b2.err"
fi
# The survivor stops cleanly (under ASan: no report, no leak).
kill -TERM "$g4_PID"; wait "$g4_PID"; rc=$?
tap_check "gateway 4 exits with status 0 on SIGTERM (status $rc)" test "$rc" = 0
tap_check "gateway 4 logged no sanitizer report" bash -c "! grep -E 'Sanitizer|runtime error' '$T/g4.log'"
tap_done
