#!/usr/bin/env python3
# tests/fuzz/gen_corpus.py: writes the seed corpora tests/fuzz/corpus/NAME/
# from real exchanges (the input formats are described at the top of each fuzz_*.c).
# Re-run after changing a format; files found by fuzzing (crash-*, named by what they
# reproduce) are kept, generated seeds (seed-*) are rewritten.
import os
import struct

HERE = os.path.dirname(os.path.abspath(__file__))

NBD_NEW_VERSION = 0x49484156454F5054
REP_MAGIC = 0x0003e889045565a9
REQ, REQ_EXT = 0x25609513, 0x21e41c71
SIMPLE, STRUCT, EXT = 0x67446698, 0x668e33ef, 0x6e8a278c
(OPT_EXPORT_NAME, OPT_ABORT, OPT_LIST, OPT_STARTTLS, OPT_INFO, OPT_GO, OPT_SR, OPT_LIST_META,
 OPT_SET_META, OPT_EH) = 1, 2, 3, 5, 6, 7, 8, 9, 10, 11
READ, WRITE, DISC, FLUSH, TRIM, CACHE, ZERO, BS = range(8)
FUA, NO_HOLE, DF, REQ_ONE, FAST_ZERO, PAYLOAD_LEN = 1, 2, 4, 8, 16, 32


def opt(o, data=b""):
    return struct.pack(">QII", NBD_NEW_VERSION, o, len(data)) + data


def go(name, infos=(3,)):
    return struct.pack(">I", len(name)) + name + struct.pack(">H", len(infos)) + \
        b"".join(struct.pack(">H", i) for i in infos)


def meta(name, queries):
    return struct.pack(">I", len(name)) + name + struct.pack(">I", len(queries)) + \
        b"".join(struct.pack(">I", len(q)) + q for q in queries)


def req(t, off, length, flags=0, cookie=1, payload=b""):
    return struct.pack(">IHHQQI", REQ, flags, t, cookie, off, length) + payload


def req_ext(t, off, length, flags=0, cookie=1, payload=b""):
    return struct.pack(">IHHQQQ", REQ_EXT, flags, t, cookie, off, length) + payload


FLAGS = struct.pack(">I", 3)   # FIXED_NEWSTYLE | NO_ZEROES
compact_reqs = (req(READ, 0, 4096) + req(WRITE, 4096, 512, FUA, 2, b"w" * 512) + req(FLUSH, 0, 0, 0, 3)
                + req(TRIM, 0, 4096, 0, 4) + req(ZERO, 8192, 4096, NO_HOLE, 5) + req(CACHE, 0, 65536, 0, 6))
ext_reqs = (req_ext(READ, 0, 4096, DF) + req_ext(WRITE, 512, 512, PAYLOAD_LEN, 2, b"x" * 512)
            + req_ext(BS, 0, 1 << 20, 0, 3) + req_ext(ZERO, 0, 1 << 19, FAST_ZERO, 4)
            + req_ext(TRIM, 4096, 4096, 0, 5))

handshake = {
    # byte 0: export table + out cap; byte 1: chunking seed
    "go-simple": b"\x00\x00" + FLAGS + opt(OPT_GO, go(b"disk")) + compact_reqs + req(DISC, 0, 0),
    "go-chunked": b"\x00\x07" + FLAGS + opt(OPT_GO, go(b"disk", (1, 2, 3))) + compact_reqs,
    "structured-meta": b"\x00\x03" + FLAGS + opt(OPT_SR) + opt(OPT_LIST_META, meta(b"disk", [b"base:"]))
    + opt(OPT_SET_META, meta(b"disk", [b"base:allocation"])) + opt(OPT_GO, go(b"disk"))
    + req(BS, 0, 1 << 20, REQ_ONE) + req(READ, 0, 65536, DF),
    "extended": b"\x00\x00" + FLAGS + opt(OPT_EH) + opt(OPT_SET_META, meta(b"", [b"base:allocation"]))
    + opt(OPT_GO, go(b"")) + ext_reqs,
    "list-info-abort": b"\x06\x01" + FLAGS + opt(OPT_LIST) + opt(OPT_INFO, go(b"ro", (0, 1, 2, 3)))
    + opt(OPT_INFO, go(b"nope")) + opt(OPT_ABORT),
    "export-name-zeroes": b"\x00\x00" + struct.pack(">I", 1) + opt(OPT_EXPORT_NAME, b"disk") + compact_reqs,
    "export-name-ro": b"\x01\x00" + FLAGS + opt(OPT_EXPORT_NAME, b"ro") + req(WRITE, 0, 8, 0, 1, b"12345678"),
    "starttls-unknown": b"\x00\x00" + FLAGS + opt(OPT_STARTTLS) + opt(0x4242, b"junk") + opt(OPT_SR, b"x")
    + opt(OPT_GO, go(b"disk")),
    "oversized-option": b"\x00\x05" + FLAGS + struct.pack(">QII", NBD_NEW_VERSION, OPT_GO, 70000)
    + b"a" * 70000 + opt(OPT_ABORT),
    "list-flood-capped": b"\x06\x00" + FLAGS + opt(OPT_LIST) * 200 + opt(OPT_ABORT),
}

