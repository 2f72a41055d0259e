#!/usr/bin/env bash
# rbd_faults.sh: backend=rbd when Ceph misbehaves, and two gateways on one image.
# The OSD stopped (SIGSTOP) under a connection: its requests fail (rados op
# timeout) instead of hanging, the connection stays up, and after SIGCONT the same
# connection writes and reads again.  A blocklisted gateway reopens the image and
# serves again.  Two gateways on one exclusive-lock image write in turn (librbd
# passes the lock), each write seen by the other and by Ceph; a lock=exclusive
# gateway keeps the lock: the other gateways' writes are refused (EPERM) until it
# stops.
# shunt-test: alone (it stops the shared cluster's OSD: no other rbd test may run meanwhile)
. "$(dirname "$0")/../lib.sh"
. "$(dirname "$0")/rbd_lib.sh"
need_deps
rbd_require

# A failed check (or one that timed out) prints what the OSD is doing
# (rbd_osd_dump), so that a failure explains itself: the first three
# failures do.  While the OSD is stopped its admin socket cannot answer: the
# dump waits for the end of the stall (osd_dump_due after each one).
eval "_lib_tap_fail() $(declare -f tap_fail | tail -n +2)"
_osd_dumps=0 _osd_dump_wanted=0
tap_fail() {
  _lib_tap_fail "$@"
  _osd_dump_wanted=1
  osd_dump_due
}
osd_dump_due() {
  [ "$_osd_dump_wanted" = 1 ] && [ "$_osd_dumps" -lt 3 ] || return 0
  if rbd_osd_stopped; then
    echo "# osd.0 is stopped: what it is doing is printed once the stall ends"
    return 0
  fi
  _osd_dump_wanted=0 _osd_dumps=$((_osd_dumps + 1))
  rbd_osd_dump
}

img=$(rbd_image faults 32M) && two=$(rbd_image two 32M) || { tap_fail "rbd create"; tap_done; exit 1; }

# serve NAME SPEC...: a gateway of its own; sets NAME_PORT and NAME_PID.
serve() {
  local name=$1 port; shift
  port=$(free_port)
  "$SHUNT" serve --listen "127.0.0.1:$port" "$@" >>"$T/$name.log" 2>&1 &
  _cleanup_pids+=($!)
  eval "${name}_PORT=$port ${name}_PID=$!"
  wait_port "$port" 30 || { echo "gateway $name did not start:"; cat "$T/$name.log"; return 1; }
}

# --- the OSD stops answering
serve g "d=$img,backend=rbd" || { tap_fail "gateway started"; tap_done; exit 1; }
osd=$(rbd_osd_pid)
cat >"$T/stall.py" <<'PY'
import nbd, os, signal, subprocess, sys, time
uri, osd = sys.argv[1], int(sys.argv[2])
h = nbd.NBD()
h.connect_uri(uri)
buf = b"\x5a" * 65536
h.pwrite(buf, 0)
print("ok - a write before the stall")
# Requests in flight when the OSD stops, and one sent after.
cookies = [h.aio_pwrite(nbd.Buffer.from_bytearray(bytearray(buf)), 65536 * (i + 1)) for i in range(4)]
os.kill(osd, signal.SIGSTOP)
try:
    failed = 0
    try:
        h.pwrite(b"\x11" * 4096, 1 << 20)
    except nbd.Error as e:
        failed += 1
        print("# the write during the stall:", e)
    while h.aio_in_flight() > 0:
        h.poll(-1)
    for c in cookies:
        try:
            h.aio_command_completed(c)
        except nbd.Error as e:
            failed += 1
    print(("ok" if failed else "not ok") + " - requests during the stall fail with an error (%d failed)" % failed)
finally:
    os.kill(osd, signal.SIGCONT)
print(("ok" if h.aio_is_ready() else "not ok") + " - the connection is still up after the errors")
# The OSD may need a moment to answer again: retry for a while (bounded).
for i in range(60):
    try:
        h.pwrite(b"\x77" * 65536, 2 << 20)
        break
    except nbd.Error:
        time.sleep(1)
back = h.pread(65536, 2 << 20)
print(("ok" if back == b"\x77" * 65536 else "not ok") + " - after SIGCONT the same connection writes and reads back")
h.flush()
h.shutdown()
PY
tap_relay timeout 300 /usr/bin/python3 "$T/stall.py" "nbd://127.0.0.1:$g_PORT/d" "$osd"
osd_dump_due
tap_check "the gateway lived through the stall" kill -0 "$g_PID"

