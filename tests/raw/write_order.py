#!/usr/bin/python3
"""write_order.py: small unaligned WRITEs pipelined among READs are not starved.

  write_order.py PORT EXPORT REQUESTS DEPTH MAX_OVERTAKEN
One connection keeps DEPTH requests in flight, REQUESTS in all: every fourth
a 1 KiB WRITE at an offset not aligned to 4 KiB (512, 1536 or 2560 bytes into
one of WRITE_ORDER_BLOCKS blocks, default 256), the others 4 KiB READs
elsewhere.  For every write, the replies of requests sent after it that
arrive before its own are counted ("overtaken by").  Every request must be
answered (within a generous bound: a starved write may never be), every
write must succeed and no write may be overtaken by more than MAX_OVERTAKEN
later requests; then the written bytes read back (either of two writes
in flight together may land last).
Prints "ok - x" / "not ok - x" lines for tests/lib.sh tap_relay."""
import os
import random
import socket
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tools"))
from nbdraw import *  # noqa: E402,F401,F403  (constants and the client)
import nbdraw  # noqa: E402

port, name = int(sys.argv[1]), sys.argv[2]
total, depth, max_over = int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5])
tap = nbdraw.Tap()
rnd = random.Random(int(os.environ.get("WRITE_ORDER_SEED", "5")))
WLEN, RLEN = 1024, 4096
SPAN = 8 << 20                  # writes land in the first half, reads in the second
BLOCKS = int(os.environ.get("WRITE_ORDER_BLOCKS", "256"))   # the writes share these 4 KiB blocks


max_pw = 0


def main():
    c = nbdraw.Client(port=port, timeout=20)
    c.greeting()
    c.go(name, infos=())
    sent = {}                   # cookie -> (sequence number, kind, offset, data)
    seq = answered = 0
    worst = errors = 0
    overtaken = {}              # write cookie -> later replies seen before it
    writes = {}                 # offset -> [(sent at, answered at, data)] (event clock)
    clock = 0
    lengths = {}
    timed_out = False
    while answered < total:
        while seq < total and seq - answered < depth:
            if seq % 4 == 0:
                off = rnd.randrange(0, BLOCKS) * 4096 + rnd.choice((512, 1536, 2560))   # one block, side by side
                data = rnd.randbytes(WLEN)
                ck = c.request(NBD_CMD_WRITE, off, payload=data)
                clock += 1
                sent[ck] = (seq, "w", off, (clock, data))
                overtaken[ck] = 0
            else:
                off = SPAN // 2 + rnd.randrange(0, SPAN // 2 - RLEN, 4096)
                ck = c.request(NBD_CMD_READ, off, RLEN)
                sent[ck] = (seq, "r", off, None)
                lengths[ck] = RLEN
            seq += 1
        try:
            r = c.recv_reply(read_len=lambda ck: lengths.get(ck, 0))
        except socket.timeout:
            timed_out = True
            break
        pw = sum(1 for v in sent.values() if v[1] == "w")
        global max_pw
        max_pw = max(max_pw, pw)
        s, kind, off, data = sent.pop(r.cookie)
        lengths.pop(r.cookie, None)
        answered += 1
        clock += 1
        if r.error:
            errors += 1
        if kind == "w":
            worst = max(worst, overtaken.pop(r.cookie))
            if not r.error:
                writes.setdefault(off, []).append((data[0], clock, data[1]))
        for ck, n in overtaken.items():
            if sent[ck][0] < s:
                overtaken[ck] = n + 1
                worst = max(worst, n + 1)
    pending_writes = sum(1 for v in sent.values() if v[1] == "w")
    tap.check(not timed_out and answered == total, "all %d requests answered" % total,
              "%d answered; %d writes still pending after 20 s of silence" % (answered, pending_writes))
    tap.check(errors == 0, "no request failed", "%d errors" % errors)
    tap.check(worst <= max_over, "no write overtaken by more than %d later requests" % max_over,
              "a write was overtaken by %d" % worst)
    print("# worst write overtaken by %d later replies; at most %d writes pending" % (worst, max_pw))
    if timed_out:
        return False
    # Writes in flight together may land in either order: at each offset
    # whose writes overlap no other offset's, the bytes must be those of a
    # write that no write sent after it was answered superseded.
    bad = 0
    offs = sorted(writes)
    for i, off in enumerate(offs):
        if (i > 0 and offs[i - 1] + WLEN > off) or (i + 1 < len(offs) and off + WLEN > offs[i + 1]):
            continue
        got = c.replies(c.request(NBD_CMD_READ, off, WLEN), read_len=WLEN)[0].payload
        ws = writes[off]
        ok_data = [d for (snt, ans, d) in ws if not any(s2 > ans for (s2, _, _) in ws)]
        if got not in ok_data:
            bad += 1
    tap.check(bad == 0, "written bytes read back", "%d of %d offsets differ" % (bad, len(offs)))
    c.disconnect()
    return tap.failed == 0


sys.exit(0 if main() else 1)
