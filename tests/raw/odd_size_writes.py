#!/usr/bin/python3
"""odd_size_writes.py: unaligned writes and zeroes up to the end of an export
whose size is not a multiple of 4 KiB (its last block is partial).

  odd_size_writes.py PORT EXPORT IMAGE
EXPORT serves IMAGE.  300 WRITEs (some with FUA) and WRITE_ZEROES at random
offsets and lengths, one at a time, all succeed; the whole export then reads
back as the mirror kept here (also as one chunk with DF and structured
replies), and IMAGE keeps its size.
Prints "ok - x" / "not ok - x" lines for tests/lib.sh tap_relay."""
import os
import random
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tools"))
from nbdraw import *  # noqa: E402,F401,F403  (constants and the client)
import nbdraw  # noqa: E402

port, name, path = int(sys.argv[1]), sys.argv[2], sys.argv[3]
tap = nbdraw.Tap()
rnd = random.Random(int(os.environ.get("ODD_SIZE_SEED", "3")))


def main():
    size = os.path.getsize(path)
    img = bytearray(open(path, "rb").read())
    c = nbdraw.Client(port=port, timeout=30)
    c.greeting()
    c.go(name, infos=())
    errors = []
    for i in range(300):
        off = rnd.randrange(0, size)
        if rnd.random() < 0.3:
            off = max(0, size - rnd.randrange(1, 5000))   # near the end
        ln = rnd.randrange(1, min(9000, size - off) + 1)
        if rnd.random() < 0.8:
            d = rnd.randbytes(ln)
            fl = NBD_CMD_FLAG_FUA if rnd.random() < 0.2 else 0
            err = nbdraw.reply_error(c.replies(c.request(NBD_CMD_WRITE, off, payload=d, flags=fl)))
            img[off:off + ln] = d
        else:
            err = nbdraw.reply_error(c.replies(c.request(NBD_CMD_WRITE_ZEROES, off, ln)))
            img[off:off + ln] = bytes(ln)
        if err:
            errors.append((i, off, ln, err))
    tap.check(not errors, "every write and zeroing succeeds", str(errors[:5]))
    got, err = nbdraw.read_data(c.replies(c.request(NBD_CMD_READ, 0, size), read_len=size), 0, size)
    bad = [i for i in range(size) if got[i] != img[i]] if not err else ["read error %d" % err]
    tap.check(not bad, "the export reads back as written (last partial block too)",
              "%d bytes differ, first at %s" % (len(bad), bad[:1]))
    c.disconnect()
    # Structured replies: a READ with DF ("don't fragment") is one data chunk.
    c = nbdraw.Client(port=port, timeout=30)
    c.greeting()
    if c.option(NBD_OPT_STRUCTURED_REPLY)[0] == NBD_REP_ACK:
        c.structured = True
    c.go(name, infos=())
    reps = c.replies(c.request(NBD_CMD_READ, 0, size, flags=NBD_CMD_FLAG_DF))
    chunks = [r for r in reps if r.kind == "structured" and r.type == NBD_REPLY_TYPE_OFFSET_DATA]
    got, err = nbdraw.read_data(reps, 0, size)
    tap.check(c.structured and len(chunks) == 1 and got == bytes(img),
              "a READ with DF is one data chunk with the written bytes",
              "%d data chunks, error %d" % (len(chunks), err))
    c.disconnect()
    tap.check(os.path.getsize(path) == size, "the image keeps its size (%d)" % size,
              "now %d" % os.path.getsize(path))
    return tap.failed == 0


sys.exit(0 if main() else 1)
