#!/usr/bin/env python3
"""dp_smallwrites.py URI IMAGE [--max N] [--big N] [--span N] [--conns K] [--rounds R]
[--qd Q] [--seed S] [--label L]: pipelined small WRITEs (1 byte to --max, odd offsets and
lengths, some with FUA), reads and a FLUSH in flight together, from K
connections at once (one thread each, each in its own region of the first
--span bytes); with --big, one write in eight is that long.  In a round every
in-flight write goes to its own slot, so the outcome is defined; rounds
overwrite earlier ones.  Every read must return what the mirror says, and at
the end each region read back over NBD and the image file itself must match
the mirror.  Prints "ok - " / "not ok - " lines; exit status 0."""
import argparse
import random
import sys
import threading

import nbd

ap = argparse.ArgumentParser()
ap.add_argument("uri")
ap.add_argument("image")
ap.add_argument("--max", type=int, default=16384)
ap.add_argument("--big", type=int, default=0)
ap.add_argument("--span", type=int, default=8 << 20)
ap.add_argument("--conns", type=int, default=3)
ap.add_argument("--rounds", type=int, default=40)
ap.add_argument("--qd", type=int, default=32)
ap.add_argument("--seed", type=int, default=1)
ap.add_argument("--label", default="small writes")
a = ap.parse_args()

REGION = a.span // a.conns // 4096 * 4096
SLOT = (max(a.max, a.big) * 2 + 4095) // 4096 * 4096
img = open(a.image, "rb").read(a.conns * REGION)
results = {}


def client(i):
    rnd = random.Random(a.seed * 100 + i)
    base = i * REGION
    mirror = bytearray(img[base:base + REGION])
    nslots = REGION // SLOT
    writes = reads = bad_reads = 0
    try:
        h = nbd.NBD()
        h.set_request_structured_replies(i % 2 == 0)   # simple replies too
        h.set_request_block_size(False)                # unaligned requests (as dp_verify.py)
        h.set_strict_mode(0)
        h.connect_uri(a.uri)
        for _ in range(a.rounds):
            slots = rnd.sample(range(nslots), a.qd)
            pending = []
            for k, s in enumerate(slots):
                n = rnd.choice([1, 512, 4096, 4096, 4096, rnd.randint(1, a.max), a.max])
                if a.big and rnd.random() < 0.125:
                    n = a.big
                off = s * SLOT + rnd.randrange(0, SLOT - n + 1)
                if rnd.random() < 0.6:
                    off = off // 4096 * 4096   # stays in the slot (SLOT is a multiple of 4096)
                if k % 5 == 4:   # a read of a slot nobody writes in this round
                    b = nbd.Buffer(n)
                    h.aio_pread(b, base + off)
                    pending.append((b, off, n))
                    reads += 1
                    continue
                data = rnd.randbytes(n)
                flags = nbd.CMD_FLAG_FUA if rnd.random() < 0.2 else 0
                h.aio_pwrite(nbd.Buffer.from_bytearray(bytearray(data)), base + off, flags=flags)
                mirror[off:off + n] = data
                writes += 1
            h.aio_flush()
            while h.aio_in_flight() > 0:
                h.poll(-1)
            for b, off, n in pending:
                bad_reads += b.to_bytearray() != mirror[off:off + n]
        back = h.pread(REGION, base)
        h.shutdown()
        results[i] = (writes, reads, bad_reads, back == mirror, mirror)
    except Exception as e:   # noqa: BLE001 - any failure is a test failure
        results[i] = str(e)


threads = [threading.Thread(target=client, args=(i,)) for i in range(a.conns)]
for t in threads:
    t.start()
for t in threads:
    t.join()
final = open(a.image, "rb").read(a.conns * REGION)
for i in range(a.conns):
    r = results.get(i)
    if not isinstance(r, tuple):
        print(f"not ok - {a.label}, connection {i}: {r}")
        continue
    writes, reads, bad_reads, same, mirror = r
    print(("ok" if bad_reads == 0 else "not ok")
          + f" - {a.label}, connection {i}: {reads} reads among {writes} pipelined writes (QD {a.qd}) "
          f"return the data written ({bad_reads} wrong)")
    print(("ok" if same else "not ok") + f" - {a.label}, connection {i}: region read back over NBD matches")
    ok = final[i * REGION:(i + 1) * REGION] == mirror
    print(("ok" if ok else "not ok") + f" - {a.label}, connection {i}: the image file holds the data written")
sys.exit(0)
