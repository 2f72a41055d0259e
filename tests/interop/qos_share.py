#!/usr/bin/env python3
"""qos_share.py IMAGE TOTAL QD URI...: one connection per URI, each keeping QD random
4 KiB reads in flight (so every flow is backlogged all along), every read verified
against IMAGE, until TOTAL reads completed over all connections. The first tenth of
them warm the scheduler up and are not counted; prints the reads each connection
completed after that, in URI order, on one line. Exit status 1 when a read failed
or returned wrong data."""
import argparse
import random
import sys
import time

import nbd

ap = argparse.ArgumentParser()
ap.add_argument("image")
ap.add_argument("total", type=int)
ap.add_argument("qd", type=int)
ap.add_argument("uris", nargs="+")
a = ap.parse_args()

data = open(a.image, "rb").read()
blocks = len(data) // 4096
hs = []
for uri in a.uris:
    h = nbd.NBD()
    h.connect_uri(uri)
    hs.append(h)

warm = a.total // 10
done, bad = 0, 0
counts = [0] * len(hs)
pending = [[] for _ in hs]   # per connection: (cookie, buffer, offset)
while done < a.total:
    for i, h in enumerate(hs):
        while len(pending[i]) < a.qd:
            off = random.randrange(blocks) * 4096
            b = nbd.Buffer(4096)
            pending[i].append((h.aio_pread(b, off), b, off))
    progress = False
    for i, h in enumerate(hs):
        h.poll(0)
        still = []
        for cookie, b, off in pending[i]:
            if h.aio_command_completed(cookie):
                progress = True
                bad += b.to_bytearray() != data[off:off + 4096]
                done += 1
                if done > warm:
                    counts[i] += 1
            else:
                still.append((cookie, b, off))
        pending[i] = still
    if not progress:
        time.sleep(0.0005)
print(" ".join(str(c) for c in counts), flush=True)
for i, h in enumerate(hs):
    while pending[i]:  # let the last reads finish before closing
        h.poll(-1)
        pending[i] = [p for p in pending[i] if not h.aio_command_completed(p[0])]
    h.shutdown()
sys.exit(1 if bad else 0)
