#!/usr/bin/env python3
"""dp_burst.py URI IMAGE LABEL [--cold]: 24 concurrent 3-4 MiB reads at random
offsets, once with structured replies and once with simple replies; every
read's data must match the image.  --cold drops the image's pages from the
page cache before each round.  Used by datapaths.sh to exhaust the arena and
the pipe pool.  Prints TAP-style "ok - " / "not ok - " lines."""
import os
import random
import sys

import nbd

uri, path, label = sys.argv[1:4]
cold = "--cold" in sys.argv[4:]
img = open(path, "rb").read()
for simple in (False, True):
    if cold:
        fd = os.open(path, os.O_RDONLY)
        os.fsync(fd)
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
        os.close(fd)
    h = nbd.NBD()
    h.set_request_structured_replies(not simple)
    h.connect_uri(uri)
    bufs = []
    for _ in range(24):
        n = random.choice([4 << 20, 3 << 20])
        o = random.randrange(0, len(img) - n) // 512 * 512
        b = nbd.Buffer(n)
        h.aio_pread(b, o)
        bufs.append((b, n, o))
    while h.aio_in_flight() > 0:
        h.poll(-1)
    good = all(b.to_bytearray() == img[o:o + n] for b, n, o in bufs)
    print(("ok - " if good else "not ok - ") + "%s: 24 concurrent large reads correct (%s)"
          % (label, "simple" if simple else "structured"))
    h.shutdown()
