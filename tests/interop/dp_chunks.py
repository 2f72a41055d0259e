#!/usr/bin/env python3
"""dp_chunks.py URI IMAGE DATAPATH: how a 1 MiB READ is cut into structured
chunks (the export's chunk size is 64K).  Cold (the image's pages dropped
from the page cache): 16 data chunks on every streaming path.  Hot (read
once, so cached): one chunk on splice (cachestat(2) says every page is
cached), still 16 on direct (no page cache involved).  A hot 2 MiB READ is
above the one-chunk limit (1 MiB) and is split.  Every read's data must
match the image.  Prints TAP-style "ok - " / "not ok - " lines."""
import sys

import nbd

from pagecache import cached_pages, drop_cache

uri, path, dp = sys.argv[1:4]
img = open(path, "rb").read()


def chunks(h, n, off):
    """(data chunks, data matches) of one structured read."""
    got = [0]
    buf = h.pread_structured(n, off, lambda sub, o, status, err: got.__setitem__(
        0, got[0] + (status == nbd.READ_DATA)) or 0)
    return got[0], buf == img[off:off + n]


def check(cond, what):
    print(("ok - " if cond else "not ok - ") + what)


h = nbd.NBD()
h.connect_uri(uri)
drop_cache(path)
n, same = chunks(h, 1 << 20, 1 << 20)
check(n == 16 and same, f"{dp}: cold 1 MiB read in 16 chunks of 64K ({n}, data {'ok' if same else 'WRONG'})")
n, same = chunks(h, 1 << 20, 1 << 20)
if dp == "splice":
    if cached_pages(path, 0, 4096) is not None:
        check(n == 1 and same, f"splice: the same read, now page-cached, in one chunk ({n}, data {'ok' if same else 'WRONG'})")
    else:
        print("# cachestat(2) unavailable (Linux < 6.5): hot reads are split like cold ones")
        check(n == 16 and same, f"splice without cachestat: hot read split too ({n})")
    h.pread(2 << 20, 2 << 20)   # now cached
    n, same = chunks(h, 2 << 20, 2 << 20)
    check(n == 32 and same, f"splice: a hot 2 MiB read (above the one-chunk limit) is split ({n})")
else:
    check(n == 16 and same, f"{dp}: the read again, still 16 chunks (no page cache) ({n})")
h.shutdown()
