#!/usr/bin/python3
"""ext_headers.py: NBD extended headers (NBD_OPT_EXTENDED_HEADERS) checked on the wire.

  ext_headers.py PORT EXPORT FILE
EXPORT serves FILE: a sparse file larger than 4 GiB whose only data are its first
64 KiB and 64 KiB at 6 GiB (the test writes and trims inside [1 MiB, 2 MiB)).
Prints "ok - x" / "not ok - x" lines for tests/lib.sh tap_relay."""
import os
import struct
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tools"))
from nbdraw import *  # noqa: E402,F401,F403  (constants and the client)
import nbdraw  # noqa: E402

GiB = 1 << 30
port, name, path = int(sys.argv[1]), sys.argv[2], sys.argv[3]
size = os.path.getsize(path)
tap = nbdraw.Tap()


def file_bytes(off, n):
    with open(path, "rb") as f:
        f.seek(off)
        return f.read(n)


def connect():
    return nbdraw.Client(port=port, timeout=20)


def all_extended(replies, offset):
    """Every reply is an extended chunk echoing the request offset; the last is DONE."""
    bad = [r for r in replies if r.kind != "extended" or r.offset != offset]
    return not bad and replies[-1].done and all(not r.done for r in replies[:-1]), \
        "replies %s" % replies


def ext_status(replies, ctx_id):
    """[(length, status)] of the single BLOCK_STATUS_EXT chunk, checking its shape."""
    chunks = [r for r in replies if r.type == NBD_REPLY_TYPE_BLOCK_STATUS_EXT]
    assert len(chunks) == 1, "want one BLOCK_STATUS_EXT chunk, got %s" % replies
    p = chunks[0].payload
    cid, count = struct.unpack(">II", p[:8])
    assert cid == ctx_id, "context id %d, negotiated %d" % (cid, ctx_id)
    assert count > 0 and len(p) == 8 + 16 * count, "count %d, length %d" % (count, len(p))
    desc = [struct.unpack(">QQ", p[8 + 16 * i:24 + 16 * i]) for i in range(count)]
    assert all(n > 0 for n, _ in desc), "zero-length extent in %s" % desc
    assert all(s >> 32 == 0 for _, s in desc), "base:allocation status uses upper 32 bits"
    assert not any(r.chunk_error() for r in replies), "error chunk in %s" % replies
    return desc


# ---- option negotiation ----
c = connect()
c.greeting()
tap.run("EXTENDED_HEADERS with option data is refused with NBD_REP_ERR_INVALID",
        lambda: c.option(NBD_OPT_EXTENDED_HEADERS, b"\0\0\0\0")[0] == NBD_REP_ERR_INVALID)
if not tap.run("EXTENDED_HEADERS is acknowledged",
               lambda: c.option(NBD_OPT_EXTENDED_HEADERS)[0] == NBD_REP_ACK):
    print("# extended headers not negotiated: the remaining checks cannot run")
    sys.exit(1)
c.extended = True
tap.run("STRUCTURED_REPLY after EXTENDED_HEADERS: NBD_REP_ERR_EXT_HEADER_REQD",
        lambda: (lambda r: (r == NBD_REP_ERR_EXT_HEADER_REQD, "got %#x" % r))(
            c.option(NBD_OPT_STRUCTURED_REPLY)[0]))
ctx = {}


def set_meta():
    rep, replies = c.option(NBD_OPT_SET_META_CONTEXT,
                            nbdraw.meta_context_data(name, ["base:allocation"]))
    for t, p in replies:
        if t == NBD_REP_META_CONTEXT:
            ctx[p[4:].decode()] = struct.unpack(">I", p[:4])[0]
    return rep == NBD_REP_ACK and "base:allocation" in ctx, "replies %s" % replies


tap.run("SET_META_CONTEXT base:allocation after EXTENDED_HEADERS", set_meta)
info = {}
tap.run("GO succeeds and reports the export size (> 4 GiB)",
        lambda: info.update(c.go(name)) or (info.get("size") == size and size > 4 * GiB,
                                              "info %s" % info))
cid = ctx.get("base:allocation", 0)
tap_run = tap.run


def run_check(what, fn):
    """Run one check; after a failure, the next check gets a fresh connection
    (so one server bug does not cascade into every later check)."""
    global c, cid
    ok = tap_run(what, fn)
    if not ok:
        try:
            c.close()
            c = connect()
            info2 = c.negotiate(name, extended=True, meta=["base:allocation"])
            cid = info2["contexts"].get("base:allocation", 0)
        except Exception as e:
            print("#   could not reconnect: %s" % e)
    return ok


tap.run = run_check

# ---- transmission with 32-byte headers ----
W = 1 << 20
wdata = bytes((i * 13 + 5) & 0xFF for i in range(64 << 10))


def ext_write():
    r = c.command(NBD_CMD_WRITE, W, payload=wdata)
    ok, why = all_extended(r, W)
    return ok and len(r) == 1 and r[0].type == NBD_REPLY_TYPE_NONE, "replies %s" % r