# --- BLOCK_STATUS during the stall keeps the worker's other clients going.
# One worker serves an rbd export and a file export; client A asks the rbd
# export for its allocation while the OSD is stopped; client B, on the same
# worker, reads and writes the file export meanwhile and must get every answer
# before A's (A waits for the cluster, B must not).  Client C hangs up while
# its own BLOCK_STATUS waits.  The image has no
# object map (no fast-diff): its allocation is asked of the OSD, as that of
# any image whose object map this gateway does not hold in memory.
bs=$(rbd_image bs 32M --image-feature layering) || { tap_fail "rbd create"; tap_done; exit 1; }
head -c 4M /dev/urandom >"$T/bs-file"
serve w --threads 1 "r=$bs,backend=rbd" "f=$T/bs-file" || { tap_fail "gateway with one worker started"; tap_done; exit 1; }
cat >"$T/bs.py" <<'PY'
import hashlib, nbd, os, select, signal, sys, time
base, osd, size = sys.argv[1], int(sys.argv[2]), 32 << 20
# The allocated runs rbd diff reports, "OFFSET LENGTH" a line.
want = [tuple(map(int, l.split())) for l in open(sys.argv[3]) if l.strip()]

def connect(name, meta):
    h = nbd.NBD()
    if meta:
        h.add_meta_context(nbd.CONTEXT_BASE_ALLOCATION)
    h.connect_uri(base + "/" + name)
    return h

def runs(entries, offset=0):
    """The allocated (not hole) runs of a base:allocation reply."""
    out, pos = [], offset
    for i in range(0, len(entries), 2):
        ln, fl = entries[i], entries[i + 1]
        if not fl & nbd.STATE_HOLE:
            if out and out[-1][0] + out[-1][1] == pos:
                out[-1] = (out[-1][0], out[-1][1] + ln)
            else:
                out.append((pos, ln))
        pos += ln
    return out, pos

a, b = connect("r", True), connect("f", False)
got = []
def extent(meta, offset, entries, err):
    if meta == nbd.CONTEXT_BASE_ALLOCATION:
        got.extend(entries)
    return 0

os.kill(osd, signal.SIGSTOP)
try:
    cookie = a.aio_block_status(size, 0, extent)   # sent on the socket before it returns
    time.sleep(0.5)   # read by the server, even on a loaded machine (no result depends on it)
    # B: writes and reads on the file export, each answer checked.
    ok = True
    for i in range(16):
        data = hashlib.sha256(b"%d" % i).digest() * 2048   # 64 KiB
        off = (i * 197 % 64) * 65536
        b.pwrite(data, off)
        if hashlib.sha256(b.pread(65536, off)).digest() != hashlib.sha256(data).digest():
            ok = False
    b.flush()
    print(("ok" if ok else "not ok") + " - during the stall, B's reads and writes on the file export are all answered, checksums right")
    # Has the server sent A anything yet?  (Its answer would be in A's socket.)
    # Once in a while librbd answers without the OSD (seen once in a dozen
    # runs): then A waited for nothing, and its answer is the image's map, not
    # the fallback that a timeout gives (which a worker blocked by A gives B
    # only after A's answer).
    waiting = not select.select([a.aio_get_fd()], [], [], 0)[0]
    early = None
    if not waiting:
        while a.aio_in_flight() > 0:
            a.poll(-1)
        try:
            a.aio_command_completed(cookie)
            early = runs(got)[0]
        except nbd.Error as e:
            early = str(e)
        print("# A was answered before B finished: %s" % (early,))
    print(("ok" if waiting or early == want else "not ok")
          + " - A's BLOCK_STATUS on the rbd export was still unanswered when B finished (or answered without the OSD)")
    # C hangs up while its BLOCK_STATUS waits: the request completes later
    # on a closed connection (the gateway must live on; checked below).
    c = connect("r", True)
    c.aio_block_status(size, 0, extent)
    time.sleep(0.2)
    del c
finally:
    os.kill(osd, signal.SIGCONT)
while a.aio_in_flight() > 0:
    a.poll(-1)
try:
    if early is None:
        a.aio_command_completed(cookie)
    first, end = runs(got)
    print(("ok" if first in (want, [(0, size)]) and end == size else "not ok")
          + " - after SIGCONT, A is answered (the map, or the whole range allocated after a timeout): %s" % first)
except nbd.Error as e:
    print("ok - after SIGCONT, A is answered with an error: %s" % e)
# A new BLOCK_STATUS gives the image's map once the OSD answers again.
last = None
for i in range(60):
    got.clear()
    try:
        a.block_status(size, 0, extent)
        last = runs(got)[0]
        if last == want:
            break
    except nbd.Error as e:
        last = str(e)
    time.sleep(1)
print(("ok" if last == want else "not ok") + " - a new BLOCK_STATUS matches rbd diff: %s vs %s" % (last, want))
a.shutdown()
b.shutdown()
PY
bs_seed() {
  timeout 60 qemu-io -f raw -c 'write -P 0x42 0 64k' -c 'write -P 0x43 9M 64k' -c 'write -P 0x44 20M 8k' \
    "nbd://127.0.0.1:$w_PORT/r" >/dev/null && rbd_alloc "$bs" --exact >"$T/bs-want" && [ -s "$T/bs-want" ]
}
tap_check "block status under a stall: data written to the rbd export" bs_seed
tap_relay timeout 300 /usr/bin/python3 "$T/bs.py" "nbd://127.0.0.1:$w_PORT" "$osd" "$T/bs-want"
osd_dump_due
tap_check "the one-worker gateway lived through the stall" kill -0 "$w_PID"
kill -TERM "$w_PID"; wait "$w_PID" 2>/dev/null

