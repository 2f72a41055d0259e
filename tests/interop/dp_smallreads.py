#!/usr/bin/env python3
"""dp_smallreads.py URI IMAGE STATS PID: small (4 KiB) READs on datapath=auto
and the page cache.  The server (PID) writes its stats to STATS on SIGUSR1.
- Cold: READs of pages that are not cached go O_DIRECT (auto_choice direct)
  and leave the page cache alone: none of those pages is cached after them.
- Hot: READs of cached pages are read into a buffer and sent with their
  header (auto_choice copy, two CPU copies per byte), none missed; after a
  run of them auto stops asking cachestat(2) and reads RWF_NOWAIT.
- Cold again, right after the hot run: the first READ, read RWF_NOWAIT,
  finds its pages missing (auto_cache_misses 1) and completes through the
  page cache (the kernel started reading them in: copy); the next ones ask
  cachestat again and go O_DIRECT, leaving their pages out of the cache.
- Half cached, after another hot run: a 12 KiB READ whose first page is
  cached and the rest not reads the first page RWF_NOWAIT and the rest as
  a plain read: one miss, counted as copy, the data whole.
Every READ's data must match the image.  Prints "ok - " / "not ok - " lines."""
import json
import os
import random
import signal
import sys
import time

import nbd

from pagecache import cached_pages, drop_cache

uri, path, stats_path, pid = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
img = open(path, "rb").read()
MiB = 1 << 20
BS = 4096


def report(cond, what):
    print(("ok - " if cond else "not ok - ") + what, flush=True)
    return cond


def stats():
    """The first export's stats, freshly written."""
    try:
        os.unlink(stats_path)
    except FileNotFoundError:
        pass
    os.kill(pid, signal.SIGUSR1)
    for _ in range(100):
        try:
            with open(stats_path) as f:
                return json.load(f)["exports"][0]
        except (FileNotFoundError, ValueError):
            time.sleep(0.05)
    raise RuntimeError("no stats written")


def delta(a, b):
    """What the reads between stats a and b were counted as."""
    ch = lambda e, p: e["auto_choice"][p]["reads"]
    return {"copy": ch(b, "copy") - ch(a, "copy"), "direct": ch(b, "direct") - ch(a, "direct"),
            "mmap": ch(b, "mmap") - ch(a, "mmap"), "splice": ch(b, "splice") - ch(a, "splice"),
            "misses": b["auto_cache_misses"] - a["auto_cache_misses"],
            "copy_bytes": b["bytes_by_path"]["copy"] - a["bytes_by_path"]["copy"],
            "copied": b["server_copied_read_bytes"] - a["server_copied_read_bytes"]}


def read_blocks(offsets, simple, size=BS):
    """READ size bytes at each offset, one at a time; True when all match."""
    h = nbd.NBD()
    h.set_strict_mode(0)   # READs not aligned to 4 KiB (the minimum block size is 512)
    h.set_request_structured_replies(not simple)
    h.connect_uri(uri)
    good = all(h.pread(size, off) == img[off:off + size] for off in offsets)
    h.shutdown()
    return good


rnd = random.Random(int(os.environ.get("SEED", "1")))
drop_cache(path)
if cached_pages(path, 0, len(img)) is None:
    print("ok - small reads and the page cache # SKIP no cachestat(2) on this kernel")
    sys.exit(0)
if cached_pages(path, 0, len(img)) != 0:
    print("ok - small reads and the page cache # SKIP the page cache of %s cannot be dropped (tmpfs?)" % path)
    sys.exit(0)
report(True, "the image is out of the page cache")

# Cold: 64 blocks of [0, 4 MiB), structured and simple replies.
cold = rnd.sample(range(0, 4 * MiB, BS), 64)
s0 = stats()
ok = read_blocks(cold[:32], False) and read_blocks(cold[32:], True)
d = delta(s0, stats())
left = cached_pages(path, 0, 4 * MiB)
report(ok, "cold: 64 small READs return the image's data")
report(d["direct"] == 64 and d["copy"] == 0 and d["misses"] == 0,
       "cold: all went O_DIRECT (auto_choice %s)" % d)
report(left == 0, "cold: none of their pages is in the page cache after them (%d cached)" % left)

# Hot: [4 MiB, 8 MiB) read into the page cache (no readahead past it),
# then 200 blocks of it.
fd = os.open(path, os.O_RDONLY)
os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_RANDOM)
os.pread(fd, 4 * MiB, 4 * MiB)
os.close(fd)
hot = [4 * MiB + 512 * rnd.randrange(0, (4 * MiB - BS) // 512) for _ in range(200)]   # 512-byte aligned
s0 = stats()
ok = read_blocks(hot[:100], False) and read_blocks(hot[100:], True)
d = delta(s0, stats())
report(ok, "hot: 200 small READs return the image's data")
report(d["copy"] == 200 and d["direct"] == 0 and d["mmap"] == 0 and d["misses"] == 0,
       "hot: all served from the page cache, read into a buffer (auto_choice %s)" % d)
report(d["copy_bytes"] == 200 * BS and d["copied"] == 2 * 200 * BS,
       "hot: counted as copy bytes, two CPU copies per byte (%d bytes, %d copies)" % (d["copy_bytes"], d["copied"]))

# Cold again, right after the hot run: 16 blocks of [8 MiB, 12 MiB).
cold2 = rnd.sample(range(8 * MiB, 12 * MiB, BS), 16)
report(cached_pages(path, 8 * MiB, 16 * MiB) == 0, "[8 MiB, 16 MiB) is not cached")
s0 = stats()
ok = read_blocks(cold2, False)
d = delta(s0, stats())
report(ok, "cold after hot: 16 small READs return the image's data")
report(d["misses"] == 1 and d["copy"] == 1 and d["direct"] == 15,
       "cold after hot: the first read RWF_NOWAIT missed and completed through the page cache, "
       "the others went O_DIRECT (auto_choice %s)" % d)
# The missed READ's pages (and what the kernel read ahead of them) are
# cached; the O_DIRECT ones' are not.
others = [o for o in cold2[1:] if not (cold2[0] <= o < cold2[0] + 128 * 1024)]
stray = sum(cached_pages(path, o, o + BS) for o in others)
report(cached_pages(path, cold2[0], cold2[0] + BS) == 1 and stray == 0,
       "cold after hot: only the missed READ's block was read into the page cache "
       "(%d of %d others cached)" % (stray, len(others)))

# Half cached: another hot run, then a 12 KiB READ at a block of
# [14 MiB, 15 MiB) (well past what the misses above read ahead) of which
# only the first page was read into the cache (through a descriptor
# without readahead).
half = 14 * MiB + BS * rnd.randrange(0, MiB // BS)
fd = os.open(path, os.O_RDONLY)
os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_RANDOM)
os.pread(fd, BS, half)
os.close(fd)
report(cached_pages(path, half, half + 3 * BS) == 1, "half cached: 1 of the 3 pages cached")
ok = read_blocks(hot[:40], False)
s0 = stats()
ok = read_blocks([half], False, 3 * BS) and read_blocks([half + 512], True, 2 * BS) and ok
d = delta(s0, stats())
report(ok, "half cached: the 12 KiB READ (and an 8 KiB one inside it, now cached) return the image's data")
report(d["misses"] == 1 and d["copy"] == 2 and d["direct"] == 0,
       "half cached: it missed once and was finished as a plain read (auto_choice %s)" % d)