tap.run("WRITE with PAYLOAD_LEN: one extended NONE reply, offset echoed", ext_write)


def ext_read():
    off, n = W - (64 << 10), 192 << 10   # 64 KiB hole, 64 KiB data, 64 KiB hole
    r = c.command(NBD_CMD_READ, off, n)
    ok, why = all_extended(r, off)
    data, err = nbdraw.read_data(r, off, n)
    want = bytes(64 << 10) + wdata + bytes(64 << 10)
    return ok and not err and data == want, "%s err=%s same=%s" % (why, err, data == want)


tap.run("READ over hole+data+hole: extended chunks, offset field = request offset, "
        "content correct", ext_read)


def ext_read_df():
    r = c.command(NBD_CMD_READ, W, 64 << 10, flags=NBD_CMD_FLAG_DF)
    ok, why = all_extended(r, W)
    data = [x for x in r if x.type == NBD_REPLY_TYPE_OFFSET_DATA]
    return ok and len(data) == 1 and data[0].payload[8:] == wdata, why


tap.run("READ with DF: a single OFFSET_DATA chunk", ext_read_df)


def ext_read_first():
    r = c.command(NBD_CMD_READ, 0, 64 << 10)
    data, err = nbdraw.read_data(r, 0, 64 << 10)
    return all_extended(r, 0)[0] and data == file_bytes(0, 64 << 10)


tap.run("READ of the file's first 64 KiB equals the file", ext_read_first)


def ext_block_status_small():
    r = c.command(NBD_CMD_BLOCK_STATUS, 0, 2 << 20)
    ok, why = all_extended(r, 0)
    d = ext_status(r, cid)
    holes = []
    off = 0
    for n, s in d:
        holes.append((off, min(n, (2 << 20) - off), bool(s & NBD_STATE_HOLE)))
        off += n
        if off >= 2 << 20:
            break
    merged = []
    for h in holes:
        if merged and merged[-1][2] == h[2]:
            merged[-1] = (merged[-1][0], merged[-1][1] + h[1], h[2])
        else:
            merged.append(h)
    want = [(0, 64 << 10, False), (64 << 10, W - (64 << 10), True), (W, 64 << 10, False),
            (W + (64 << 10), W - (64 << 10), True)]
    return ok and merged == want, "%s\ngot %s\nwant %s" % (why, merged, want)


tap.run("BLOCK_STATUS: one BLOCK_STATUS_EXT chunk matching the data/hole layout",
        ext_block_status_small)

BIG = 5 * GiB   # effect length above 4 GiB


def ext_block_status_big():
    off = 2 << 20
    r = c.command(NBD_CMD_BLOCK_STATUS, off, BIG)
    ok, why = all_extended(r, off)
    d = ext_status(r, cid)
    total = sum(n for n, _ in d)
    first_hole = d[0][1] & NBD_STATE_HOLE
    return ok and total > 4 * GiB and first_hole and sum(n for n, _ in d[:-1]) < BIG, \
        "%s\ndescriptors %s (sum %d)" % (why, d[:8], total)


tap.run("BLOCK_STATUS with a 5 GiB effect length: extents past 4 GiB in 64-bit descriptors",
        ext_block_status_big)


def ext_block_status_reaches_data():
    # From 2 MiB the file is a hole up to 6 GiB: the descriptors must say so
    # exactly (a hole longer than 2^32 bytes needs the 64-bit length field).
    off, out, pos = 2 << 20, [], 2 << 20
    for _ in range(1000):
        if pos >= 6 * GiB + (64 << 10):
            break
        r = c.command(NBD_CMD_BLOCK_STATUS, pos, min(BIG, size - pos))
        for n, s in ext_status(r, cid):
            out.append((pos, n, bool(s & NBD_STATE_HOLE)))
            pos += n
    holes = [x for x in out if x[0] < 6 * GiB]
    data = [x for x in out if x[0] == 6 * GiB]
    return all(h[2] for h in holes) and data and not data[0][2], "extents %s" % out[:10]


tap.run("BLOCK_STATUS: hole from 2 MiB to 6 GiB, then data at 6 GiB", ext_block_status_reaches_data)


def ext_block_status_req_one():
    r = c.command(NBD_CMD_BLOCK_STATUS, 2 << 20, BIG, flags=NBD_CMD_FLAG_REQ_ONE)
    d = ext_status(r, cid)
    return all_extended(r, 2 << 20)[0] and len(d) == 1 and d[0][0] <= BIG, "descriptors %s" % d


tap.run("BLOCK_STATUS with REQ_ONE and 5 GiB: exactly one descriptor, within the request",
        ext_block_status_req_one)


def ext_trim():
    r = c.command(NBD_CMD_TRIM, W, 64 << 10)
    ok, why = all_extended(r, W)
    rd = c.command(NBD_CMD_READ, W, 64 << 10)
    data, err = nbdraw.read_data(rd, W, 64 << 10)
    return ok and not nbdraw.reply_error(r) and data == bytes(64 << 10), why


