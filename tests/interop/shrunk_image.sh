#!/bin/bash
# shrunk_image.sh: an image truncated under a running server.  A read of what
# is past the new end fails with EIO (it is gone; zeroes would pass for data),
# with simple and structured replies, also when the read starts below the new
# end (with simple replies a streaming path may hang up instead, once the
# header is out; never zeroes); the connection goes on, what is left
# still reads back, and a hole below the new end still reads as zeroes.  Run
# per data path (export_arg: copy, splice, direct, mmap).
. "$(dirname "$0")/../lib.sh"
/usr/bin/python3 -c "import nbd" 2>/dev/null || { tap_skip "shrunk image" "python3-libnbd not installed"; tap_done; exit 0; }

img=$T/disk.img
# 8 MiB: data in [0, 2M) and [4M, 8M), a hole in [2M, 4M).
truncate -s 8M "$img"
head -c 2M /dev/urandom | dd of="$img" conv=notrunc status=none
head -c 4M /dev/urandom | dd of="$img" bs=1M seek=4 conv=notrunc status=none
start_shunt "$(export_arg disk "$img")" || { tap_fail "server starts"; tap_done; exit 1; }
tap_ok "server starts"

tap_relay timeout 60 /usr/bin/python3 - "nbd://127.0.0.1:$PORT/disk" "$img" <<'PY'
import errno, nbd, os, sys

uri, img = sys.argv[1], sys.argv[2]
with open(img, "rb") as f:
    head = f.read(64 << 10)
    f.seek((1 << 20) - (32 << 10))
    edge = f.read(32 << 10)

def check(cond, what):
    print(("ok - " if cond else "not ok - ") + what, flush=True)

def connect(structured):
    h = nbd.NBD()
    h.set_request_structured_replies(structured)
    h.connect_uri(uri)
    return h

def read_errno(h, n, off, flags=0):
    """0 when the read succeeds, else the errno (0 when the server hung up)."""
    try:
        h.pread(n, off, flags)
        return 0
    except nbd.Error as e:
        return e.errnum or -1

h = connect(True)
check(h.get_size() == 8 << 20, "8 MiB export")
check(h.pread(64 << 10, 5 << 20) != bytes(64 << 10), "data at 5M before the shrink")
h.shutdown()
os.truncate(img, 3 << 20)   # now [0, 2M) data, [2M, 3M) hole, nothing past 3M

GONE = ((5 << 20, 64 << 10, "data past the new end"),
        (7 << 20, 64 << 10, "past the new end, at 7M"),
        ((3 << 20) - (32 << 10), 64 << 10, "across the new end (hole, then gone)"),
        ((1 << 20) + (512 << 10), 2 << 20, "from data across the hole into what is gone"))
modes = [(False, 0, "simple"), (True, 0, "structured")]
for structured, flags, kind in modes:
    for off, n, what in GONE:
        h = connect(structured)
        e = read_errno(h, n, off, flags)
        if structured or off >= 3 << 20:
            check(e == errno.EIO, "%s: read %s: EIO (%s)" % (kind, what, e))
            check(h.pread(64 << 10, 0, flags) == head, "%s: ... the connection goes on" % kind)
        else:
            # A simple reply's header goes out before the data: a path that
            # streams from the file can only hang up when the end comes.
            check(e in (errno.EIO, -1), "%s: read %s: EIO or a hang-up, never data (%s)" % (kind, what, e))
        del h
    h = connect(structured)
    check(h.pread(64 << 10, 2 << 20, flags) == bytes(64 << 10), "%s: the hole below the new end reads zeroes" % kind)
    check(h.pread(32 << 10, (1 << 20) - (32 << 10), flags) == edge, "%s: data below the new end reads back" % kind)
    h.shutdown()
PY
tap_check "server still running" shunt_alive
stop_shunt
tap_done
