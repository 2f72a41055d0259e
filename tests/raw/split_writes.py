#!/usr/bin/python3
"""split_writes.py: WRITE payloads that arrive in pieces, checked on the wire.

  split_writes.py PORT EXPORT IMAGE [SERVER_PID]
EXPORT serves IMAGE (at least 16 MiB; the test writes in its first 8 MiB).
For compact headers with simple and with structured replies, and for extended
headers: a pipeline of writes (1 byte to 70000 bytes, some with FUA), reads
and a FLUSH sent as one byte stream cut into random pieces (from 1 byte, with
pauses, so requests and payloads end anywhere in the server's receive
buffer); every reply must be a success, every read return the image's bytes,
and what was written read back.  Then connections that hang up (FIN or RST)
with a header or a payload half sent: the write (within one 64 KiB chunk)
must not happen.  With
SERVER_PID, last: SIGTERM while a small write's payload is half sent; the
rest still arrives, the write is done and answered before the server closes.
Prints "ok - x" / "not ok - x" lines for tests/lib.sh tap_relay."""
import os
import random
import signal
import socket
import struct
import sys
import threading
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tools"))
from nbdraw import *  # noqa: E402,F401,F403  (constants and the client)
import nbdraw  # noqa: E402

port, name, path = int(sys.argv[1]), sys.argv[2], sys.argv[3]
pid = int(sys.argv[4]) if len(sys.argv) > 4 else None
tap = nbdraw.Tap()
rnd = random.Random(int(os.environ.get("SPLIT_WRITES_SEED", "7")))
SLOT = 96 << 10            # each write of a pipeline in its own slot
SPAN = 8 << 20
CHUNK = 64 << 10           # the export's chunk= (split_writes.sh)
mirror = bytearray(open(path, "rb").read(SPAN))


def client(mode):
    c = nbdraw.Client(port=port, timeout=30)
    c.greeting()
    for opt, on in ((NBD_OPT_EXTENDED_HEADERS, mode == "extended"),
                    (NBD_OPT_STRUCTURED_REPLY, mode == "structured")):
        if on and c.option(opt)[0] != NBD_REP_ACK:
            raise ValueError("option %d refused" % opt)
    c.extended, c.structured = mode == "extended", mode == "structured"
    c.go(name, infos=())   # no block size info asked: unaligned requests are fine
    return c


def send_in_pieces(c, stream):
    pos = 0
    while pos < len(stream):
        n = rnd.choice([1, 2, 7, 28, 100, 1000, 4000, 9000, 30000])
        c.send(stream[pos:pos + n])
        pos += n
        if rnd.random() < 0.1:
            time.sleep(0.002)


def recv_any(c, pending):
    """One reply message; a simple read reply's length comes from its request."""
    def read_len(cookie):
        e = pending.get(cookie)
        return e[2] if e and e[0] == "r" else None
    return c.recv_reply(read_len=read_len)