request = {
    # byte 0: export (bits 0-1), headers (bits 2-3), base:allocation (bit 4), strict (bit 5)
    "simple-disk": b"\x00" + compact_reqs + req(DISC, 0, 0),
    "simple-ro": b"\x01" + req(READ, 0, 1000) + req(WRITE, 0, 10, 0, 2, b"0123456789") + req(READ, 999, 2),
    "structured-bs": b"\x14" + req(BS, 0, 1 << 20, 0) + req(BS, 4096, 512, REQ_ONE) + req(READ, 0, 4096, DF),
    "extended-huge": b"\x1a" + req_ext(READ, 0, 65536) + req_ext(BS, 0, (1 << 63), 0)
    + req_ext(WRITE, 0, 4096, PAYLOAD_LEN, 2, b"z" * 4096) + req_ext(ZERO, (1 << 64) - 8192, 4096),
    "strict-unaligned": b"\x20" + req(READ, 1, 511) + req(WRITE, 512, 512, 0, 2, b"a" * 512),
    "oversized-write": b"\x00" + req(WRITE, 0, 0x2000001, 0, 1) + b"p" * 64,
    "extended-payload-on-read": b"\x08" + req_ext(READ, 0, 16, PAYLOAD_LEN, 1, b"q" * 16) + req_ext(FLUSH, 0, 0),
    "long-name-export": b"\x03" + req(READ, 0, 0) + req(FLUSH, 0, 0),
}


def hdr(mode, off, length):
    return bytes([mode]) + struct.pack(">QI", off, length)


def chunk(flags, t, cookie, payload, ext=False, off=0):
    if ext:
        return struct.pack(">IHHQQQ", EXT, flags, t, cookie, off, len(payload)) + payload
    return struct.pack(">IHHQI", STRUCT, flags, t, cookie, len(payload)) + payload


def err_payload(e, msg, off=None):
    return struct.pack(">IH", e, len(msg)) + msg + (struct.pack(">Q", off) if off is not None else b"")


reply = {
    # byte 0: bit 0 structured, bit 1 extended, bits 2-4 command, bit 7 option replies;
    # bytes 1-12: request offset and length
    "simple-read": hdr(0x00, 0, 16) + struct.pack(">IIQ", SIMPLE, 0, 1) + b"d" * 16
    + struct.pack(">IIQ", SIMPLE, 5, 2),
    "structured-read": hdr(0x01, 4096, 64) + chunk(0, 1, 1, struct.pack(">Q", 4096) + b"a" * 32)
    + chunk(0, 2, 1, struct.pack(">QI", 4096 + 32, 16))
    + chunk(0, 0x8002, 1, err_payload(5, b"bad sector", 4096 + 48))
    + chunk(1, 0x8001, 1, err_payload(5, b"done"))
    + chunk(1, 0, 2, b""),
    "structured-bs": hdr(0x09, 0, 1 << 20) + chunk(1, 5, 1, struct.pack(">IIIII", 1, 65536, 0, 983040, 3)),
    "extended-read": hdr(0x03, 512, 1024) + chunk(0, 1, 1, struct.pack(">Q", 512) + b"e" * 512, True, 512)
    + chunk(1, 2, 1, struct.pack(">QI", 1024, 512), True, 512),
    "extended-bs": hdr(0x0b, 0, 1 << 20) + chunk(1, 6, 1, struct.pack(">IIQQQQ", 1, 2, 4096, 0, 1044480, 3),
                                                 True, 0),
    "extended-write-none": hdr(0x13, 0, 4096) + chunk(1, 0, 1, b"", True, 0),
    "option-replies": hdr(0x80 | (OPT_GO << 2), 0, 0)
    + struct.pack(">QIII", REP_MAGIC, OPT_GO, 3, 12) + struct.pack(">HQH", 0, 1 << 20, 0x4f)
    + struct.pack(">QIII", REP_MAGIC, OPT_GO, 1, 0),
}


