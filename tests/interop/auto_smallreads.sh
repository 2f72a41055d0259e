#!/usr/bin/env bash
# auto_smallreads.sh: small READs on datapath=auto (dp_smallreads.py): cold
# ones go O_DIRECT and leave the page cache alone, hot ones are served from
# the page cache (read into a buffer, as copy), and after a run of hot ones
# auto reads RWF_NOWAIT without asking cachestat(2): the first cold READ
# then is counted as a cache miss and the next ones go O_DIRECT again.
. "$(dirname "$0")/../lib.sh"
here=$(cd "$(dirname "$0")" && pwd)
PY=/usr/bin/python3

if ! "$PY" -c 'import nbd' 2>/dev/null; then
  tap_skip "auto small reads" "python3-nbd not installed"
  tap_done; exit
fi
img=$T/disk.img
head -c $((16 << 20)) /dev/urandom >"$img"
if start_shunt --stats "$T/stats.json" "disk=$img,datapath=auto"; then
  if grep -q "O_DIRECT does not work" "$T/shunt.log"; then
    tap_skip "auto small reads" "O_DIRECT does not work in $T"
  else
    SEED=$RANDOM tap_relay "$PY" "$here/dp_smallreads.py" "nbd://127.0.0.1:$PORT/disk" "$img" "$T/stats.json" "$SHUNT_PID"
  fi
  stop_shunt_within; rc=$?
  [ $rc -eq 0 ] && tap_ok "clean exit" || tap_fail "exit status $rc"
else
  tap_fail "shunt serve starts"
fi
tap_finish
