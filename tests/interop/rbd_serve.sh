#!/usr/bin/env bash
# rbd_serve.sh: shunt serve backend=rbd against real clients, on the shared
# one-node Ceph cluster (tests/ceph/cluster.sh), every write checked through Ceph
# itself (rbd export, fio's rbd engine): nbdinfo's view (size, trim, zero, flush,
# multi-conn), qemu-io patterns, write-zeroes (with and without NO_HOLE) and trim
# read back as zeroes, trim frees the image's objects (rbd diff), nbdinfo --map
# equals the image's allocation, an nbdcopy round trip, fio verify through its nbd
# engine then verified again through its rbd engine, a snapshot served read-only
# with its own view, a resize seen by a new connection, and clear errors for a
# missing pool, a missing image and a cluster that is down.
. "$(dirname "$0")/../lib.sh"
. "$(dirname "$0")/rbd_lib.sh"
need_deps
rbd_require

M=$((1 << 20))
disk=$(rbd_image disk 64M) && copy=$(rbd_image copy 16M) && fiod=$(rbd_image fio 48M) ||
  { tap_fail "rbd create"; tap_done; exit 1; }
if ! start_shunt "disk=$disk,backend=rbd,ceph-conf=$CEPH_CONF" "copy=$copy,backend=rbd" "fio=$fiod,backend=rbd"; then
  tap_fail "shunt serve started with three rbd exports"; tap_finish; exit 1
fi
base=nbd://127.0.0.1:$PORT
uri=$base/disk

# --- nbdinfo
tap_check "nbdinfo: 64 MiB, writable, trim, zero, flush, fua, multi-conn, base:allocation" \
  /usr/bin/python3 - "$uri" <<'PY'
import json, subprocess, sys
doc = json.loads(subprocess.check_output(["nbdinfo", "--json", sys.argv[1]], timeout=30))
e = doc["exports"][0]
want = {"export-size": 64 << 20, "is_read_only": False, "can_trim": True, "can_zero": True,
        "can_flush": True, "can_fua": True, "can_multi_conn": True}
bad = {k: e.get(k) for k, v in want.items() if e.get(k) != v}
if bad or "base:allocation" not in e.get("contexts", []):
    sys.exit("unexpected: %s contexts %s" % (bad, e.get("contexts")))
PY

# --- qemu-io patterns; $T/expect mirrors what the image must hold.
qio() { timeout 60 qemu-io -f raw "$@" "$uri"; }
truncate -s 64M "$T/expect"
put() {  # OFFSET LENGTH BYTE: the same write into $T/expect
  /usr/bin/python3 -c 'import sys; f = open(sys.argv[1], "r+b"); f.seek(int(sys.argv[2])); f.write(bytes([int(sys.argv[4], 0)]) * int(sys.argv[3]))' \
    "$T/expect" "$1" "$2" "$3"
}
tap_check "qemu-io: writes of 1 MiB, 128 KiB, 4 MiB and 512 bytes, FUA, then verified reads" \
  qio -c 'write -P 0xa5 0 1M' -c 'write -P 0x3c 5M 128k' -c 'write -f -P 0x11 56M 4M' \
      -c 'write -P 0x42 3000k 512' -c flush \
      -c 'read -P 0xa5 0 1M' -c 'read -P 0x3c 5M 128k' -c 'read -P 0x11 56M 4M' -c 'read -P 0x42 3000k 512'
put 0 $M 0xa5; put $((5 * M)) $((128 * 1024)) 0x3c; put $((56 * M)) $((4 * M)) 0x11; put $((3000 * 1024)) 512 0x42
tap_check "rbd export: the image holds exactly those writes" rbd_same "$disk" "$T/expect"

tap_check "qemu-io: write-zeroes keeping the range allocated (NO_HOLE) and punching, then reads of zeroes" \
  qio -c 'write -z 57M 1M' -c 'write -z -u 58M 1M' -c 'read -P 0 57M 2M' -c 'read -P 0x11 59M 1M'
put $((57 * M)) $((2 * M)) 0
tap_check "rbd export: the zeroed ranges read back as zeroes through Ceph" rbd_same "$disk" "$T/expect"

tap_check "qemu-io: 8 MiB written at 16 MiB (two whole objects), then trimmed" \
  qio -c 'write -P 0x77 16M 8M' -c flush -c 'discard 16M 8M' -c flush
objects_gone() {
  rbd_alloc "$disk" >"$T/alloc" || return 1
  cat "$T/alloc"
  /usr/bin/python3 - "$T/alloc" <<'PY'
import sys
for line in open(sys.argv[1]):
    o, l = map(int, line.split())
    if o < 24 << 20 and o + l > 16 << 20:
        sys.exit("still allocated: %d+%d" % (o, l))
PY
}
tap_check "rbd diff: the trimmed objects are gone" objects_gone
tap_check "rbd export: the image still equals the expected bytes after the trim" rbd_same "$disk" "$T/expect"

# --- nbdinfo --map against the image's own allocation
map_equal() {
  timeout 60 nbdinfo --map --json "$uri" >"$T/map.json" || return 1
  rbd_alloc "$disk" >"$T/alloc" || return 1
  /usr/bin/python3 - "$T/map.json" "$T/alloc" <<'PY'
import json, sys
runs = []
for e in json.load(open(sys.argv[1])):
    if e["type"] & 1:          # a hole
        continue
    if runs and runs[-1][0] + runs[-1][1] == e["offset"]:
        runs[-1][1] += e["length"]
    else:
        runs.append([e["offset"], e["length"]])
want = [list(map(int, l.split())) for l in open(sys.argv[2]) if l.strip()]
print("nbdinfo --map data:", runs)
print("rbd diff --whole-object:", want)
sys.exit(0 if runs == want and runs else 1)
PY
}
tap_check "nbdinfo --map: the data extents are the image's allocated objects (rbd diff)" map_equal

