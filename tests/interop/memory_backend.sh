#!/bin/bash
# memory_backend.sh: the memory backend's cost and memory bounds.  A 16 TiB
# export (allow-overcommit) answers whole-export BLOCK_STATUS and TRIM at once
# (tests/raw/mem_sparse.py); one larger than the machine's memory without the
# option is refused at start, naming it; max-memory caps the pages: a write
# beyond gets ENOSPC and the same and new connections go on working; and with
# the process's memory limited (ulimit -v), the default cap keeps the heap
# from running dry, so new connections are still accepted after the export
# filled up (they used to be closed at accept once a write had hit ENOMEM).
. "$(dirname "$0")/../lib.sh"
top=$(cd "$(dirname "$0")/../.." && pwd)
/usr/bin/python3 -c "import nbd" 2>/dev/null || { tap_skip "memory backend" "python3-libnbd not installed"; tap_done; exit 0; }

start_shunt big=16T,backend=memory,allow-overcommit,max-memory=64M \
  || { tap_fail "a 16T memory export starts with allow-overcommit"; tap_done; exit 1; }
tap_ok "a 16T memory export starts with allow-overcommit"
tap_check "... logs its cap" grep -q "writes beyond 64.0 MiB of pages fail with ENOSPC" "$T/shunt.log"
tap_relay timeout 60 /usr/bin/python3 "$top/tests/raw/mem_sparse.py" "$PORT" big
tap_check "server still running" shunt_alive
tap_check "server stops cleanly" stop_shunt

P=$(free_port)
timeout 20 "$SHUNT" serve --listen "127.0.0.1:$P" big=16T,backend=memory >"$T/refused.log" 2>&1
rc=$?
tap_check "16T memory export without allow-overcommit: refused at start (status $rc)" test "$rc" -ne 0 -a "$rc" -ne 124
tap_check "... with a message naming the size and the option" \
  grep -q "size 16T is more than .* of memory this process may use; add the export option allow-overcommit" "$T/refused.log"

# cap_check URI CAP_MIB: fill the cap, then check ENOSPC and that the
# connection and new ones go on.
cap_check() {
  /usr/bin/python3 - "$1" "$2" <<'PY'
import errno, nbd, sys
uri, cap = sys.argv[1], int(sys.argv[2]) << 20
def check(c, what):
    print(("ok - " if c else "not ok - ") + what, flush=True)
def err(f):
    try:
        f()
        return 0
    except nbd.Error as e:
        return e.errnum
h = nbd.NBD(); h.connect_uri(uri)
chunk = min(cap, 32 << 20)
data = bytes((i * 7) & 0xff for i in range(chunk))
off, e = 0, 0
while off < (4 << 30) and not e:
    e = err(lambda: h.pwrite(data, off))
    off += 0 if e else chunk
check(e == errno.ENOSPC, "writes stop with ENOSPC (errno %d) after %d MiB" % (e, off >> 20))
check(cap // 2 <= off <= cap, "... at the cap (%d MiB written, cap %d MiB)" % (off >> 20, cap >> 20))
check(err(lambda: h.pwrite(data[:4096], off + (64 << 20))) == errno.ENOSPC, "one more page: ENOSPC")
check(h.pread(4096, 0) == data[:4096], "the same connection reads")
check(err(lambda: h.pwrite(data[:8192], 4096)) == 0, "... and rewrites allocated pages")
for i in range(3):
    g = nbd.NBD(); g.connect_uri(uri)
    check(g.pread(4096, chunk - 4096) == data[chunk - 4096:], "new connection %d reads" % (i + 1))
    g.shutdown()
check(err(lambda: h.trim(chunk, 0)) == 0, "TRIM frees pages")
check(err(lambda: h.pwrite(data[:4096], off + (64 << 20))) == 0, "... then a new page fits again")
h.shutdown()
PY
}
export -f cap_check

start_shunt capped=1G,backend=memory,max-memory=8M || { tap_fail "max-memory=8M export starts"; tap_done; exit 1; }
tap_relay timeout 60 bash -c 'cap_check "$@"' cap_check "nbd://127.0.0.1:$PORT/capped" 8
tap_check "server still running" shunt_alive
tap_check "server stops cleanly" stop_shunt

# The process may use 1 GiB (address space): a 16T export with
# allow-overcommit caps its pages at half of that by default (two workers:
# thread stacks and arenas stay small).  ASan reserves
# terabytes of address space: no ulimit -v there.
if grep -qa __asan_init "$SHUNT"; then
  tap_skip "memory limited by ulimit -v" "ASan build"
else
  PORT=$(free_port)
  (ulimit -v $((1 << 20)); exec "$SHUNT" serve --threads 2 --listen "127.0.0.1:$PORT" big=16T,backend=memory,allow-overcommit) \
    >>"$T/shunt.log" 2>&1 &
  SHUNT_PID=$!; _cleanup_pids+=("$SHUNT_PID")
  if wait_port "$PORT" 10; then
    tap_check "ulimit -v 1G: default cap half of it" grep -q "writes beyond 512.0 MiB of pages" "$T/shunt.log"
    tap_relay timeout 120 bash -c 'cap_check "$@"' cap_check "nbd://127.0.0.1:$PORT/big" 512
    tap_check "server still running" shunt_alive
    tap_check "server stops cleanly" stop_shunt
  else
    tap_fail "server starts under ulimit -v 1G"
  fi
fi
tap_check "no sanitizer report in the log" bash -c "! grep -E \"ERROR: AddressSanitizer|runtime error|LeakSanitizer\" \"$T/shunt.log\""
tap_done
