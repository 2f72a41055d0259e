#!/usr/bin/python3
# copy_faults.py URI PID LABEL [split]: after a warm-up, N READs and WRITEs of 1 MiB and
# 4 KiB (a quarter each, 1 to 16 in flight, data checked) must cost the server (PID)
# far fewer than one minor page fault per request: its payload buffers are
# reused, not mapped, faulted and zeroed per request.  Counts from
# /proc/PID/stat (field 10, minflt: all threads).  Prints "ok - x" lines;
# with SANITIZED set (an ASan build) the count is shown, not asserted.
# split: READs in the first half of the image, WRITEs in the second (for a
# server that sends cached pages from a mapping of the file and writes
# O_DIRECT, which drops the cached pages it overwrites: mapping them in again
# at the next read would count faults that are not its buffers').
import os
import sys

import nbd

uri, pid, label = sys.argv[1], int(sys.argv[2]), sys.argv[3]
split = len(sys.argv) > 4 and sys.argv[4] == "split"
N = 4000
QDS = (1, 4, 8, 16)   # in turn, 100 requests each
BIG = 1 << 20
SIZES = (BIG, 4096)


def minflt():
    with open(f"/proc/{pid}/stat") as f:
        # The command name may hold spaces: fields after its ")".
        return int(f.read().rsplit(")", 1)[1].split()[7])


h = nbd.NBD()
h.set_uri_allow_local_file(True)   # tls-psk-file
h.connect_uri(uri)
size = h.get_size()
pattern = os.urandom(BIG)
# Where READs and WRITEs go: [base, base + span).
span = size // 2 if split else size
read_base, write_base = 0, (size // 2 if split else 0)


def run(n, start, qds=QDS):
    """n requests: read 1M, read 4K, write 1M, write 4K, ..., with 1, 4, 8
    and 16 in flight in turn (how a malloc'ed buffer faults depends on the
    allocator's state, which the depth changes)."""
    bad = 0
    inflight = []
    for i in range(n):
        length = SIZES[i % 2]
        off = ((start + i) * BIG) % (span - BIG)
        if (i // 2) % 2 == 0:
            off += read_base
            buf = nbd.Buffer(length)
            c = h.aio_pread(buf, off)
            inflight.append((c, buf, off, length))
        else:
            off += write_base
            buf = nbd.Buffer.from_bytearray(bytearray(pattern[:length]))
            c = h.aio_pwrite(buf, off)
            inflight.append((c, None, off, length))
        qd = qds[(i // 100) % len(qds)]
        while len(inflight) >= qd or ((i == n - 1 or (i + 1) % 100 == 0) and inflight):
            h.poll(-1)
            still = []
            for c, buf, o, ln in inflight:
                if h.aio_command_completed(c):
                    if buf is not None and buf.to_bytearray() != pattern[:ln]:
                        bad += 1
                else:
                    still.append((c, buf, o, ln))
            inflight = still
    return bad


# Every 1 MiB slot of the image starts with the pattern, so reads check data.
for off in range(0, size - BIG + 1, BIG):
    h.pwrite(pattern, off)


def burst(length, n):
    """n READs of length issued at once, then waited for: the server decodes
    them together and holds a buffer for each, more than the measured part
    ever has in flight (a buffer is returned once its reply is sent: the
    server may hold a few more than the client has requests in flight)."""
    bufs = [nbd.Buffer(length) for _ in range(n)]
    pending = [h.aio_pread(b, read_base + (i * BIG) % (span - BIG)) for i, b in enumerate(bufs)]
    while pending:
        h.poll(-1)
        pending = [c for c in pending if not h.aio_command_completed(c)]


# Warm-up: the server's buffer pool fills.
bad = run(400, 0)
for length in SIZES:
    burst(length, 2 * max(QDS))
before = minflt()
bad += run(N, 400)
after = minflt()
h.shutdown()
faults = after - before
print(f"# {label}: {faults} minor faults over {N} requests (bound {N // 10})")
print(("ok" if bad == 0 else "not ok") + f" - {label}: every read returned the data written ({bad} bad)")
what = f"{label}: {faults} server page faults for {N} 1 MiB/4 KiB READs and WRITEs, below {N // 10}"
# On a sanitizer build the count is only shown (the "#" line above): its
# allocator quarantines what is freed, so every small allocation touches
# fresh memory.
if not os.environ.get("SANITIZED"):
    print(("ok" if faults < N // 10 else "not ok") + f" - {what}")