# --- blocklisted: the gateway reopens the image
addr=$(timeout 30 rbd status "$img" --format json 2>/dev/null | /usr/bin/python3 -c \
  'import json,sys; w=json.load(sys.stdin)["watchers"]; print(w[0]["address"] if w else "")')
if [ -n "$addr" ] && timeout 30 ceph osd blocklist add "$addr" >/dev/null 2>&1; then
  blocklisted() {
    local i
    for i in $(seq 60); do
      timeout 60 qemu-io -f raw -c 'write -P 0x3e 0 64k' -c 'read -P 0x3e 0 64k' "nbd://127.0.0.1:$g_PORT/d" \
        >/dev/null 2>&1 && return 0
      sleep 1
    done
    return 1
  }
  tap_check "blocklisted: after the failures, writes and reads work again (the image reopened)" blocklisted
  tap_check "blocklisted: the gateway logged the reopen" grep -q 'blocklisted; reopened the image' "$T/g.log"
  timeout 30 ceph osd blocklist rm "$addr" >/dev/null 2>&1
else
  tap_fail "found the gateway's address in rbd status and blocklisted it ($addr)"
fi
kill -TERM "$g_PID"; wait "$g_PID" 2>/dev/null

# --- two gateways on one image, writing in turn
serve a "d=$two,backend=rbd" && serve b "d=$two,backend=rbd" || { tap_fail "two gateways started"; tap_done; exit 1; }
truncate -s 32M "$T/expect"
turns() {
  local i g p
  for i in 1 2 3 4; do
    for g in a b; do
      p=$(eval echo "\$${g}_PORT")
      timeout 60 qemu-io -f raw -c "write -P $i$((i % 2)) $((i * 64))k 64k" "nbd://127.0.0.1:$p/d" >/dev/null || return 1
      # the other gateway reads what this one wrote
      [ $g = a ] && p=$b_PORT || p=$a_PORT
      timeout 60 qemu-io -f raw -c "read -P $i$((i % 2)) $((i * 64))k 64k" "nbd://127.0.0.1:$p/d" >/dev/null || return 1
    done
    /usr/bin/python3 -c 'import sys; f=open(sys.argv[1],"r+b"); f.seek(int(sys.argv[2])*65536); f.write(bytes([int(sys.argv[3])])*65536)' \
      "$T/expect" "$i" "$i$((i % 2))"
  done
}
tap_check "two gateways write in turn, each reads the other's writes" turns
tap_check "rbd export: the image holds every write" rbd_same "$two" "$T/expect"

# --- lock=exclusive
kill -TERM "$b_PID"; wait "$b_PID" 2>/dev/null
serve x "d=$two,backend=rbd,lock=exclusive" || tap_fail "gateway with lock=exclusive started"
tap_check "lock=exclusive: its writes go through" \
  timeout 60 qemu-io -f raw -c 'write -P 0x61 0 64k' "nbd://127.0.0.1:$x_PORT/d"
refused() {  # PORT: a write there fails with EPERM
  timeout 60 qemu-io -f raw -c 'write -P 0x62 0 64k' "nbd://127.0.0.1:$1/d" 2>&1 | tee "$T/refused.out"
  grep -q 'Operation not permitted' "$T/refused.out"
}
tap_check "lock=exclusive: the other gateway's writes are refused (EPERM)" refused "$a_PORT"
tap_check "lock=exclusive: the other gateway still reads" \
  timeout 60 qemu-io -f raw -c 'read -P 0x61 0 64k' "nbd://127.0.0.1:$a_PORT/d"
serve y "d=$two,backend=rbd,lock=exclusive" || tap_fail "second gateway with lock=exclusive started"
tap_check "lock=exclusive twice: the second one refuses writes while the first holds the lock" refused "$y_PORT"
tap_check "the second lock=exclusive gateway logged that another client holds the lock" \
  grep -q 'another client holds the lock' "$T/y.log"
kill -TERM "$x_PID"; wait "$x_PID" 2>/dev/null
takes_over() {
  local i
  for i in $(seq 30); do
    timeout 60 qemu-io -f raw -c 'write -P 0x63 0 64k' "nbd://127.0.0.1:$y_PORT/d" >/dev/null 2>&1 && return 0
    sleep 1
  done
  return 1
}
tap_check "once the first stopped, the second takes the lock and writes" takes_over
tap_check "rbd export: the last write is in the image" \
  bash -c "timeout 60 rbd export --no-progress '$two' - 2>/dev/null | head -c 65536 | cmp - <(head -c 65536 /dev/zero | tr '\\0' '\\143')"
tap_done
