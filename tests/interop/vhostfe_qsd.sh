#!/usr/bin/env bash
# vhostfe_qsd.sh: the in-tree vhost-user frontend (tests/tools/vhostfe) against
# qemu-storage-daemon's vhost-user-blk export, a backend nobody here wrote. Random
# verified I/O with 1 and 2 queues (direct, indirect, several memory regions,
# ADD_MEM_REG, without RING_EVENT_IDX), a checker that does catch a wrong byte, the
# benchmark loop on a few requests, hostile modes the daemon refuses, reconnection across two
# SIGKILLs of the daemon, and a read-only export that refuses writes.
# Bounded by request counts, never by time.
. "$(dirname "$0")/../lib.sh"
need_deps
. "$(dirname "$0")/vhost_lib.sh"
command -v qemu-storage-daemon >/dev/null ||
  { tap_fail "qemu-storage-daemon is installed"; tap_done; exit; }

# start_qsd IMAGE SOCKET WRITABLE: export IMAGE as vhost-user-blk on SOCKET (2 queues);
# sets QSD_PID, log in $T/qsd.log.
start_qsd() {
  local ro=off
  [ "$3" = on ] || ro=on
  rm -f "$2"
  qemu-storage-daemon \
    --blockdev "driver=file,node-name=f,filename=$1,cache.direct=on,aio=io_uring,read-only=$ro" \
    --export "type=vhost-user-blk,id=e,node-name=f,addr.type=unix,addr.path=$2,writable=$3,num-queues=2" \
    >>"$T/qsd.log" 2>&1 &
  QSD_PID=$!
  _cleanup_pids+=("$QSD_PID")
  wait_unix "$2" 10 || { echo "qemu-storage-daemon did not start:"; cat "$T/qsd.log"; return 1; }
}
stop_qsd() { kill -TERM "$QSD_PID" 2>/dev/null; wait "$QSD_PID" 2>/dev/null; return 0; }


img=$T/disk.img
sock=$T/vu.sock
truncate -s 64M "$img"
if start_qsd "$img" "$sock" on; then
  tap_check "1 queue: 3000 verified requests on a zeroed disk (unwritten sectors must read zero)" \
    fe q1 --verify --requests 3000 --assume-zero --seed 11 "$sock"
  tap_check "1 queue: reads and writes happened, summary ok" verified q1
  tap_check "1 queue: flush, discard and write-zeroes were offered and used" \
    bash -c "[ $(json_num q1 flushes) -gt 0 ] && [ $(json_num q1 discards) -gt 0 ] && [ $(json_num q1 write_zeroes) -gt 0 ]"
  tap_check "2 queues, QD 32 each: 4000 verified requests" \
    fe q2 --verify --queues 2 --qd 32 --requests 4000 --seed 12 "$sock"
  tap_check "2 queues: reads and writes happened, summary ok" verified q2
  tap_check "2 queues, indirect descriptors, 3 memory regions: 3000 verified requests" \
    fe q2ind --verify --queues 2 --indirect --regions 3 --requests 3000 --seed 13 "$sock"
  tap_check "2 queues, ADD_MEM_REG for 4 regions, no RING_EVENT_IDX: 3000 verified requests" \
    fe q2slots --verify --queues 2 --mem-slots --regions 4 --no-event-idx --requests 3000 --seed 14 "$sock"
  tap_check "a ring of 16 entries with 16 requests in flight (descriptors run out): 2000 verified requests" \
    fe small --verify --queue-size 16 --qd 16 --requests 2000 --seed 15 "$sock"
  # The checker itself: the disk is no longer zeroed, so --assume-zero must fail.
  tap_check "the checker reports a mismatch when the disk is not what it expects" \
    bash -c "! '$FE' --verify --assume-zero --requests 3000 --seed 16 '$sock' >'$T/neg.json' 2>'$T/neg.err' && grep -q MISMATCH '$T/neg.err'"
  tap_check "the benchmark loop: 4 KiB randread QD 32, 2000 requests, backend CPU reported" \
    fe bench --bench --rw randread --bs 4096 --qd 32 --requests 2000 --backend-pid "$QSD_PID" "$sock"
  tap_check "the benchmark summary has IOPS and CPU per request" \
    grep -q '"iops":[0-9].*"backend_cpu_us_per_req"' "$T/bench.json"
  tap_check "the benchmark loop: 1 MiB sequential read QD 8, 64 requests" \
    fe bench2 --bench --rw read --bs 1048576 --qd 8 --requests 64 "$sock"
  # Hostile modes that libvhost-user refuses (it acknowledges malformed messages with
  # success, and takes a nested indirect descriptor as a buffer: those kinds are for
  # shunt vhost). Each is followed by a fresh connection doing verified I/O.
  for kind in desc-oob desc-loop chain-long avail-jump status-zero msg-oversize; do
    tap_check "hostile $kind: refused, the backend lives, a fresh connection verifies" \
      fe "hostile-$kind" --hostile "$kind" --backend-pid "$QSD_PID" "$sock"
  done
  tap_check "hostile fuzz: 100 rounds of random rings, the backend lives, a fresh connection verifies" \
    fe fuzz --hostile fuzz --requests 100 --seed 19 --backend-pid "$QSD_PID" "$sock"
  tap_check "qemu-storage-daemon is still running" kill -0 "$QSD_PID"
  stop_qsd