def pipeline(mode):
    c = client(mode)
    slots = rnd.sample(range(SPAN // SLOT), 64)
    stream = bytearray()
    expect = {}                       # cookie -> ("w", off, n) / ("r", off, n) / ("f",)
    written = []
    for k, s in enumerate(slots):
        if k % 6 == 5:                # a read of a slot nobody writes here
            off = s * SLOT + rnd.randrange(0, 4096)
            n = rnd.choice([1, 4096, 5000])
            req, ck = c.encode_request(NBD_CMD_READ, off, n)
            expect[ck] = ("r", off, n)
        else:
            n = rnd.choice([1, 511, 4096, 4096, 4096, 9000, 16384, 16385, 70000])
            off = s * SLOT + rnd.choice([0, 512, rnd.randrange(0, SLOT - n)])
            data = bytes(rnd.getrandbits(8) for _ in range(n)) if n < 64 else os.urandom(n)
            flags = NBD_CMD_FLAG_FUA if rnd.random() < 0.2 else 0
            req, ck = c.encode_request(NBD_CMD_WRITE, off, payload=data, flags=flags)
            expect[ck] = ("w", off, n)
            written.append((off, data))
        stream += req
        if k == 40:
            req, ck = c.encode_request(NBD_CMD_FLUSH, 0)
            expect[ck] = ("f",)
            stream += req
    sender = threading.Thread(target=send_in_pieces, args=(c, bytes(stream)))
    sender.start()
    problems = []
    pending = dict(expect)
    got = {}
    while pending:
        r = recv_any(c, pending)
        if r.cookie not in pending:
            problems.append("reply for unknown cookie %d" % r.cookie)
            break
        got.setdefault(r.cookie, []).append(r)
        if r.done:
            del pending[r.cookie]
    sender.join()
    for ck, e in expect.items():
        rs = got.get(ck)
        if rs is None:
            continue
        if e[0] == "r":
            data, err = nbdraw.read_data(rs, e[1], e[2])
            if err or data != mirror[e[1]:e[1] + e[2]]:
                problems.append("read %d+%d: error %s, data %s" % (e[1], e[2], err, "differs" if data else None))
        elif nbdraw.reply_error(rs):
            problems.append("%s at %d: error %d" % (e[0], e[1] if len(e) > 1 else 0, nbdraw.reply_error(rs)))
    for off, data in written:
        mirror[off:off + len(data)] = data
    for off, data in written:
        back, err = nbdraw.read_data(c.command(NBD_CMD_READ, off, len(data)), off, len(data))
        if err or back != data:
            problems.append("write %d+%d reads back %s" % (off, len(data), "error %d" % err if err else "wrong"))
    c.disconnect()
    n_w = sum(1 for e in expect.values() if e[0] == "w")
    return not problems, "; ".join(problems[:5]) + " (%d writes)" % n_w


def hang_up(mode, what, rst):
    """Send a write (after a complete one) with only `what` of it, then hang up."""
    c = client(mode)
    n = rnd.choice([4096, 16384])
    # Inside one 64 KiB chunk: streaming paths write a payload's completed
    # chunks before the rest arrives (then a hang-up leaves those written).
    off = rnd.randrange(0, SPAN // CHUNK - 1) * CHUNK + rnd.randrange(0, (CHUNK - n) // 4096 + 1) * 4096
    data = os.urandom(n)
    first = os.urandom(512)
    full, _ = c.encode_request(NBD_CMD_WRITE, off + n, payload=first)
    req, _ = c.encode_request(NBD_CMD_WRITE, off, payload=data)
    hlen = len(req) - n
    cut = {"half a header": hlen // 2, "the header": hlen, "half the payload": hlen + n // 2,
           "all but one byte": len(req) - 1}[what]
    c.send(full + req[:cut])
    r = c.recv_reply()
    time.sleep(0.05)
    if rst:
        c.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    c.close()
    time.sleep(0.05)
    v = client(mode)
    back, err = nbdraw.read_data(v.command(NBD_CMD_READ, off, n), off, n)
    v.disconnect()
    mirror[off + n:off + n + 512] = first
    return r.chunk_error() == 0 and not err and back == mirror[off:off + n], \
        "complete write error %d, read error %s, data %s" % (r.chunk_error(), err, "unchanged" if back == mirror[off:off + n] else "CHANGED")


def sigterm_mid_payload():
    c = client("structured")
    off = 7 << 20
    data = os.urandom(4096)
    req, ck = c.encode_request(NBD_CMD_WRITE, off, payload=data)
    c.send(req[:len(req) - 2000])
    time.sleep(0.3)
    os.kill(pid, signal.SIGTERM)
    time.sleep(0.3)
    c.send(req[len(req) - 2000:])
    rs = c.replies(ck)
    closed = c.is_closed(10)
    with open(path, "rb") as f:
        f.seek(off)
        on_disk = f.read(4096)
    return nbdraw.reply_error(rs) == 0 and closed and on_disk == data, \
        "error %d, closed %s, on disk %s" % (nbdraw.reply_error(rs), closed, on_disk == data)


for mode in ("simple", "structured", "extended"):
    tap.run(f"{mode}: pipelined writes, reads and a flush sent in random pieces all succeed "
            "and read back", lambda: pipeline(mode))
for mode in ("simple", "extended"):
    for what in ("half a header", "the header", "half the payload", "all but one byte"):
        for rst in (False, True):
            tap.run(f"{mode}: hang-up ({'RST' if rst else 'FIN'}) after {what} of a write: not written",
                    lambda: hang_up(mode, what, rst))
if pid:
    tap.run("SIGTERM while a small write's payload arrives: written and answered, then closed",
            sigterm_mid_payload)
sys.exit(1 if tap.failed else 0)