def rep(o, t, data=b""):
    return struct.pack(">QIII", REP_MAGIC, o, t, len(data)) + data


GREETING = b"NBDMAGIC" + struct.pack(">QH", NBD_NEW_VERSION, 3)
ACK, SERVER, INFO, META = 1, 2, 3, 4
ERR_UNSUP, ERR_UNKNOWN = 0x80000001, 0x80000006
go_replies = (rep(OPT_GO, INFO, struct.pack(">HQH", 0, 1 << 30, 0x1ef))
              + rep(OPT_GO, INFO, struct.pack(">HIII", 3, 512, 4096, 32 << 20))
              + rep(OPT_GO, INFO, struct.pack(">H", 1) + b"disk")
              + rep(OPT_GO, INFO, struct.pack(">H", 2) + b"a description")
              + rep(OPT_GO, ACK))
client_handshake = {
    # byte 0: bit 0 structured, bit 1 extended, bit 2 block status, bit 3 LIST, bit 4 empty name
    "extended-meta-go": b"\x07" + GREETING + rep(OPT_EH, ACK)
    + rep(OPT_SET_META, META, struct.pack(">I", 1) + b"base:allocation") + rep(OPT_SET_META, ACK) + go_replies,
    "structured-go": b"\x05" + GREETING + rep(OPT_SR, ACK)
    + rep(OPT_SET_META, META, struct.pack(">I", 7) + b"base:allocation") + rep(OPT_SET_META, ACK) + go_replies,
    "simple-go": b"\x00" + GREETING + go_replies,
    "go-unsup-export-name": b"\x01" + GREETING + rep(OPT_SR, ERR_UNSUP) + rep(OPT_GO, ERR_UNSUP, b"old server")
    + struct.pack(">QH", 1 << 20, 1) + b"\0" * 124,
    "go-unknown": b"\x10" + GREETING + rep(OPT_GO, ERR_UNKNOWN, b"no such export"),
    "list": b"\x08" + GREETING + rep(OPT_LIST, SERVER, struct.pack(">I", 4) + b"disk")
    + rep(OPT_LIST, SERVER, struct.pack(">I", 2) + b"rodescription") + rep(OPT_LIST, ACK)
    + rep(OPT_INFO, INFO, struct.pack(">HQH", 0, 4096, 3)) + rep(OPT_INFO, INFO, struct.pack(">H", 2) + b"the disk")
    + rep(OPT_INFO, ACK) + rep(OPT_INFO, ERR_UNKNOWN),
}


# ---- vhost-user and virtqueues (native byte order: little-endian here) ----
def vu(req, payload=b"", flags=1, nfds=0, size=None):
    return bytes([nfds]) + struct.pack("<III", req, flags, len(payload) if size is None else size) + payload


def region(gpa, size, uaddr, off=0):
    return struct.pack("<QQQQ", gpa, size, uaddr, off)


(GET_FEATURES, SET_FEATURES, SET_OWNER, SET_MEM_TABLE, SET_VRING_NUM, SET_VRING_ADDR, SET_VRING_BASE,
 GET_VRING_BASE, SET_VRING_KICK, SET_VRING_CALL, GET_PROTOCOL_FEATURES, SET_PROTOCOL_FEATURES,
 GET_QUEUE_NUM, SET_VRING_ENABLE, GET_CONFIG, SET_CONFIG, GET_INFLIGHT_FD, SET_INFLIGHT_FD,
 GET_MAX_MEM_SLOTS, ADD_MEM_REG, REM_MEM_REG) = (1, 2, 3, 5, 8, 9, 10, 11, 12, 13, 15, 16, 17, 18, 24, 25,
                                                 31, 32, 36, 37, 38)
