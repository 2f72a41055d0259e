#!/usr/bin/env bash
# tests/interop/qos_cancel.sh: requests queued in the scheduler for a client
# that went away never enter the device (docs/qos.md, "Cancellation").  A
# python3-libnbd client of an export with limit-iops=5 queues 100 reads (at
# 5 per second they would hold the connection for 20 s), sees the first
# answered, and closes its handle without NBD_CMD_DISC.  The server must
# close the connection at once: its count of open connections (shunt stats
# --control) is back to 0 within 10 s, polled, and the requests it dropped
# are counted as errors; the next client is served (verified reads).
. "$(dirname "$0")/../lib.sh"
need_deps
here=$(cd "$(dirname "$0")" && pwd)
PY=/usr/bin/python3

img=$T/disk.img
head -c 8M /dev/urandom >"$img"
ctl=$T/ctl

# stat EXPR: evaluate EXPR over the server's JSON stats (s), print it.
stat() {
  "$SHUNT" stats --control "$ctl" --json | "$PY" -c 'import json,sys
s=json.load(sys.stdin)
print(eval(sys.argv[1]))' "$1"
}

if start_shunt --control "$ctl" "d=$img,limit-iops=5"; then
  if out=$("$PY" - "nbd://127.0.0.1:$PORT/d" <<'PYEOF' 2>&1
import sys, time
import nbd
h = nbd.NBD()
h.connect_uri(sys.argv[1])
bufs = [nbd.Buffer(4096) for _ in range(100)]
cookies = [h.aio_pread(b, i * 4096) for i, b in enumerate(bufs)]
deadline = time.monotonic() + 30
while not h.aio_command_completed(cookies[0]) and time.monotonic() < deadline:
    h.poll(1000)
print("first read answered after %.1f s" % (30 - (deadline - time.monotonic())))
del h   # nbd_close: the socket is closed without NBD_CMD_DISC
PYEOF
  ); then
    t0=$(date +%s.%N)
    open=1
    for _ in $(seq 100); do
      open=$(stat 's["connections"]["open"]' 2>/dev/null) && [ "$open" = 0 ] && break
      sleep 0.1
    done
    t=$("$PY" -c "import time,sys; print(f'{time.time() - float(sys.argv[1]):.1f}')" "$t0")
    [ "$open" = 0 ] && tap_ok "a client gone with 99 reads queued behind limit-iops=5: its connection closed in $t s (20 s to serve them)" \
      || tap_fail "the connection is still open after 10 s (open: $open)"
    errs=$(stat 's["exports"][0]["commands"]["read"]["errors"].get("ESHUTDOWN", 0)')
    [ "${errs:-0}" -ge 90 ] && tap_ok "the reads it dropped are counted, answered ESHUTDOWN without entering the device ($errs)" \
      || tap_fail "dropped reads counted as ESHUTDOWN: ${errs:-none}"
  else
    tap_fail "client: $out"
  fi
  if s=$("$PY" "$here/qos_client.py" "$img" "nbd://127.0.0.1:$PORT/d" 3 4096 1); then
    tap_ok "the next client is served (3 verified reads, $s s)"
  else
    tap_fail "the next client: $s"
  fi
  stop_shunt_within 20 || tap_fail "server exit"
else
  tap_fail "server starts"
fi
tap_finish
