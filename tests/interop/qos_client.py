#!/usr/bin/env python3
"""qos_client.py IMAGE URI COUNT SIZE QD [--conns N] [--hold FILE]: COUNT reads of
SIZE bytes at random 4 KiB-aligned offsets, QD in flight on each of N connections,
every one verified against IMAGE. Prints the seconds they took; with --hold, then
waits with the connections open until FILE exists (so that the server's stats show
their flows). Exit status 1 when a read failed or returned wrong data."""
import os
import argparse
import random
import sys
import time

import nbd

ap = argparse.ArgumentParser()
ap.add_argument("image")
ap.add_argument("uri")
ap.add_argument("count", type=int)
ap.add_argument("size", type=int)
ap.add_argument("qd", type=int)
ap.add_argument("--conns", type=int, default=1)
ap.add_argument("--hold", metavar="FILE")
a = ap.parse_args()

data = open(a.image, "rb").read()
hs = []
for _ in range(a.conns):
    h = nbd.NBD()
    h.set_uri_allow_local_file(True)
    h.connect_uri(a.uri)
    hs.append(h)

t0 = time.monotonic()
left, bad = a.count, 0
pending = [[] for _ in hs]   # per connection: (cookie, buffer, offset)
while left or any(pending):
    for i, h in enumerate(hs):
        while left and len(pending[i]) < a.qd:
            off = random.randrange(0, (len(data) - a.size) // 4096 + 1) * 4096
            b = nbd.Buffer(a.size)
            pending[i].append((h.aio_pread(b, off), b, off))
            left -= 1
    for i, h in enumerate(hs):
        if pending[i]:
            h.poll(-1 if len(hs) == 1 else 0)
        still = []
        for cookie, b, off in pending[i]:
            if h.aio_command_completed(cookie):
                bad += b.to_bytearray() != data[off:off + a.size]
            else:
                still.append((cookie, b, off))
        pending[i] = still
    if len(hs) > 1 and any(pending):
        time.sleep(0.0005)
print(f"{time.monotonic() - t0:.3f}", flush=True)
while a.hold and not os.path.exists(a.hold):
    time.sleep(0.05)
for h in hs:
    h.shutdown()
sys.exit(1 if bad else 0)