else
  tap_fail "qemu-storage-daemon started (read-write)"
fi

# Restart: qemu-storage-daemon is SIGKILLed twice while the frontend runs verified I/O
# (one request in flight per queue: without an inflight area the backend resumes each ring at
# its used index, which is right for in-order completion); the frontend reconnects with the
# same memory and rings, the request in flight is redone, and every read still verifies.
rimg=$T/restart.img
rsock=$T/restart.sock
truncate -s 64M "$rimg"
# wait_file PATH: wait (at most 30 s) until PATH exists.
wait_file() { local i; for ((i = 0; i < 600; i++)); do [ -e "$1" ] && return 0; sleep 0.05; done; return 1; }
if start_qsd "$rimg" "$rsock" on; then
  timeout 120 "$FE" --timeout 30 --verify --reconnect --min-reconnects 2 --qd 1 --queues 2 \
    --requests 2000 --assume-zero --seed 18 --ready-file "$T/ready" "$rsock" \
    >"$T/restart.json" 2>"$T/restart.err" &
  fe_pid=$!
  # The frontend makes the ready file when a request has completed (again after a reconnect).
  for round in 1 2; do
    wait_file "$T/ready" || break
    rm -f "$T/ready"
    kill -KILL "$QSD_PID"; wait "$QSD_PID" 2>/dev/null
    start_qsd "$rimg" "$rsock" on || break
  done
  tap_check "restart: the frontend reconnected twice and every read verified" wait "$fe_pid"
  cat "$T/restart.json" "$T/restart.err"
  tap_check "restart: the summary counts 2 reconnects" grep -q '"reconnects":2' "$T/restart.json"
  stop_qsd
else
  tap_fail "qemu-storage-daemon started (restart)"
fi

# A read-only export: the device says VIRTIO_BLK_F_RO, every write is refused with
# IOERR, reads still verify zeroes, and the image is unchanged.
roimg=$T/ro.img
truncate -s 16M "$roimg"
if start_qsd "$roimg" "$T/ro.sock" off; then
  tap_check "read-only export: reads verified, writes refused with IOERR" \
    fe ro --verify --expect-ro --assume-zero --queues 2 --requests 1000 --seed 17 "$T/ro.sock"
  tap_check "read-only export: some writes were tried and refused" verified ro
  tap_check "read-only export: without --expect-ro the frontend refuses to run" \
    bash -c "! '$FE' --verify --requests 10 '$T/ro.sock' 2>&1 | grep -q '\"result\":\"ok\"'"
  stop_qsd
  tap_check "read-only export: the image is still all zeroes" cmp -s "$roimg" <(head -c 16M /dev/zero)
else
  tap_fail "qemu-storage-daemon started (read-only)"
fi
tap_done
