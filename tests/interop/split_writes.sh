#!/usr/bin/env bash
# split_writes.sh: WRITE payloads arriving in pieces (tests/raw/split_writes.py) on
# every data path (auto too): pipelines of small and large writes, reads and a flush cut into
# random pieces (compact and extended headers, simple and structured replies) all
# succeed and read back; hang-ups in the middle of a header or payload write
# nothing; SIGTERM while a small write's payload arrives still writes and answers
# it, then the server exits with status 0 (and, under ASan, a clean log).
. "$(dirname "$0")/../lib.sh"
. "$SHUNT_TOP/tests/tools/trust-lib.sh"
need_deps
top=$(cd "$(dirname "$0")/../.." && pwd)

img=$T/disk.img
for dp in copy splice mmap direct auto; do
  head -c 16M /dev/urandom >"$img"
  : >"$T/shunt.log"
  if ! start_shunt "disk=$img,datapath=$dp,chunk=64K"; then
    tap_fail "$dp: server starts"; continue
  fi
  SPLIT_WRITES_SEED=$RANDOM tap_relay timeout 300 /usr/bin/python3 "$top/tests/raw/split_writes.py" \
    "$PORT" disk "$img" "$SHUNT_PID"
  # split_writes.py sent SIGTERM last.
  for _ in $(seq 200); do shunt_alive || break; sleep 0.1; done
  if shunt_alive; then
    tap_fail "$dp: server still running 20 s after SIGTERM"; kill -KILL "$SHUNT_PID"; wait "$SHUNT_PID"
  else
    wait "$SHUNT_PID"; rc=$?
    [ $rc -eq 0 ] && tap_ok "$dp: exit status 0 after SIGTERM" || tap_fail "$dp: exit status $rc"
  fi
  tap_check "$dp: no sanitizer report in the server log" sanitizer_clean "$T/shunt.log"
done
tap_finish