tap.run("TRIM (effect length): extended reply, range reads back as zeroes", ext_trim)


def ext_zero():
    c.command(NBD_CMD_WRITE, W, payload=wdata)
    r = c.command(NBD_CMD_WRITE_ZEROES, W + 4096, 8192)
    ok, why = all_extended(r, W + 4096)
    rd = c.command(NBD_CMD_READ, W, 64 << 10)
    data, err = nbdraw.read_data(rd, W, 64 << 10)
    want = wdata[:4096] + bytes(8192) + wdata[12288:]
    return ok and not nbdraw.reply_error(r) and data == want, why


tap.run("WRITE_ZEROES (effect length): extended reply, zeroes exactly there", ext_zero)


def ext_trim_big():
    r = c.command(NBD_CMD_TRIM, 1 * GiB, BIG)   # [1 GiB, 6 GiB): all hole already
    err = nbdraw.reply_error(r)
    rd = c.command(NBD_CMD_READ, 6 * GiB, 64 << 10)
    data, _ = nbdraw.read_data(rd, 6 * GiB, 64 << 10)
    return all_extended(r, 1 * GiB)[0] and err in (0, NBD_EINVAL, NBD_EOVERFLOW) and \
        data == file_bytes(6 * GiB, 64 << 10) and data != bytes(64 << 10), \
        "error %d; data at 6 GiB intact: %s" % (err, data == file_bytes(6 * GiB, 64 << 10))


tap.run("TRIM with a 5 GiB effect length: succeeds or EINVAL/EOVERFLOW; data just past "
        "the range intact", ext_trim_big)


def ext_flush():
    r = c.command(NBD_CMD_FLUSH)
    return all_extended(r, 0)[0] and not nbdraw.reply_error(r), "replies %s" % r


tap.run("FLUSH: extended reply without error", ext_flush)


def ext_unexpected_payload():
    # A READ carrying PAYLOAD_LEN: the spec says the server SHOULD consume the
    # payload and fail with EINVAL, then go on with the next command.
    cookie = c.request(NBD_CMD_READ, W, 16, payload=b"x" * 16)
    r = c.replies(cookie)
    err = [x.chunk_error() for x in r if x.chunk_error()]
    nxt = c.command(NBD_CMD_READ, 0, 4096)
    data, e2 = nbdraw.read_data(nxt, 0, 4096)
    return err == [NBD_EINVAL] and data == file_bytes(0, 4096), "errors %s, replies %s" % (err, r)


tap.run("READ with an unexpected PAYLOAD_LEN payload: EINVAL, payload consumed, "
        "connection goes on", ext_unexpected_payload)


def compact_refused():
    # After extended headers, a compact request is a protocol violation: the server
    # must not execute it (it may answer with an error or hang up).
    pat = b"\xc3" * 4096
    before = file_bytes(W + (128 << 10), 4096)
    c.request(NBD_CMD_WRITE, W + (128 << 10), payload=pat, compact=True)
    outcome = "closed"
    try:
        c.sock.settimeout(5)
        r = c.recv_reply()
        outcome = repr(r)
        ok = r.kind == "extended" and r.chunk_error() != 0
    except nbdraw.Closed:
        ok = True
    except Exception as e:    # silence (timeout) or garbage is not acceptable
        ok, outcome = False, "%s: %s" % (type(e).__name__, e)
    fresh = connect()
    fresh.negotiate(name, extended=True)
    rd = fresh.command(NBD_CMD_READ, W + (128 << 10), 4096)
    fresh.disconnect()
    now, _ = nbdraw.read_data(rd, W + (128 << 10), 4096)
    written = now == pat
    return ok and not written and now == before, \
        "outcome %s; compact write executed: %s" % (outcome, written)


tap.run("a compact request after EXTENDED_HEADERS is refused (error or hang-up), "
        "not executed", compact_refused)
c.close()

# ---- structured replies first, then extended headers (allowed by the spec) ----


def structured_then_extended():
    d = connect()
    d.greeting()
    a = d.option(NBD_OPT_STRUCTURED_REPLY)[0]
    b = d.option(NBD_OPT_EXTENDED_HEADERS)[0]
    d.extended = True
    d.go(name)
    r = d.command(NBD_CMD_READ, 0, 4096)
    data, err = nbdraw.read_data(r, 0, 4096)
    d.disconnect()
    return a == NBD_REP_ACK and b == NBD_REP_ACK and all_extended(r, 0)[0] and \
        data == file_bytes(0, 4096), "acks %#x %#x, replies %s" % (a, b, r)


tap.run("STRUCTURED_REPLY then EXTENDED_HEADERS: both acknowledged, extended replies used",
        structured_then_extended)


def info_then_extended_disc():
    # Soft disconnect with an extended DISC: the server closes the connection.
    d = connect()
    d.negotiate(name, extended=True)
    d.request(NBD_CMD_DISC)
    return d.is_closed(10)


tap.run("extended NBD_CMD_DISC: the server closes the connection", info_then_extended_disc)
sys.exit(1 if tap.failed else 0)
