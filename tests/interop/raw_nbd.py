#!/usr/bin/env python3
# raw_nbd.py: a minimal NBD handshake client for the TLS tests: it shows
# exactly what the server replies to each option, which libnbd hides.
# Not a test by itself (tests/run.sh runs only *.sh).
#   raw_nbd.py require PORT NAME      options before STARTTLS on a --tls=require server
#   raw_nbd.py exportname PORT NAME   NBD_OPT_EXPORT_NAME before STARTTLS
#   raw_nbd.py starttls PORT CAFILE   STARTTLS with data, STARTTLS, then STARTTLS
#                                     again and LIST over TLS (X.509)
#   raw_nbd.py list PORT              plaintext LIST: reply types and names
#   raw_nbd.py junk PORT              STARTTLS, then garbage instead of a ClientHello
#   raw_nbd.py hangup PORT            STARTTLS, then hang up before the TLS handshake
# Prints one "key=value" line per observation; the shell test asserts on them.
import socket
import ssl
import struct
import sys

IHAVEOPT = 0x49484156454F5054
REPLY_MAGIC = 0x3E889045565A9
OPT = {"EXPORT_NAME": 1, "ABORT": 2, "LIST": 3, "STARTTLS": 5, "INFO": 6, "GO": 7,
       "STRUCTURED_REPLY": 8, "LIST_META_CONTEXT": 9, "SET_META_CONTEXT": 10,
       "EXTENDED_HEADERS": 11, "UNKNOWN": 99}
REP = {1: "ACK", 2: "SERVER", 3: "INFO", 4: "META_CONTEXT",
       0x80000001: "ERR_UNSUP", 0x80000002: "ERR_POLICY", 0x80000003: "ERR_INVALID",
       0x80000004: "ERR_PLATFORM", 0x80000005: "ERR_TLS_REQD", 0x80000006: "ERR_UNKNOWN",
       0x80000007: "ERR_SHUTDOWN", 0x80000008: "ERR_BLOCK_SIZE_REQD", 0x80000009: "ERR_TOO_BIG"}

received = bytearray()


def recv_exact(s, n):
    buf = b""
    while len(buf) < n:
        chunk = s.recv(n - len(buf))
        if not chunk:
            raise EOFError
        buf += chunk
    received.extend(buf)
    return buf


def connect(port):
    s = socket.create_connection(("127.0.0.1", int(port)), timeout=10)
    greet = recv_exact(s, 18)
    assert greet[:8] == b"NBDMAGIC", greet
    s.sendall(struct.pack(">I", 3))   # FIXED_NEWSTYLE | NO_ZEROES
    return s


def send_opt(s, opt, data=b""):
    s.sendall(struct.pack(">QII", IHAVEOPT, opt, len(data)) + data)


def read_replies(s, opt):
    """All replies to one option, up to the final one; returns (types, payloads)."""
    types, datas = [], []
    while True:
        magic, ropt, rtype, rlen = struct.unpack(">QIII", recv_exact(s, 20))
        assert magic == REPLY_MAGIC and ropt == opt, (hex(magic), ropt, opt)
        data = recv_exact(s, rlen)
        types.append(REP.get(rtype, hex(rtype)))
        datas.append(data)
        if rtype not in (2, 3, 4):   # SERVER, INFO, META_CONTEXT precede the final reply
            return types, datas


def info_data(name):
    n = name.encode()
    return struct.pack(">I", len(n)) + n + struct.pack(">HH", 1, 0)


def meta_data(name):
    n = name.encode()
    q = b"base:allocation"
    return struct.pack(">I", len(n)) + n + struct.pack(">II", 1, len(q)) + q


def cmd_require(port, name):
    s = connect(port)
    opts = [("LIST", b""), ("INFO", info_data(name)), ("GO", info_data(name)),
            ("STRUCTURED_REPLY", b""), ("LIST_META_CONTEXT", meta_data(name)),
            ("SET_META_CONTEXT", meta_data(name)), ("EXTENDED_HEADERS", b""),
            ("UNKNOWN", b"xyz"), ("LIST_BIG", b"\0" * 70000)]
    for label, data in opts:
        opt = OPT["LIST"] if label == "LIST_BIG" else OPT[label]
        send_opt(s, opt, data)
        types, _ = read_replies(s, opt)
        print(f"{label}={','.join(types)}")
    send_opt(s, OPT["ABORT"])
    types, _ = read_replies(s, OPT["ABORT"])
    print(f"ABORT={','.join(types)}")
    print("leak=" + ("yes" if name.encode() in received else "no"))


def cmd_exportname(port, name):
    s = connect(port)
    send_opt(s, OPT["EXPORT_NAME"], name.encode())
    try:
        data = s.recv(1000)
        received.extend(data)
        print("exportname=" + ("closed" if not data else "replied"))
    except ConnectionResetError:
        print("exportname=closed")
    print("leak=" + ("yes" if len(received) > 18 else "no"))


def cmd_starttls(port, cafile):
    s = connect(port)
    send_opt(s, OPT["STARTTLS"], b"x")
    print("starttls_with_data=" + ",".join(read_replies(s, OPT["STARTTLS"])[0]))
    send_opt(s, OPT["STARTTLS"])
    print("starttls=" + ",".join(read_replies(s, OPT["STARTTLS"])[0]))
    ctx = ssl.create_default_context(cafile=cafile)
    t = ctx.wrap_socket(s, server_hostname="localhost")
    print("tls_version=" + t.version())
    send_opt(t, OPT["STARTTLS"])
    print("starttls_again=" + ",".join(read_replies(t, OPT["STARTTLS"])[0]))
    send_opt(t, OPT["LIST"])
    types, datas = read_replies(t, OPT["LIST"])
    names = [d[4:4 + struct.unpack(">I", d[:4])[0]].decode() for d, ty in zip(datas, types) if ty == "SERVER"]
    print("list_over_tls=" + ",".join(types))
    print("names=" + ",".join(names))
    send_opt(t, OPT["ABORT"])
    print("abort=" + ",".join(read_replies(t, OPT["ABORT"])[0]))


def cmd_list(port):
    s = connect(port)
    send_opt(s, OPT["LIST"])
    types, datas = read_replies(s, OPT["LIST"])
    names = [d[4:4 + struct.unpack(">I", d[:4])[0]].decode() for d, ty in zip(datas, types) if ty == "SERVER"]
    print("list=" + ",".join(types))
    print("names=" + ",".join(names))
    send_opt(s, OPT["ABORT"])
    read_replies(s, OPT["ABORT"])


def cmd_junk(port):
    s = connect(port)
    send_opt(s, OPT["STARTTLS"])
    print("starttls=" + ",".join(read_replies(s, OPT["STARTTLS"])[0]))
    s.sendall(b"G" * 200)   # record header with a bad type and length: fails at once
    try:
        while s.recv(4096):
            pass
        print("junk=closed")
    except socket.timeout:
        print("junk=still-open")
    except ConnectionResetError:
        print("junk=closed")


def cmd_hangup(port):
    s = connect(port)
    send_opt(s, OPT["STARTTLS"])
    print("starttls=" + ",".join(read_replies(s, OPT["STARTTLS"])[0]))
    s.close()
    print("hangup=done")


if __name__ == "__main__":
    cmd = sys.argv[1]
    {"require": cmd_require, "exportname": cmd_exportname, "starttls": cmd_starttls,
     "list": cmd_list, "junk": cmd_junk, "hangup": cmd_hangup}[cmd](*sys.argv[2:])