U = 0x7f0000000000
vhost_msg = {
    # a front-end's start-up, as qemu sends it (fd counts in the first byte of each)
    "qemu-start": vu(GET_FEATURES) + vu(SET_FEATURES, struct.pack("<Q", (1 << 32) | (1 << 30) | (1 << 29)))
    + vu(GET_PROTOCOL_FEATURES) + vu(SET_PROTOCOL_FEATURES, struct.pack("<Q", 0x9209), 9)
    + vu(GET_QUEUE_NUM) + vu(GET_MAX_MEM_SLOTS) + vu(SET_OWNER)
    + vu(GET_CONFIG, struct.pack("<III", 0, 60, 0) + bytes(60))
    + vu(SET_VRING_CALL, struct.pack("<Q", 0), nfds=1)
    + vu(SET_MEM_TABLE, struct.pack("<II", 2, 0) + region(0, 1 << 30, U) + region(1 << 32, 1 << 30, U + (1 << 30)),
         nfds=2)
    + vu(GET_INFLIGHT_FD, struct.pack("<QQHHI", 0, 0, 2, 128, 0))
    + vu(SET_INFLIGHT_FD, struct.pack("<QQHHI", 8448, 0, 2, 128, 0), nfds=1)
    + vu(SET_VRING_NUM, struct.pack("<II", 0, 128)) + vu(SET_VRING_BASE, struct.pack("<II", 0, 0))
    + vu(SET_VRING_ADDR, struct.pack("<IIQQQQ", 0, 0, U + 0x10000, U + 0x11000, U + 0x10800, 0))
    + vu(SET_VRING_KICK, struct.pack("<Q", 0), nfds=1) + vu(SET_VRING_ENABLE, struct.pack("<II", 0, 1))
    + vu(GET_VRING_BASE, struct.pack("<II", 0, 0)),
    "mem-slots": vu(ADD_MEM_REG, struct.pack("<Q", 0) + region(0, 1 << 20, U), nfds=1)
    + vu(ADD_MEM_REG, struct.pack("<Q", 0) + region(1 << 20, 1 << 20, U + (1 << 20)), nfds=1)
    + vu(ADD_MEM_REG, struct.pack("<Q", 0) + region(1 << 19, 1 << 20, U + (1 << 21)), nfds=1)
    + vu(REM_MEM_REG, struct.pack("<Q", 0) + region(0, 1 << 20, U, 99))
    + vu(ADD_MEM_REG, struct.pack("<Q", 0) + region((1 << 64) - 4096, 8192, 0), nfds=1),
    "malformed": vu(SET_FEATURES, b"\0" * 4) + vu(SET_OWNER, flags=5) + vu(SET_OWNER, flags=2)
    + vu(SET_MEM_TABLE, struct.pack("<II", 9, 0) + region(0, 4096, U) * 8, nfds=8)
    + vu(SET_CONFIG, struct.pack("<III", 250, 10, 0) + bytes(10)) + vu(SET_VRING_KICK, struct.pack("<Q", 0x300))
    + vu(28) + vu(99) + vu(GET_FEATURES, size=100000),
}

VRING_NEXT, VRING_WRITE, VRING_INDIRECT = 1, 2, 4


def desc(addr, length, flags=0, nxt=0):
    return struct.pack("<QIHH", addr, length, flags, nxt)


def vring_input(b0, b1, base, descs, avail, extra_a=(), b=b"", c=b""):
    """capacity 64 sectors; region A: descriptor table at 0, available ring at 0x800 (flags, idx, ring),
    used ring at 0x1000; extra_a: (offset, bytes) written into A."""
    a = bytearray(0x2000)
    t = b"".join(descs)
    a[0:len(t)] = t
    av = struct.pack("<HH", 0, len(avail)) + b"".join(struct.pack("<H", h) for h in avail)
    a[0x800:0x800 + len(av)] = av
    for off, data in extra_a:
        a[off:off + len(data)] = data
    bb = bytearray(0x2000)
    bb[0:len(b)] = b
    return bytes([b0, b1]) + struct.pack("<H", base) + bytes([64]) + bytes(a) + bytes(bb) + c


