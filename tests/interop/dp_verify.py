#!/usr/bin/python3
# dp_verify.py URI IMAGE [--simple] [--seed N] [--ops N]: drive a shunt export
# with libnbd (no block-size request, non-strict: unaligned requests allowed),
# mirror every write into a local copy of IMAGE, and check every read against
# it: large reads (split into many chunks), odd offsets/lengths, FUA writes,
# concurrent requests in flight (aio).  Prints "ok - ..." / "not ok - ...".
import random
import sys

import nbd

uri, image = sys.argv[1], sys.argv[2]
simple = "--simple" in sys.argv
seed = int(sys.argv[sys.argv.index("--seed") + 1]) if "--seed" in sys.argv else 1
nops = int(sys.argv[sys.argv.index("--ops") + 1]) if "--ops" in sys.argv else 300
mode = "simple" if simple else "structured"

h = nbd.NBD()
h.set_request_structured_replies(not simple)
h.set_request_block_size(False)
h.set_strict_mode(0)
h.connect_uri(uri)
img = bytearray(open(image, "rb").read())
size = h.get_size()
assert size == len(img)

def check(what, cond):
    print(("ok - " if cond else "not ok - ") + f"{what} ({mode})", flush=True)
    return cond

# Large and odd reads.
bad = [(n, o) for n, o in [(4 << 20, 0), (8 << 20, 12345), (1, 5), (70000, 65535), (511, 4095),
                            (min(32 << 20, size), size - min(32 << 20, size)), (3 << 20, 511)]
       if o + n <= size and h.pread(n, o) != img[o:o + n]]
check("large and unaligned reads match", not bad) or print("# bad reads:", bad)

# Random reads/writes of odd sizes, sequential.
rnd = random.Random(seed)
ok = True
for i in range(nops):
    n = rnd.choice([1, 511, 512, 513, 4095, 4096, 4097, 65536, 200000, 1 << 20])
    o = rnd.randrange(0, size - n)
    if rnd.random() < 0.5:
        d = rnd.randbytes(n)
        h.pwrite(d, o, nbd.CMD_FLAG_FUA if i % 7 == 0 else 0)
        img[o:o + n] = d
    elif h.pread(n, o) != img[o:o + n]:
        ok = False
        print(f"# mismatch reading {n} at {o}")
check("random unaligned reads/writes match a local mirror", ok)

# Many large reads in flight at once (chunks of different requests interleave
# in completion order; structured chunks arrive out of order).
bufs = []
for i in range(16):
    n = rnd.choice([1 << 20, 3 << 20, (2 << 20) + 777])
    o = rnd.randrange(0, size - n)
    b = nbd.Buffer(n)
    bufs.append((b, n, o, h.aio_pread(b, o)))
while h.aio_in_flight() > 0:
    h.poll(-1)
ok = all(b.to_bytearray() == img[o:o + n] for b, n, o, _ in bufs)
check("16 concurrent large reads match", ok)

# Concurrent non-overlapping small writes inside the same 4 KiB blocks.
base = rnd.randrange(0, size // 4096 - 8) * 4096
cmds = []
for k in range(64):
    d = bytes([k + 1]) * 512
    o = base + k * 512
    cmds.append(h.aio_pwrite(d, o))
    img[o:o + 512] = d
while h.aio_in_flight() > 0:
    h.poll(-1)
check("64 concurrent 512-byte writes within shared 4K blocks", h.pread(64 * 512, base) == img[base:base + 64 * 512])

check("whole image matches at the end", h.pread(size, 0) == img if size <= (32 << 20) else
      all(h.pread(min(32 << 20, size - o), o) == img[o:o + min(32 << 20, size - o)] for o in range(0, size, 32 << 20)))
h.shutdown()
