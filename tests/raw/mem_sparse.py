#!/usr/bin/python3
"""mem_sparse.py: whole-export BLOCK_STATUS and TRIM on a huge sparse memory export.

  mem_sparse.py PORT EXPORT
EXPORT is a 16 TiB memory export.  With extended headers (64-bit lengths) one
request covers the whole export: it must be answered at once (the work is the
few allocated pages, not the 2^32 pages of the export) and right.
Prints "ok - x" / "not ok - x" lines for tests/lib.sh tap_relay."""
import os
import struct
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tools"))
from nbdraw import *  # noqa: E402,F401,F403  (constants and the client)
import nbdraw  # noqa: E402

TiB = 1 << 40
BOUND = 3.0   # seconds; a walk over every page took 8-26 s, the tree takes microseconds
port, name = int(sys.argv[1]), sys.argv[2]
tap = nbdraw.Tap()
c = nbdraw.Client(port=port, timeout=60)
info = c.negotiate(name, extended=True, meta=["base:allocation"])
cid = info["contexts"].get("base:allocation")
size = info["size"]
tap.check(size == 16 * TiB and cid is not None, "16 TiB export, base:allocation", info)


def status():
    """[(length, hole)] for the whole export, in one request, and its time."""
    t = time.monotonic()
    r = c.command(NBD_CMD_BLOCK_STATUS, 0, size)
    t = time.monotonic() - t
    p = [x for x in r if x.type == NBD_REPLY_TYPE_BLOCK_STATUS_EXT][0].payload
    n = struct.unpack(">I", p[4:8])[0]
    d = [struct.unpack(">QQ", p[8 + 16 * i:24 + 16 * i]) for i in range(n)]
    return [(ln, bool(s & NBD_STATE_HOLE)) for ln, s in d], t


page = b"\x5a" * 4096
for off in (0, TiB, size - 4096):
    tap.check(not nbdraw.reply_error(c.command(NBD_CMD_WRITE, off, payload=page)),
              "write a page at %d" % off)
d, t = status()
want = [(4096, False), (TiB - 4096, True), (4096, False), (size - TiB - 8192, True), (4096, False)]
tap.check(d == want, "whole-export BLOCK_STATUS: data, hole, data, hole, data", "got %s" % d)
tap.check(t < BOUND, "... answered in %.4f s (bound %g s)" % (t, BOUND))
t = time.monotonic()
r = c.command(NBD_CMD_TRIM, 0, size)
t = time.monotonic() - t
tap.check(not nbdraw.reply_error(r), "whole-export TRIM succeeds", r)
tap.check(t < BOUND, "... in %.4f s (bound %g s)" % (t, BOUND))
d, t = status()
tap.check(d == [(size, True)] and t < BOUND, "then one hole (%.4f s)" % t, d)
r = c.command(NBD_CMD_WRITE_ZEROES, 0, size, flags=NBD_CMD_FLAG_NO_HOLE)
tap.check(not nbdraw.reply_error(r), "whole-export WRITE_ZEROES with NO_HOLE succeeds (allocates nothing)", r)
d, t = status()
tap.check(d == [(size, True)] and t < BOUND, "... still one hole (%.4f s)" % t, d)
c.disconnect()
sys.exit(1 if tap.failed else 0)
