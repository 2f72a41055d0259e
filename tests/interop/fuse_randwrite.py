#!/usr/bin/env python3
# fuse_randwrite.py FILE REFERENCE: from 4 threads at once, each in its own region
# (regions meet inside 512-byte blocks, so neighbours' read-modify-writes collide),
# write random pieces of random unaligned lengths to FILE and to REFERENCE (a plain
# copy of FILE's contents); exit 1 unless the two then hold the same bytes.
# Used by fuse_ext4.sh.
import os, random, sys, threading

path, ref = sys.argv[1], sys.argv[2]
fd, rfd = os.open(path, os.O_RDWR), os.open(ref, os.O_RDWR)
size = os.fstat(fd).st_size
nthreads, region = 4, size // 4 - 333
errors = []

def worker(i):
    rnd = random.Random(1000 + i)
    lo, hi = i * region + 77, (i + 1) * region + 77
    try:
        for _ in range(150):
            n = rnd.choice([1, 7, 511, 512, 513, 4096, 5000, 65536 + 3, 300000])
            off = rnd.randrange(lo, hi - n)
            data = rnd.randbytes(n)
            if os.pwrite(fd, data, off) != n:
                errors.append("short write")
            os.pwrite(rfd, data, off)
    except OSError as e:
        errors.append(str(e))

ts = [threading.Thread(target=worker, args=(i,)) for i in range(nthreads)]
for t in ts: t.start()
for t in ts: t.join()
# The last bytes of the export: an unaligned write that ends exactly at the end.
tail = b"end-of-export"
os.pwrite(fd, tail, size - len(tail)); os.pwrite(rfd, tail, size - len(tail))
os.fsync(fd)
if errors:
    print("errors:", errors[:3]); sys.exit(1)
a = os.pread(fd, size, 0); b = os.pread(rfd, size, 0)
if a != b:
    first = next(k for k in range(size) if a[k] != b[k])
    print("differ at", first); sys.exit(1)