# --- nbdcopy round trip
head -c $((16 * M)) /dev/urandom >"$T/src.img"
tap_check "nbdcopy --connections=4: a 16 MiB file into the rbd export" \
  timeout 120 nbdcopy --connections=4 --flush "$T/src.img" "$base/copy"
tap_check "rbd export: the image equals the file" rbd_same "$copy" "$T/src.img"
tap_check "nbdcopy --connections=4: the rbd export back into a file, equal" \
  bash -c "timeout 120 nbdcopy --connections=4 '$base/copy' '$T/back.img' && cmp '$T/src.img' '$T/back.img'"

# --- fio: verified through the nbd engine, then again through Ceph (fio's rbd engine)
fio_job() {
  (cd "$T" && timeout 180 fio --name=v --rw=randwrite --bs=4k --bssplit=4k/60:64k/30:1m/10 --size=40M \
    --offset=4M --randrepeat=1 --randseed=77 --verify=crc32c --verify_fatal=1 --iodepth=16 "$@") >"$T/fio.out" 2>&1 \
    || { tail -n 20 "$T/fio.out"; return 1; }
  grep -qE 'err= *0' "$T/fio.out" || { tail -n 20 "$T/fio.out"; return 1; }
}
tap_check "fio nbd engine: random writes, crc32c verify, iodepth 16" fio_job --ioengine=nbd --uri="$base/fio"
tap_check "fio rbd engine: the same blocks verify through librbd (verify_only)" \
  fio_job --ioengine=rbd --pool="$POOL" --rbdname="${fiod#*/}" --clientname=admin --verify_only=1

# --- a snapshot: read-only, its own view
timeout 30 rbd snap create "$disk@s1" >/dev/null 2>&1
qio -c 'write -P 0xee 0 1M' >/dev/null   # after the snapshot: not in it
SNAP_PORT=$(free_port)
"$SHUNT" serve --listen "127.0.0.1:$SNAP_PORT" "snap=$disk@s1,backend=rbd" >>"$T/shunt.log" 2>&1 &
_cleanup_pids+=($!)
if wait_port "$SNAP_PORT" 30; then
  tap_check "snapshot: nbdinfo says read-only" \
    bash -c "timeout 30 nbdinfo --json nbd://127.0.0.1:$SNAP_PORT/snap | grep -q '\"is_read_only\": true'"
  tap_check "snapshot: a write is refused" \
    bash -c "! timeout 30 qemu-io -f raw -c 'write -P 1 0 4k' nbd://127.0.0.1:$SNAP_PORT/snap"
  tap_check "snapshot: it reads as the image did when it was taken" \
    bash -c "timeout 60 nbdcopy nbd://127.0.0.1:$SNAP_PORT/snap '$T/snap.img' && cmp '$T/snap.img' '$T/expect'"
else
  tap_fail "shunt serve started on the snapshot"
fi

# --- resize: a new connection sees the new size
timeout 30 rbd resize --size 96M "$disk" >/dev/null 2>&1
tap_check "resize to 96 MiB: a new connection is told 96 MiB" \
  bash -c "[ \"\$(timeout 30 nbdinfo --size '$uri')\" = $((96 * M)) ]"
tap_check "resize: the new range is writable and reads back" qio -c 'write -P 0x5e 90M 1M' -c 'read -P 0x5e 90M 1M'

# --- clear errors at start (exit status 1, one line)
start_err() {  # WANT SPEC...: shunt serve exits 1 and its error line names WANT
  local want=$1 rc; shift
  timeout 90 "$SHUNT" serve --listen "127.0.0.1:$(free_port)" "$@" >"$T/err.log" 2>&1
  rc=$?
  cat "$T/err.log"
  [ "$rc" -eq 1 ] && grep -E '^shunt: error' "$T/err.log" | grep -q "$want"
}
tap_check "a missing pool: exit 1, 'no pool'" start_err "no pool 'nosuchpool'" "x=nosuchpool/img,backend=rbd"
tap_check "a missing image: exit 1, 'no image'" start_err "no image '$POOL/nosuchimage'" "x=$POOL/nosuchimage,backend=rbd"
tap_check "a missing snapshot: exit 1, 'no image ... snapshot'" start_err "snapshot 'nosnap'" "x=$disk@nosnap,backend=rbd"
tap_check "not POOL/IMAGE: exit 1" start_err "POOL/IMAGE" "x=justaname,backend=rbd"
sed -e "s/^mon host = .*/mon host = v2:127.0.0.1:$(free_port)/" -e 's/^client mount timeout = .*/client mount timeout = 3/' \
  "$CEPH_CONF" >"$T/down.conf"
tap_check "a cluster that is down: exit 1 within the mount timeout, 'cannot connect'" \
  start_err "cannot connect to the Ceph cluster" "x=$disk,backend=rbd,ceph-conf=$T/down.conf"
tap_check "a ceph-conf that does not exist: exit 1" start_err "cannot read $T/none.conf" "x=$disk,backend=rbd,ceph-conf=$T/none.conf"
tap_check "rbd options on a file export are refused" start_err "options of backend=rbd" "x=$T/expect,ceph-id=admin"

tap_check "shunt serve exits 0 on SIGTERM" stop_shunt_within 30
tap_finish
