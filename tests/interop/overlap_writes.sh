#!/usr/bin/env bash
# overlap_writes.sh: overlapping WRITEs in flight at once, on the export's data
# path (export_arg: rerun per path with SHUNT_EXPORT_OPTS=datapath=...).
# tests/raw/overlap_writes.py: two connections pipeline, round after round,
# A = [k*16K, +8192) (aligned) and B = [k*16K+100, +9900) (unaligned ends, B's
# head block shared with A; every third round a WRITE_ZEROES of B's range
# instead) over 1024 regions; every write and the FLUSH after
# each round succeed, and every byte read back is one an acknowledged write (or
# nobody) left there: A's where only A wrote, either's where both did.
# tests/raw/write_order.py: 1 KiB writes at offsets not aligned to 4 KiB,
# all into 4 blocks, pipelined among 4 KiB reads: all answered, none
# overtaken by more than 256 later requests (64 in flight), bytes read back.
# tests/raw/odd_size_writes.py: unaligned writes and zeroes up to the end of a
# 10000-byte export read back (a READ with DF too, as one chunk, O_DIRECT on
# the direct path); the file keeps its size.
# With the direct path (and auto, which writes O_DIRECT where it can), the
# stats must show that conflicting writes waited for each other
# (range_lock_waits), so the overlap was really in flight.
# Then the same overlapping writers across two exports of one file: A on
# the export's path, B on an auto export of the same file (which writes the
# way that cannot race with A's path, sharing A's range lock when both write
# O_DIRECT), rounds read back through A and B in turn.
. "$(dirname "$0")/../lib.sh"
. "$SHUNT_TOP/tests/tools/trust-lib.sh"
need_deps
top=$(cd "$(dirname "$0")/../.." && pwd)

img=$T/disk.img
head -c 16M /dev/urandom >"$img"
# Not in the page cache: the server reads blocks from the disk.
"$PY" -c 'import os,sys; fd=os.open(sys.argv[1],os.O_RDONLY); os.fsync(fd); os.posix_fadvise(fd,0,0,os.POSIX_FADV_DONTNEED)' "$img"
start_shunt --stats "$T/stats.json" "$(export_arg disk "$img")" || { tap_fail "server starts"; tap_finish; exit; }
main_pid=$SHUNT_PID main_port=$PORT
dp=$(sed -n 's/.*data path \([a-z]*\).*/\1/p' "$T/shunt.log" | head -n1)
echo "# data path: ${dp:-?}"
# auto writes O_DIRECT (under the range lock) where O_DIRECT works.
locked=$dp
[ "$dp" = auto ] && ! grep -q "O_DIRECT does not work" "$T/shunt.log" && locked=direct

# 1024 regions (16 MiB); rounds until 25600 write pairs or 20 s.
OVERLAP_SEED=$RANDOM tap_relay timeout 120 "$PY" "$top/tests/raw/overlap_writes.py" "$PORT" disk 1024 25600 20
# 8000 requests, 64 in flight, the writes within 4 blocks (each written by
# about 500 of them): a write may be overtaken by at most 4 windows' worth;
# on auto 8: its reads of cached blocks go from the mapping without the
# disk, while each write waits for the O_DIRECT read-modify-write chain of
# its block, so more reads pass a write than on any fixed path (264 seen).
# A starved write is still caught (it would be passed by thousands).
max_over=256
[ "$dp" = auto ] && max_over=512
WRITE_ORDER_SEED=$RANDOM WRITE_ORDER_BLOCKS=4 tap_relay timeout 120 \
  "$PY" "$top/tests/raw/write_order.py" "$PORT" disk 8000 64 $max_over

# An export of 10000 bytes (its last 4 KiB block partial): unaligned writes
# and zeroes up to its end read back, and the file keeps its size.
head -c 10000 /dev/urandom >"$T/odd.img"
start_shunt --stats "$T/odd.json" "$(export_arg odd "$T/odd.img")" || tap_fail "server for the odd-sized export starts"
odd_pid=$SHUNT_PID
tap_relay timeout 120 "$PY" "$top/tests/raw/odd_size_writes.py" "$PORT" odd "$T/odd.img"
kill -TERM "$odd_pid"; wait "$odd_pid"
if [ "$dp" = direct ]; then
  # Every read of a direct export, the one with DF too, is O_DIRECT: none
  # goes through the page cache (the copy path's buffered read).
  copied=$("$PY" -c 'import json,sys; print(json.load(open(sys.argv[1]))["exports"][0]["bytes_by_path"]["copy"])' "$T/odd.json")
  [ "$copied" = 0 ] && tap_ok "direct: no read went the copy path's way" \
    || tap_fail "direct: $copied bytes read the copy path's way (buffered)"
fi
SHUNT_PID=$main_pid PORT=$main_port

kill -USR1 "$SHUNT_PID"
for _ in $(seq 50); do [ -s "$T/stats.json" ] && break; sleep 0.1; done
if [ "$locked" = direct ]; then
  waits=$("$PY" -c 'import json,sys; print(json.load(open(sys.argv[1]))["exports"][0]["range_lock_waits"])' "$T/stats.json")
  [ "${waits:-0}" -gt 0 ] && tap_ok "$dp: conflicting writes waited for each other ($waits times)" \
    || tap_fail "$dp: no write waited for a conflicting one (range_lock_waits=${waits:-?})"
fi
stop_shunt_bounded 20; rc=$?
[ $rc -eq 0 ] && tap_ok "server exits with status 0" || tap_fail "server exit status $rc"
tap_check "no sanitizer report in the server log" sanitizer_clean "$T/shunt.log"

# Two exports of one file: the export's path and auto.
head -c 16M /dev/urandom >"$img"
if start_shunt "$(export_arg disk "$img")" "other=$img"; then
  echo "# two exports of one file: $dp and auto"
  OVERLAP_SEED=$RANDOM tap_relay timeout 120 "$PY" "$top/tests/raw/overlap_writes.py" "$PORT" disk,other 1024 25600 10
  stop_shunt_bounded 20; rc=$?
  [ $rc -eq 0 ] && tap_ok "two exports of one file: server exits with status 0" \
    || tap_fail "two exports of one file: server exit status $rc"
  tap_check "two exports of one file: no sanitizer report in the server log" sanitizer_clean "$T/shunt.log"
else
  tap_fail "two exports of one file: server starts"
fi
tap_finish