def blk_hdr(t, sector):
    return struct.pack("<IIQ", t, 0, sector)


vring = {
    # byte 0: 0x13 = event idx, indirect, queue of 16; byte 1: 64 segments, 1 MiB
    "blk-requests": vring_input(0x13, 0xff, 0, [
        desc(0x1800, 16, VRING_NEXT, 1), desc(0x2000, 512, VRING_NEXT | VRING_WRITE, 2),
        desc(0x1900, 1, VRING_WRITE),                                          # 0: IN
        desc(0x1810, 16, VRING_NEXT, 4), desc(0x1f00, 512, VRING_NEXT, 5),
        desc(0x1901, 1, VRING_WRITE),                                          # 3: OUT across regions
        desc(0x100000, 48, VRING_INDIRECT),                                    # 6: GET_ID, indirect
        desc(0x1840, 32, VRING_NEXT, 8), desc(0x1903, 1, VRING_WRITE),         # 7: DISCARD
        desc(0x1860, 16, VRING_NEXT, 10), desc(0x1904, 1, VRING_WRITE),        # 9: FLUSH
    ], [0, 3, 6, 7, 9], [(0x1800, blk_hdr(0, 0)), (0x1810, blk_hdr(1, 8)), (0x1820, blk_hdr(8, 0)),
                         (0x1840, blk_hdr(11, 0) + struct.pack("<QII", 0, 8, 0)), (0x1860, blk_hdr(4, 0))],
        c=desc(0x1820, 16, VRING_NEXT, 1) + desc(0x1a00, 20, VRING_NEXT | VRING_WRITE, 2)
        + desc(0x1902, 1, VRING_WRITE)),
    # event idx only, queue of 8; a loop, a readable after writable, a bad address
    "bad-chains": vring_input(0x0d, 0x3f, 0, [
        desc(0x1800, 16, VRING_NEXT, 1), desc(0x1810, 16, VRING_NEXT, 0),
        desc(0x1800, 16, VRING_WRITE | VRING_NEXT, 3), desc(0x1810, 16),
        desc(0x200000, 16), desc(0x1800, 16, VRING_INDIRECT)], [0, 2, 4, 5]),
    # the available index jumps past the queue size: the queue breaks
    "broken-jump": vring_input(0x0c, 0x3f, 0, [desc(0x1800, 16)], [0] * 8,
                               [(0x802, struct.pack("<H", 100))]),
    # in-flight area in region C (queue of 8): heads 1 and 5 in flight, a half-recorded batch
    "inflight": vring_input(0x0c, 0x3f, 2, [
        desc(0x1800, 16), desc(0x1800, 16, VRING_NEXT, 2), desc(0x1900, 1, VRING_WRITE),
        desc(0x1800, 16), desc(0x1800, 16), desc(0x1810, 16, VRING_NEXT, 6), desc(0x1901, 1, VRING_WRITE)],
        [4, 3], [(0x1000, struct.pack("<HH", 0, 1)), (0x1800, blk_hdr(0, 0))],
        c=struct.pack("<QHHHH", 0, 1, 8, 4, 0)
        + b"".join(struct.pack("<B5xHQ", 1 if i in (1, 4, 5) else 0, 0, {1: 3, 4: 9, 5: 7}.get(i, 0))
                   for i in range(8))),
}


def write(name, seeds):
    d = os.path.join(HERE, "corpus", name)
    os.makedirs(d, exist_ok=True)
    for f in os.listdir(d):
        if f.startswith("seed-"):
            os.unlink(os.path.join(d, f))
    for k, v in seeds.items():
        with open(os.path.join(d, "seed-" + k), "wb") as f:
            f.write(v)


write("handshake", handshake)
write("request", request)
write("reply", reply)
write("client_handshake", client_handshake)
write("vhost_msg", vhost_msg)
write("vring", vring)
