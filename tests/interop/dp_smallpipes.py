#!/usr/bin/env python3
"""dp_smallpipes.py URI IMAGE LABEL [SECONDS] [--cold]: several clients at once (one
thread and connection each), each with 8 large reads (256 KiB to 4 MiB, some
at odd offsets) in flight, structured and simple replies; every byte must
match the image, and everything must be done within SECONDS (default 60: a
read that never completes is a hang).  Used by small_pipes.sh, where the
server's user gets small pipes.  --cold drops the image's pages from the
page cache before each round.  Prints "ok - " / "not ok - " lines."""
import os
import random
import sys
import threading
import time

import nbd

uri, path, label = sys.argv[1:4]
args = [a for a in sys.argv[4:] if a != "--cold"]
cold = "--cold" in sys.argv[4:]
limit = float(args[0]) if args else 60.0
img = open(path, "rb").read()
SIZES = [256 << 10, 1 << 20, (1 << 20) + 4096, 3 << 20, 4 << 20]
CLIENTS = 6
results = {}


def client(i, simple, deadline):
    rnd = random.Random(i * 2 + simple)
    try:
        h = nbd.NBD()
        h.set_request_structured_replies(not simple)
        h.connect_uri(uri)
        reads = []
        for k in range(8):
            n = rnd.choice(SIZES)
            o = rnd.randrange(0, len(img) - n) // 512 * 512
            if k % 2 == 0:
                o = o // 4096 * 4096   # half page-aligned, half not
            b = nbd.Buffer(n)
            h.aio_pread(b, o)
            reads.append((b, n, o))
        while h.aio_in_flight() > 0:
            if time.monotonic() > deadline:
                results[i] = "%d reads still in flight after %.0f s (hang)" % (h.aio_in_flight(), limit)
                return   # the handle is left open: closing it would wait
            h.poll(500)
        bad = [(n, o) for b, n, o in reads if b.to_bytearray() != img[o:o + n]]
        results[i] = "wrong data in reads (len, offset) %s" % bad[:3] if bad else None
        h.shutdown()
    except Exception as e:   # noqa: BLE001 - any failure of a read is a test failure
        results[i] = "error: %s" % e


for simple in (False, True):
    if cold:
        fd = os.open(path, os.O_RDONLY)
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
        os.close(fd)
    results.clear()
    deadline = time.monotonic() + limit
    ts = [threading.Thread(target=client, args=(i, simple, deadline), daemon=True) for i in range(CLIENTS)]
    for t in ts:
        t.start()
    for t in ts:
        t.join(max(0.0, deadline - time.monotonic()) + 5)
    errs = [results.get(i, "thread did not finish") for i in range(CLIENTS)]
    errs = [e for e in errs if e]
    mode = "simple" if simple else "structured"
    if errs:
        print("not ok - %s: %d clients x 8 large reads (%s): %s" % (label, CLIENTS, mode, "; ".join(errs[:3])))
    else:
        print("ok - %s: %d clients x 8 large reads (%s) complete, every byte right" % (label, CLIENTS, mode))
sys.stdout.flush()
# Daemon threads stuck in a hung read must not keep the process alive.
os._exit(0)
