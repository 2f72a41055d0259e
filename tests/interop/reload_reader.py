#!/usr/bin/env python3
"""reload_reader.py IMAGE URI STOPFILE PROGRESSFILE: verified 64 KiB reads at
random offsets through one connection, one after another, until STOPFILE
exists. After each read the number done so far is written to PROGRESSFILE
(so that a test can wait for reads after an event). Prints the count; exit
status 1 at the first failed read or wrong data."""
import os
import random
import sys

import nbd

image, uri, stop, progress = sys.argv[1:5]
data = open(image, "rb").read()
h = nbd.NBD()
h.connect_uri(uri)
n = 0
while not os.path.exists(stop):
    off = random.randrange(0, (len(data) - 65536) // 4096 + 1) * 4096
    try:
        got = h.pread(65536, off)
    except nbd.Error as e:
        print(f"read {n} at {off} failed: {e}")
        sys.exit(1)
    if got != data[off:off + 65536]:
        print(f"read {n} at {off}: wrong data")
        sys.exit(1)
    n += 1
    with open(progress + ".tmp", "w") as f:
        f.write(str(n))
    os.replace(progress + ".tmp", progress)
h.shutdown()
print(n)
