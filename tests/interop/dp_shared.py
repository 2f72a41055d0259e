#!/usr/bin/python3
"""dp_shared.py: two exports of one file, one connection to each: what is
written through one reads back through the other, byte for byte.

  dp_shared.py URI_A URI_B IMAGE LABEL [--seed N]
URI_A and URI_B name two exports of the file IMAGE (on different data
paths).  Rounds of writes through one connection, then reads of the same
ranges through the other (and the other way round): aligned and unaligned
(512-byte granular), small (one block or less) and large (several chunks),
single and pipelined, WRITE_ZEROES among them; each range is read twice on
the other side (the first read may go to the disk, the second finds it in
the page cache), both compared with a mirror.  Then FLUSH on both and the
file itself equals the mirror.  Prints "ok - x" / "not ok - x" lines."""
import argparse
import random
import sys

import nbd

from pagecache import drop_cache

ap = argparse.ArgumentParser()
ap.add_argument("uri_a")
ap.add_argument("uri_b")
ap.add_argument("image")
ap.add_argument("label")
ap.add_argument("--seed", type=int, default=1)
ap.add_argument("--rounds", type=int, default=40)
args = ap.parse_args()
rnd = random.Random(args.seed)


def connect(uri):
    h = nbd.NBD()
    h.set_strict_mode(0)   # unaligned requests: the server's min block is 512
    h.set_uri_allow_local_file(True)   # tls-psk-file=
    h.connect_uri(uri)
    return h


a, b = connect(args.uri_a), connect(args.uri_b)
size = a.get_size()
mirror = bytearray(open(args.image, "rb").read())
if len(mirror) != size or b.get_size() != size:
    print("not ok - %s: both exports have the file's size" % args.label)
    sys.exit(1)

# (offset granularity, length range) of the kinds of writes.
KINDS = [
    ("aligned small", 4096, (4096, 4096)),
    ("unaligned small", 512, (512, 3584)),
    ("unaligned edge-crossing", 512, (4608, 12288)),
    ("aligned large", 4096, (256 << 10, 1 << 20)),
    ("unaligned large", 512, ((256 << 10) + 512, (1 << 20) + 3584)),
]
bad = []
n_writes = n_reads = 0
for rnd_no in range(args.rounds):
    w, r = (a, b) if rnd_no % 2 == 0 else (b, a)
    wname, rname = ("A", "B") if w is a else ("B", "A")
    if rnd_no % 5 == 4:
        drop_cache(args.image)   # the reads of this round start cold
    ranges = []
    for kind, gran, (lo, hi) in KINDS:
        n = rnd.randrange(lo, hi + 1, 512) if lo != hi else lo
        off = rnd.randrange(0, (size - n) // gran) * gran
        if kind.startswith("unaligned") and off % 4096 == 0:
            off += 512
        if off + n > size:
            off = (size - n) // 4096 * 4096 + (512 if gran == 512 else 0)
            n = min(n, size - off)
        if rnd.random() < 0.15:
            data = bytes(n)
            w.zero(n, off)
        else:
            data = rnd.randbytes(n)
            w.pwrite(data, off)
        mirror[off:off + n] = data
        ranges.append((kind, off, n))
        n_writes += 1
    # Pipelined: 16 small unaligned writes at once, in distinct 64 KiB slots
    # (in flight together, their order is not defined where they overlap).
    cookies = []
    for slot in rnd.sample(range(size // (64 << 10)), 16):
        n = rnd.randrange(512, 8193, 512)
        off = slot * (64 << 10) + rnd.randrange(0, ((64 << 10) - n) // 512) * 512
        data = rnd.randbytes(n)
        cookies.append(w.aio_pwrite(nbd.Buffer.from_bytearray(bytearray(data)), off))
        mirror[off:off + n] = data
        ranges.append(("pipelined", off, n))
        n_writes += 1
    while w.aio_in_flight() > 0:
        w.poll(-1)
    for c in cookies:
        if w.aio_command_completed(c) is not True:
            bad.append((rnd_no, "pipelined write failed", 0, 0))
    for kind, off, n in ranges:
        for attempt in ("first", "again"):
            got = r.pread(n, off)
            n_reads += 1
            want = bytes(mirror[off:off + n])
            if got != want:
                first = next(i for i in range(n) if got[i] != want[i])
                bad.append((rnd_no, "%s written through %s, %s read through %s" % (kind, wname, attempt, rname),
                            off, first))
    if len(bad) > 8:
        break

print("# %s: %d writes, %d reads in %d rounds" % (args.label, n_writes, n_reads, rnd_no + 1))
ok = not bad
print("%s - %s: writes through each export read back through the other, byte for byte%s"
      % ("ok" if ok else "not ok", args.label, "" if ok else " (round, what, offset, first bad byte): %s" % bad[:6]))
a.flush()
b.flush()
same = open(args.image, "rb").read() == bytes(mirror)
print("%s - %s: after FLUSH on both, the file holds every acknowledged write"
      % ("ok" if same else "not ok", args.label))
a.shutdown()
b.shutdown()
sys.exit(0 if ok and same else 1)
