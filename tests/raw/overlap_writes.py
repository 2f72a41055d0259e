#!/usr/bin/python3
"""overlap_writes.py: overlapping WRITEs in flight on two connections at once.

  overlap_writes.py PORT EXPORT[,EXPORT_B] REGIONS MAX_PAIRS MAX_SECONDS
EXPORT is at least REGIONS * 16 KiB; with EXPORT_B (another export of the
same file), connection B uses that one, and the rounds are read back
through A and B in turn.  In every round, connection A writes
[k*16K, +8192) (4 KiB aligned) and connection B writes [k*16K+100, +9900)
(unaligned at both ends; its head shares a block with A's write; every
third round B zeroes that range with WRITE_ZEROES instead) for every region
k, both pipelined and sent interleaved (A_k, B_k, A_k+1, ...; regions in a
random order), with patterns that differ per round and per connection.  Every write must
succeed, then a FLUSH on each connection, then the regions are read back:
bytes only A wrote must be A's, bytes only B wrote B's, bytes both wrote
either A's or B's, bytes nobody wrote what they were.  Rounds go on until
MAX_PAIRS write pairs or MAX_SECONDS, whichever comes first.
Prints "ok - x" / "not ok - x" lines for tests/lib.sh tap_relay."""
import os
import random
import sys
import threading
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tools"))
from nbdraw import *  # noqa: E402,F401,F403  (constants and the client)
import nbdraw  # noqa: E402

port = int(sys.argv[1])
name_a, _, name_b = sys.argv[2].partition(",")
name_b = name_b or name_a
regions, max_pairs, max_seconds = int(sys.argv[3]), int(sys.argv[4]), float(sys.argv[5])
REGION = 16 << 10
A_OFF, A_LEN = 0, 8192
B_OFF, B_LEN = 100, 9900
tap = nbdraw.Tap()
rnd = random.Random(int(os.environ.get("OVERLAP_SEED", "11")))


def client(name):
    c = nbdraw.Client(port=port, timeout=60)
    c.greeting()
    c.go(name, infos=())   # no block size info asked: unaligned requests are fine
    return c


def collect(c, n, errors):
    """Read n write replies on c; record (cookie, error) of failures."""
    try:
        for _ in range(n):
            r = c.recv_reply()
            if r.error:
                errors.append((r.cookie, r.error))
    except Exception as e:   # noqa: BLE001  (reported by the caller)
        errors.append(("exception", repr(e)))


def read_all(c, length):
    out = bytearray()
    step = 1 << 20
    for off in range(0, length, step):
        n = min(step, length - off)
        reps = c.replies(c.request(NBD_CMD_READ, off, n), read_len=n)
        data, err = nbdraw.read_data(reps, off, n)
        if err:
            raise ValueError("read at %d failed: error %d" % (off, err))
        out += data
    return out


def check_round(img, old, da, db):
    """Return a list of problems: (region, what, offset in region, count)."""
    bad = []
    for k in range(regions):
        base = k * REGION
        got = img[base:base + REGION]
        a = da[k * A_LEN:(k + 1) * A_LEN]
        b = db[k * B_LEN:(k + 1) * B_LEN]
        if got[A_OFF:B_OFF] != a[:B_OFF]:
            n = sum(1 for i in range(A_OFF, B_OFF) if got[i] != a[i])
            bad.append((k, "A only", A_OFF, n))
        ga, gb = got[B_OFF:A_LEN], b[:A_LEN - B_OFF]
        if ga != a[B_OFF:A_LEN] and ga != gb:
            # Either writer's bytes, in any mix (block by block, say).
            n = sum(1 for j in range(B_OFF, A_LEN) if got[j] != a[j] and got[j] != b[j - B_OFF])
            if n:
                bad.append((k, "A or B", B_OFF, n))
        if got[A_LEN:B_OFF + B_LEN] != b[A_LEN - B_OFF:]:
            bad.append((k, "B only", A_LEN, 0))
        if got[B_OFF + B_LEN:] != old[base + B_OFF + B_LEN:base + REGION]:
            bad.append((k, "untouched", B_OFF + B_LEN, 0))
    return bad


def main():
    ca, cb = client(name_a), client(name_b)
    span = regions * REGION
    old = read_all(ca, span)
    t0 = time.monotonic()
    pairs = rounds = 0
    write_errors, flush_errors, problems = [], [], []
    while pairs < max_pairs and time.monotonic() - t0 < max_seconds:
        # Every third round B zeroes its range instead (WRITE_ZEROES, whose
        # partial blocks the filesystem zeroes).
        zero = rounds % 3 == 2
        da = rnd.randbytes(A_LEN * regions)
        db = bytes(B_LEN * regions) if zero else rnd.randbytes(B_LEN * regions)
        ea, eb = [], []
        ta = threading.Thread(target=collect, args=(ca, regions, ea))
        tb = threading.Thread(target=collect, args=(cb, regions, eb))
        ta.start()
        tb.start()
        order = list(range(regions))
        rnd.shuffle(order)
        for k in order:
            base = k * REGION
            ca.request(NBD_CMD_WRITE, base + A_OFF, payload=da[k * A_LEN:(k + 1) * A_LEN])
            if zero:
                cb.request(NBD_CMD_WRITE_ZEROES, base + B_OFF, B_LEN)
            else:
                cb.request(NBD_CMD_WRITE, base + B_OFF, payload=db[k * B_LEN:(k + 1) * B_LEN])
        ta.join()
        tb.join()
        write_errors += ea + eb
        for c in (ca, cb):
            err = nbdraw.reply_error(c.replies(c.request(NBD_CMD_FLUSH)))
            if err:
                flush_errors.append((rounds, err))
        img = read_all(cb if rounds % 2 else ca, span)
        for p in check_round(img, old, da, db):
            problems.append((rounds,) + p)
        old = img
        pairs += regions
        rounds += 1
    print("# %d rounds, %d write pairs in %.1f s" % (rounds, pairs, time.monotonic() - t0))
    tap.check(not write_errors, "every overlapping write (and zeroing) succeeds",
              "%d failed, first: %s" % (len(write_errors), write_errors[:5]))
    tap.check(not flush_errors, "FLUSH after each round succeeds",
              "%d of %d rounds failed: %s" % (len(flush_errors), rounds, flush_errors[:5]))
    tap.check(not problems, "every byte is one an acknowledged write (or nobody) left there",
              "%d bad regions (round, region, part, offset, bytes): %s" % (len(problems), problems[:8]))
    for c in (ca, cb):
        c.disconnect()
    return tap.failed == 0


sys.exit(0 if main() else 1)
