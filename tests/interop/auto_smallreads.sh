#!/usr/bin/env bash
# auto_smallreads.sh: small READs on datapath=auto (dp_smallreads.py): cold
# ones go O_DIRECT and leave the page cache alone, hot ones are served from
# the page cache (read into a buffer, as copy), and after a run of hot ones
# auto reads RWF_NOWAIT without asking cachestat(2): the first cold READ
# then is counted as a cache miss and the next ones go O_DIRECT again.
# On tmpfs, which refuses RWF_NOWAIT reads, small READs still read right.
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
# A file system that refuses RWF_NOWAIT reads (tmpfs, when O_DIRECT works
# there so that auto asks at all): after a run of cached small READs the
# first RWF_NOWAIT one is refused, finished as a plain read, and the export
# keeps asking cachestat; every READ returns the data.
shm=$(findmnt -n -o TARGET -t tmpfs /dev/shm 2>/dev/null | head -n 1)
if [ -z "$shm" ] || ! [ -w "$shm" ]; then
  tap_skip "auto small reads on tmpfs" "no writable tmpfs at /dev/shm"
else
  simg=$(mktemp "$shm/shunt-test.XXXXXX")
  head -c $((4 << 20)) /dev/urandom >"$simg"
  : >"$T/shunt.log"
  if start_shunt --stats "$T/stats-shm.json" "disk=$simg,datapath=auto"; then
    if grep -q "O_DIRECT does not work" "$T/shunt.log"; then
      tap_skip "auto small reads on tmpfs" "O_DIRECT does not work on tmpfs here: auto reads it as copy without asking"
    else
      out=$("$PY" -c 'import nbd,random,sys
img=open(sys.argv[2],"rb").read()
h=nbd.NBD(); h.connect_uri(sys.argv[1])
offs=[4096*random.randrange(1023) for _ in range(100)]
print("good" if all(h.pread(4096,o)==img[o:o+4096] for o in offs) else "bad"); h.shutdown()' "nbd://127.0.0.1:$PORT/disk" "$simg" 2>&1)
      [ "$out" = good ] && tap_ok "tmpfs: 100 small READs return the data" || tap_fail "tmpfs: small READs: $out"
      if grep -q "refuses RWF_NOWAIT" "$T/shunt.log"; then
        tap_ok "tmpfs: the refusal of RWF_NOWAIT was noted once ($(grep -c "refuses RWF_NOWAIT" "$T/shunt.log") log line)"
      else
        tap_ok "tmpfs: this kernel reads tmpfs RWF_NOWAIT (nothing refused)"
      fi
    fi
    stop_shunt_within; rc=$?
    [ $rc -eq 0 ] && tap_ok "tmpfs: clean exit" || tap_fail "tmpfs: exit status $rc"
  else
    tap_fail "tmpfs: shunt serve starts"
  fi
  rm -f "$simg"
fi
tap_finish
