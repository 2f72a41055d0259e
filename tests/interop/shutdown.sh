#!/usr/bin/env bash
# shutdown.sh: SIGTERM while writes are in flight (the server must stop accepting,
# finish in-flight requests, flush and exit 0). Every write acknowledged with
# success must be in the backing file, every other reply must be ESHUTDOWN (or the
# connection closed), and the server must exit 0 within 20 s.
. "$(dirname "$0")/../lib.sh"
need_deps

img=$T/disk.img
truncate -s 64M "$img"
if ! start_shunt "$(export_arg disk "$img")"; then
  tap_fail "shunt serve started"; tap_finish; exit 1
fi
timeout 60 /usr/bin/python3 - "nbd://127.0.0.1:$PORT/disk" "$SHUNT_PID" "$img" >"$T/py.out" 2>&1 <<'PY'
import errno, os, signal, sys, nbd
uri, pid, path = sys.argv[1], int(sys.argv[2]), sys.argv[3]
h = nbd.NBD()
h.connect_uri(uri)
n, size = 64, 256 << 10
bufs = [bytes([(i * 37 + 1) & 0xFF]) * size for i in range(n)]
cookies = [h.aio_pwrite(nbd.Buffer.from_bytearray(bytearray(b)), i * size) for i, b in enumerate(bufs)]
os.kill(pid, signal.SIGTERM)
while h.aio_in_flight() > 0:
    try:
        h.poll(-1)
    except nbd.Error:
        break
ok = shut = other = 0
bad = []
for i, c in enumerate(cookies):
    try:
        if h.aio_command_completed(c):
            ok += 1
            with open(path, "rb") as f:
                f.seek(i * size)
                if f.read(size) != bufs[i]:
                    bad.append(i)
        else:
            other += 1
    except nbd.Error as e:
        if e.errnum == errno.ESHUTDOWN:
            shut += 1
        elif h.aio_is_dead() or h.aio_is_closed():
            other += 1   # the connection went away before this reply
        else:
            bad.append((i, e.errnum))
print("acked %d, ESHUTDOWN %d, unanswered %d, bad %s" % (ok, shut, other, bad))
sys.exit(1 if bad else 0)
PY
rc=$?
sed 's/^/# /' "$T/py.out"
tap_check "acknowledged writes are in the file; other replies are ESHUTDOWN or none" test "$rc" -eq 0
tap_check "server exits 0 within 20 s of SIGTERM" stop_shunt_within 20
tap_check "nothing listens on the port afterwards" bash -c "! (exec 3<>/dev/tcp/127.0.0.1/$PORT) 2>/dev/null"
tap_finish
