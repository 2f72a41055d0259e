#!/usr/bin/env bash
# vhost_remote.sh: `shunt vhost` with NBD exports as sources (one libshunt
# connection per queue): the in-tree frontend's random verified I/O through
# shunt vhost -> NBD -> shunt serve with 1 and 2 queues and an in-flight region,
# and -> nbdkit (a server nobody here wrote); reads land in guest pages with no
# copy (--stats); shunt serve restarted in the middle of the I/O (libshunt
# reconnects and resends, the frontend sees no error); every hostile mode
# refused; a read-only export needs ',ro'; the images compared with what the
# frontend verified.
. "$(dirname "$0")/../lib.sh"
need_deps
. "$(dirname "$0")/vhost_lib.sh"

img=$T/disk.img roimg=$T/ro.img nsock=$T/nbd.sock
truncate -s 64M "$img" "$roimg"
start_serve() {
  "$SHUNT" serve --unix "$nsock" "d=$img" "r=$roimg,ro" >>"$T/serve.log" 2>&1 &
  SERVE_PID=$!
  _cleanup_pids+=("$SERVE_PID")
  wait_unix "$nsock" 10
}
start_serve || { tap_fail "shunt serve started"; cat "$T/serve.log"; tap_done; exit; }

uri="nbd+unix:///d?socket=$nsock"
tap_check "a read-only export without ',ro' is refused at start" \
  bash -c "! timeout 20 '$SHUNT' vhost -t 1 '$T/x.sock=nbd+unix:///r?socket=$nsock' >'$T/x.err' 2>&1 && grep -q \"read-only: add ',ro'\" '$T/x.err'"
tap_check "an NBD server that is not there fails the start, naming it" \
  bash -c "! timeout 60 '$SHUNT' vhost -t 1 '$T/y.sock=nbd+unix:///d?socket=$T/none.sock' >'$T/y.err' 2>&1 && grep -q 'none.sock' '$T/y.err'"

stats=$T/stats.json
"$SHUNT" vhost --threads 2 --stats "$stats" "$T/v.sock=$uri,queues=2" \
  "$T/ro.sock=nbd+unix:///r?socket=$nsock,ro" >>"$T/shunt.log" 2>&1 &
SHUNT_PID=$!
_cleanup_pids+=("$SHUNT_PID")
wait_unix "$T/v.sock" 30 && wait_unix "$T/ro.sock" 30 || { tap_fail "shunt vhost started"; cat "$T/shunt.log"; tap_done; exit; }
tap_check "the log says one NBD connection per queue" grep -q "2 queues, one NBD connection each" "$T/shunt.log"

tap_check "1 queue: 3000 verified requests on a zeroed disk, through NBD" \
  fe q1 --verify --requests 3000 --assume-zero --seed 41 "$T/v.sock"
tap_check "2 queues, QD 32, an in-flight region: 4000 verified requests" \
  fe q2 --verify --queues 2 --qd 32 --inflight --requests 4000 --seed 42 "$T/v.sock"
tap_check "read-only export: reads verified, writes refused with IOERR" \
  fe ro --verify --expect-ro --assume-zero --requests 500 --seed 43 "$T/ro.sock"

# The NBD server restarted in the middle of the I/O: libshunt reconnects.
fe restart --verify --queues 2 --requests 60000 --seed 44 "$T/v.sock" >/dev/null &
fpid=$!
sleep 1
kill -TERM "$SERVE_PID"; wait "$SERVE_PID" 2>/dev/null
start_serve
tap_check "shunt serve restarted under running I/O" kill -0 "$SERVE_PID"
wait "$fpid"
tap_check "... the frontend's 60000 requests all verified, no error" grep -q '"result":"ok"' "$T/restart.json"
tap_check "hostile modes (all kinds) on a remote device: refused, the process lives" \
  fe hostile --hostile all --backend-pid "$SHUNT_PID" "$T/v.sock"

rm -f "$stats"
kill -USR1 "$SHUNT_PID"
for i in $(seq 50); do [ -s "$stats" ] && break; sleep 0.1; done
tap_check "--stats: the remote device's requests, bytes, and no payload byte copied" \
  python3 -c "
import json,sys
d = json.load(open(sys.argv[1]))['devices'][0]
assert d['datapath'] == 'nbd' and d['requests'] > 10000 and d['bytes_read'] > 0 and d['bytes_written'] > 0, d
assert d['remote_copied_bytes'] == 0, d
" "$stats"
tap_check "SIGTERM exits 0" stop_shunt_within 20

# nbdkit, a server nobody here wrote.
if command -v nbdkit >/dev/null; then
  kimg=$T/k.img
  truncate -s 64M "$kimg"
  nbdkit -f -U "$T/k.sock" file "$kimg" >>"$T/nbdkit.log" 2>&1 &
  _cleanup_pids+=("$!")
  if wait_unix "$T/k.sock" 10; then
    "$SHUNT" vhost --threads 2 "$T/kv.sock=nbd+unix:///?socket=$T/k.sock,queues=2" >>"$T/shunt.log" 2>&1 &
    SHUNT_PID=$!
    _cleanup_pids+=("$SHUNT_PID")
    if wait_unix "$T/kv.sock" 30; then
      tap_check "nbdkit file: 3000 verified requests on 2 queues on a zeroed disk" \
        fe kit --verify --queues 2 --requests 3000 --assume-zero --seed 45 "$T/kv.sock"
      tap_check "... SIGTERM exits 0" stop_shunt_within 20
      tap_check "... nbdkit's image holds data" bash -c "! cmp -s '$kimg' <(head -c 64M /dev/zero)"
    else
      tap_fail "shunt vhost started on nbdkit"; tail -5 "$T/shunt.log"
    fi
  else
    tap_fail "nbdkit started"; cat "$T/nbdkit.log"
  fi
else
  tap_fail "nbdkit is installed (scripts/deps.sh test)"
fi
tap_finish
