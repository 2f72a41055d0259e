#!/usr/bin/env python3
"""nbdraw.py: the tests' raw NBD client (python3 standard library only).

It speaks the wire format byte by byte so tests can do what real clients never
do: extended headers, malformed or truncated messages, lying lengths, partial
headers, oversized options, hang-ups, no reads. Every wire constant comes from
src/proto/nbd-protocol.h (parsed at import), so there is one definition of the
protocol. Three ways to use it:
  - functions on a socket (connect, handshake, send_option, request, ...), for
    fault and limit tests that misbehave between the steps;
  - Client, one connection with the handshake and transmission as methods, and
    Reply, read_data, reply_error, Tap for the tests in tests/raw/;
  - as a program, handshake probes for the TLS tests that print one
    "key=value" line per observation (see probe_main at the end).
"""
import os
import re
import socket
import ssl
import struct
import sys
import time

_TOP = os.environ.get("SHUNT_TOP") or os.path.abspath(
    os.path.join(os.path.dirname(__file__), "..", ".."))


def _load_constants(path):
    """Return {NAME: int} for every integer #define NBD_* in the protocol header."""
    raw = {}
    with open(path) as f:
        for line in f:
            m = re.match(r"\s*#define\s+(NBD_\w+)\s+(.+?)\s*(/\*.*)?$", line)
            if m:
                raw[m.group(1)] = m.group(2)
    out = {}

    def value(name, depth=0):
        if name in out:
            return out[name]
        expr = raw[name]
        expr = re.sub(r"UINT(?:32|64)_C\(([^)]*)\)", r"(\1)", expr)
        expr = re.sub(r"\b(0x[0-9a-fA-F]+|\d+)[uU][lL]*\b", r"\1", expr)
        if not re.fullmatch(r"[\w\s()|<>+*x-]+", expr) or depth > 8:
            raise ValueError
        expr = re.sub(r"\b(NBD_\w+)\b", lambda m: str(value(m.group(1), depth + 1)), expr)
        out[name] = int(eval(expr, {"__builtins__": {}}))
        return out[name]

    for name in raw:
        try:
            value(name)
        except (ValueError, KeyError, SyntaxError, NameError, TypeError):
            pass
    return out


C = _load_constants(os.path.join(_TOP, "src", "proto", "nbd-protocol.h"))
globals().update(C)


class Closed(Exception):
    """The server closed the connection (EOF or reset)."""


def connect(port, host="127.0.0.1", timeout=10.0):
    s = socket.create_connection((host, port), timeout=timeout)
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return s


def recv_exact(s, n):
    buf = bytearray()
    while len(buf) < n:
        try:
            chunk = s.recv(n - len(buf))
        except (ConnectionResetError, BrokenPipeError) as e:
            raise Closed(str(e))
        if not chunk:
            raise Closed("EOF after %d of %d bytes" % (len(buf), n))
        buf += chunk
    return bytes(buf)


def wait_closed(s, timeout):
    """Return seconds until the peer closes the socket, or None if it stays open."""
    t0 = time.monotonic()
    s.settimeout(0.2)
    while time.monotonic() - t0 < timeout:
        try:
            d = s.recv(65536)
            if not d:
                return time.monotonic() - t0
        except socket.timeout:
            continue
        except (ConnectionResetError, BrokenPipeError):
            return time.monotonic() - t0
    return None


def hard_close(s):
    """Close with an RST instead of a FIN (SO_LINGER 0)."""
    s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    s.close()


def read_greeting(s):
    magic, opt, hflags = struct.unpack(">QQH", recv_exact(s, 18))
    if magic != NBD_MAGIC or opt != NBD_NEW_VERSION:
        raise ValueError("bad greeting %x %x" % (magic, opt))
    return hflags


def send_client_flags(s):
    s.sendall(struct.pack(">I", NBD_FLAG_C_FIXED_NEWSTYLE | NBD_FLAG_C_NO_ZEROES))


def send_option(s, opt, data=b""):
    s.sendall(struct.pack(">QII", NBD_NEW_VERSION, opt, len(data)) + data)


def read_option_reply(s):
    """Return (option, reply_type, data)."""
    magic, opt, rtype, length = struct.unpack(">QIII", recv_exact(s, 20))
    if magic != NBD_REP_MAGIC:
        raise ValueError("bad option reply magic %x" % magic)
    if length > 16 * 1024 * 1024:
        raise ValueError("option reply claims %d bytes" % length)
    return opt, rtype, recv_exact(s, length)


def go_payload(name=b""):
    return struct.pack(">I", len(name)) + name + struct.pack(">H", 0)


def negotiate(s, opt):
    """Send a data-less option (STRUCTURED_REPLY, EXTENDED_HEADERS); True on ACK."""
    send_option(s, opt)
    _, rtype, _ = read_option_reply(s)
    return rtype == NBD_REP_ACK


def handshake(port, name=b"", host="127.0.0.1", timeout=10.0, structured=False, extended=False):
    """Connect and finish NBD_OPT_GO; return (socket, size, transmission flags).
    With structured or extended, negotiate those first; raise ValueError if refused."""
    s = connect(port, host, timeout)
    read_greeting(s)
    send_client_flags(s)
    if extended and not negotiate(s, NBD_OPT_EXTENDED_HEADERS):
        raise ValueError("NBD_OPT_EXTENDED_HEADERS refused")
    if structured and not negotiate(s, NBD_OPT_STRUCTURED_REPLY):
        raise ValueError("NBD_OPT_STRUCTURED_REPLY refused")
    send_option(s, NBD_OPT_GO, go_payload(name))
    size = flags = None
    while True:
        opt, rtype, data = read_option_reply(s)
        if rtype == NBD_REP_INFO and len(data) >= 12 and struct.unpack(">H", data[:2])[0] == NBD_INFO_EXPORT:
            size, flags = struct.unpack(">QH", data[2:12])
        elif rtype == NBD_REP_ACK:
            break
        elif rtype & NBD_REP_FLAG_ERROR:
            raise ValueError("NBD_OPT_GO refused: 0x%x %r" % (rtype, data))
    if size is None:
        raise ValueError("no NBD_INFO_EXPORT before ACK")
    return s, size, flags


def request(cmd, handle, offset, length, flags=0):
    return struct.pack(">IHHQQI", NBD_REQUEST_MAGIC, flags, cmd, handle, offset, length)


def request_ext(cmd, handle, offset, length, flags=0):
    """An extended-header request (after NBD_OPT_EXTENDED_HEADERS)."""
    return struct.pack(">IHHQQQ", NBD_EXTENDED_REQUEST_MAGIC, flags, cmd, handle, offset, length)


def read_simple_reply(s):
    """Return (error, handle) of a simple reply header."""
    magic, err, handle = struct.unpack(">IIQ", recv_exact(s, 16))
    if magic != NBD_SIMPLE_REPLY_MAGIC:
        raise ValueError("bad reply magic %x" % magic)
    return err, handle


def proc_status(pid, field):
    """Return a /proc/PID/status field in kB (VmRSS, VmHWM), or -1."""
    try:
        with open("/proc/%d/status" % pid) as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except OSError:
        pass
    return -1


class Reply:
    """One reply message: simple, structured chunk or extended chunk."""

    def __init__(self, kind, cookie, error=0, flags=0, rtype=0, offset=None, payload=b""):
        self.kind, self.cookie, self.error = kind, cookie, error
        self.flags, self.type, self.offset, self.payload = flags, rtype, offset, payload

    @property
    def done(self):
        return self.kind == "simple" or bool(self.flags & NBD_REPLY_FLAG_DONE)

    def chunk_error(self):
        """The error number of an error chunk (0 otherwise)."""
        if self.kind == "simple":
            return self.error
        if self.type & NBD_REPLY_TYPE_ERROR_BIT and len(self.payload) >= 6:
            return struct.unpack(">I", self.payload[:4])[0]
        return 0

    def __repr__(self):
        return "Reply(%s cookie=%d err=%d flags=%#x type=%d off=%s len=%d)" % (
            self.kind, self.cookie, self.error, self.flags, self.type, self.offset,
            len(self.payload))


class Client:
    """One connection. Methods raise Closed when the server hangs up."""

    def __init__(self, host="127.0.0.1", port=None, unix=None, timeout=10.0):
        if unix:
            self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            self.sock.settimeout(timeout)
            self.sock.connect(unix)
        else:
            self.sock = socket.create_connection((host, port), timeout=timeout)
        self.extended = False
        self.structured = False
        self.cookie = 0

    # ---- bytes ----
    def send(self, data):
        try:
            self.sock.sendall(data)
        except (BrokenPipeError, ConnectionResetError) as e:
            raise Closed(str(e))

    def recv_exact(self, n):
        """n bytes, or Closed on EOF; socket.timeout if the server is silent."""
        buf = bytearray()
        while len(buf) < n:
            try:
                part = self.sock.recv(min(n - len(buf), 1 << 20))
            except ConnectionResetError as e:
                raise Closed(str(e))
            if not part:
                raise Closed("EOF after %d of %d bytes" % (len(buf), n))
            buf += part
        return bytes(buf)

    def is_closed(self, wait=5.0):
        """True if the server closes the connection within wait seconds
        (any bytes it still sends are discarded)."""
        old = self.sock.gettimeout()
        self.sock.settimeout(wait)
        try:
            while True:
                if not self.sock.recv(65536):
                    return True
        except ConnectionResetError:
            return True
        except socket.timeout:
            return False
        finally:
            self.sock.settimeout(old)

    def close(self):
        self.sock.close()

    # ---- handshake ----
    def greeting(self, client_flags=None):
        """Read the server's greeting and answer with client flags."""
        magic, version, gflags = struct.unpack(">QQH", self.recv_exact(18))
        if magic != NBD_MAGIC or version != NBD_NEW_VERSION:
            raise ValueError("bad greeting %#x %#x" % (magic, version))
        self.gflags = gflags
        if client_flags is None:
            client_flags = NBD_FLAG_C_FIXED_NEWSTYLE | (gflags & NBD_FLAG_NO_ZEROES)
        self.send(struct.pack(">I", client_flags))
        return gflags

    def send_option(self, opt, data=b"", claimed_len=None):
        n = len(data) if claimed_len is None else claimed_len
        self.send(struct.pack(">QII", NBD_NEW_VERSION, opt, n) + data)

    def recv_option_reply(self, max_len=1 << 20):
        magic, opt, rep, n = struct.unpack(">QIII", self.recv_exact(20))
        if magic != NBD_REP_MAGIC:
            raise ValueError("bad option reply magic %#x" % magic)
        if n > max_len:
            raise ValueError("option reply length %d too large" % n)
        return opt, rep, self.recv_exact(n)

    def option(self, opt, data=b""):
        """Send an option; collect replies up to the final (ACK or error).
        Returns (final reply type, [(type, payload) of every reply])."""
        self.send_option(opt, data)
        replies = []
        while True:
            ropt, rep, payload = self.recv_option_reply()
            if ropt != opt:
                raise ValueError("reply for option %d while waiting for %d" % (ropt, opt))
            replies.append((rep, payload))
            if rep == NBD_REP_ACK or rep & NBD_REP_FLAG_ERROR:
                return rep, replies

    def negotiate(self, name, structured=False, extended=False, meta=()):
        """Greeting, optional STRUCTURED_REPLY / EXTENDED_HEADERS / SET_META_CONTEXT,
        then GO. Returns dict(size, eflags, block_sizes, contexts={name: id})."""
        self.greeting()
        if extended:
            rep, _ = self.option(NBD_OPT_EXTENDED_HEADERS)
            if rep != NBD_REP_ACK:
                raise ValueError("EXTENDED_HEADERS refused: %#x" % rep)
            self.extended = True
        if structured:
            rep, _ = self.option(NBD_OPT_STRUCTURED_REPLY)
            if rep != NBD_REP_ACK:
                raise ValueError("STRUCTURED_REPLY refused: %#x" % rep)
            self.structured = True
        contexts = {}
        if meta:
            rep, replies = self.option(NBD_OPT_SET_META_CONTEXT, meta_context_data(name, meta))
            if rep != NBD_REP_ACK:
                raise ValueError("SET_META_CONTEXT refused: %#x" % rep)
            for t, p in replies:
                if t == NBD_REP_META_CONTEXT:
                    contexts[p[4:].decode()] = struct.unpack(">I", p[:4])[0]
        info = self.go(name)
        info["contexts"] = contexts
        return info

    def go(self, name, infos=(NBD_INFO_BLOCK_SIZE,)):
        nm = name.encode()
        data = struct.pack(">I", len(nm)) + nm + struct.pack(">H", len(infos))
        data += b"".join(struct.pack(">H", i) for i in infos)
        rep, replies = self.option(NBD_OPT_GO, data)
        if rep != NBD_REP_ACK:
            raise ValueError("GO %r refused: %#x" % (name, rep))
        info = {"block_sizes": None}
        for t, p in replies:
            if t != NBD_REP_INFO:
                continue
            kind = struct.unpack(">H", p[:2])[0]
            if kind == NBD_INFO_EXPORT:
                info["size"], info["eflags"] = struct.unpack(">QH", p[2:12])
            elif kind == NBD_INFO_BLOCK_SIZE:
                info["block_sizes"] = struct.unpack(">III", p[2:14])
        self.info = info
        return info

    # ---- transmission ----
    def request(self, cmd, offset=0, length=0, payload=b"", flags=0, cookie=None,
                compact=None):
        """Send one request (extended if negotiated, unless compact=True).
        With extended headers and a payload, PAYLOAD_LEN is set and length is
        the payload's. Returns the cookie."""
        data, cookie = self.encode_request(cmd, offset, length, payload, flags, cookie, compact)
        self.send(data)
        return cookie

    def encode_request(self, cmd, offset=0, length=0, payload=b"", flags=0, cookie=None,
                       compact=None):
        """The bytes request() would send (header + payload), and the cookie."""
        if cookie is None:
            self.cookie += 1
            cookie = self.cookie
        if self.extended and not compact:
            if payload:
                flags |= NBD_CMD_FLAG_PAYLOAD_LEN
                length = len(payload)
            hdr = struct.pack(">IHHQQQ", NBD_EXTENDED_REQUEST_MAGIC, flags, cmd, cookie,
                              offset, length)
        else:
            if payload:
                length = len(payload)
            hdr = struct.pack(">IHHQQI", NBD_REQUEST_MAGIC, flags, cmd, cookie, offset, length)
        return hdr + payload, cookie

    def recv_reply(self, read_len=None, max_payload=64 << 20):
        """One reply message. read_len: payload length of a simple read reply
        (only the caller knows it), or a function of the reply's cookie giving it."""
        magic = struct.unpack(">I", self.recv_exact(4))[0]
        if magic == NBD_SIMPLE_REPLY_MAGIC:
            err, cookie = struct.unpack(">IQ", self.recv_exact(12))
            if callable(read_len):
                read_len = read_len(cookie)
            if read_len and not err and read_len > max_payload:
                raise ValueError("simple read reply of %d bytes: refusing to buffer it" % read_len)
            payload = self.recv_exact(read_len) if (read_len and not err) else b""
            return Reply("simple", cookie, error=err, payload=payload)
        if magic == NBD_STRUCTURED_REPLY_MAGIC:
            flags, rtype, cookie, n = struct.unpack(">HHQI", self.recv_exact(16))
            if n > max_payload:
                raise ValueError("structured chunk length %d too large" % n)
            return Reply("structured", cookie, flags=flags, rtype=rtype,
                         payload=self.recv_exact(n))
        if magic == NBD_EXTENDED_REPLY_MAGIC:
            flags, rtype, cookie, off, n = struct.unpack(">HHQQQ", self.recv_exact(28))
            if n > max_payload:
                raise ValueError("extended chunk length %d too large" % n)
            return Reply("extended", cookie, flags=flags, rtype=rtype, offset=off,
                         payload=self.recv_exact(n))
        raise ValueError("bad reply magic %#x" % magic)

    def replies(self, cookie, read_len=None):
        """Every reply message for cookie up to the final one."""
        out = []
        while True:
            r = self.recv_reply(read_len)
            if r.cookie != cookie:
                raise ValueError("reply for cookie %d while waiting for %d" % (r.cookie, cookie))
            out.append(r)
            if r.done:
                return out

    def command(self, cmd, offset=0, length=0, payload=b"", flags=0, compact=None):
        """Send a request and collect its replies."""
        c = self.request(cmd, offset, length, payload, flags, compact=compact)
        return self.replies(c, read_len=length if cmd == NBD_CMD_READ else None)

    def disconnect(self):
        try:
            self.request(NBD_CMD_DISC)
        except Closed:
            pass
        self.close()


def reply_error(replies):
    """The first error number in a reply (simple or chunks), 0 if none."""
    for r in replies:
        if r.chunk_error():
            return r.chunk_error()
    return 0


def meta_context_data(name, contexts):
    nm = name.encode()
    data = struct.pack(">I", len(nm)) + nm + struct.pack(">I", len(contexts))
    for c in contexts:
        cb = c.encode()
        data += struct.pack(">I", len(cb)) + cb
    return data


def read_data(replies, offset, length):
    """Reassemble a read from replies (simple or chunks); returns (bytes, error).
    Holes are zero-filled; overlapping or out-of-range chunks raise ValueError."""
    buf = bytearray(length)
    seen = []
    for r in replies:
        if r.kind == "simple":
            return r.payload, r.error
        if r.chunk_error():
            return None, r.chunk_error()
        if r.type == NBD_REPLY_TYPE_OFFSET_DATA:
            off = struct.unpack(">Q", r.payload[:8])[0]
            data = r.payload[8:]
            span = (off, len(data))
            buf[off - offset:off - offset + len(data)] = data
        elif r.type == NBD_REPLY_TYPE_OFFSET_HOLE:
            span = struct.unpack(">QI", r.payload[:12])
        elif r.type == NBD_REPLY_TYPE_NONE:
            continue
        else:
            raise ValueError("unexpected chunk type %d in a read reply" % r.type)
        if span[0] < offset or span[0] + span[1] > offset + length or span[1] == 0:
            raise ValueError("chunk %s outside the request [%d,+%d)" % (span, offset, length))
        for o, n in seen:
            if span[0] < o + n and o < span[0] + span[1]:
                raise ValueError("chunks %s and %s overlap" % (span, (o, n)))
        seen.append(span)
    if sum(n for _, n in seen) != length:
        raise ValueError("chunks cover %d of %d bytes" % (sum(n for _, n in seen), length))
    return bytes(buf), 0


def rss_kb(pid):
    """VmRSS of pid in KiB (None if it is gone)."""
    try:
        for line in open("/proc/%d/status" % pid):
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    except OSError:
        return None
    return None


class Tap:
    """Prints "ok - x" / "not ok - x" lines for tests/lib.sh tap_relay."""

    def __init__(self):
        self.failed = 0

    def check(self, cond, what, detail=""):
        print(("ok - " if cond else "not ok - ") + what, flush=True)
        if not cond:
            self.failed += 1
            for line in str(detail).splitlines()[:20]:
                print("#   " + line, flush=True)
        return cond

    def run(self, what, fn):
        """fn() returns bool or (bool, detail); an exception fails the check."""
        import traceback
        try:
            res = fn()
        except Exception as e:
            tb = traceback.format_exc().splitlines()
            return self.check(False, what, "\n".join(tb[-6:]) if not isinstance(e, Closed)
                              else "the server closed the connection: %s" % e)
        if isinstance(res, tuple):
            return self.check(bool(res[0]), what, res[1])
        return self.check(bool(res), what)


# ---- Handshake probes for the TLS tests (tests/interop/tls_*.sh) ----
# Run as a program, it shows exactly what the server replies to each option,
# which libnbd hides. One "key=value" line per observation; the shell test
# asserts on them.
#   nbdraw.py require PORT NAME      options before STARTTLS on a --tls=require server
#   nbdraw.py exportname PORT NAME   NBD_OPT_EXPORT_NAME before STARTTLS
#   nbdraw.py starttls PORT CAFILE   STARTTLS with data, STARTTLS, then STARTTLS
#                                    again and LIST over TLS (X.509)
#   nbdraw.py list PORT              plaintext LIST: reply types and names
#   nbdraw.py junk PORT              STARTTLS, then garbage instead of a ClientHello
#   nbdraw.py hangup PORT            STARTTLS, then hang up before the TLS handshake

# Option reply types by value, named as in the header without NBD_REP_ ("ACK", "ERR_UNSUP").
REP_NAMES = {v: k[len("NBD_REP_"):] for k, v in C.items()
             if k.startswith("NBD_REP_") and k not in ("NBD_REP_MAGIC", "NBD_REP_FLAG_ERROR")}
# An option number no server knows.
OPT_UNKNOWN = 99


class Probe:
    """One connection past the greeting that records every byte it receives
    (to tell whether anything secret travelled before TLS)."""

    def __init__(self, port):
        self.sock = connect(int(port))
        self.received = bytearray()
        greet = self.recv(18)
        assert greet[:8] == b"NBDMAGIC", greet
        self.sock.sendall(struct.pack(">I", NBD_FLAG_C_FIXED_NEWSTYLE | NBD_FLAG_C_NO_ZEROES))

    def recv(self, n):
        data = recv_exact(self.sock, n)
        self.received += data
        return data

    def option(self, opt, data=b""):
        """Send an option; return the names and payloads of its replies up to the final one."""
        send_option(self.sock, opt, data)
        types, datas = [], []
        while True:
            magic, ropt, rtype, rlen = struct.unpack(">QIII", self.recv(20))
            assert magic == NBD_REP_MAGIC and ropt == opt, (hex(magic), ropt, opt)
            datas.append(self.recv(rlen))
            types.append(REP_NAMES.get(rtype, hex(rtype)))
            # SERVER, INFO and META_CONTEXT precede the final reply.
            if rtype not in (NBD_REP_SERVER, NBD_REP_INFO, NBD_REP_META_CONTEXT):
                return types, datas

    def names(self, types, datas):
        """The export names of NBD_REP_SERVER replies."""
        return [d[4:4 + struct.unpack(">I", d[:4])[0]].decode()
                for d, ty in zip(datas, types) if ty == "SERVER"]


def _info_data(name):
    n = name.encode()
    return struct.pack(">I", len(n)) + n + struct.pack(">HH", 1, NBD_INFO_EXPORT)


def probe_require(port, name):
    p = Probe(port)
    meta = meta_context_data(name, ["base:allocation"])
    opts = [("LIST", NBD_OPT_LIST, b""), ("INFO", NBD_OPT_INFO, _info_data(name)),
            ("GO", NBD_OPT_GO, _info_data(name)), ("STRUCTURED_REPLY", NBD_OPT_STRUCTURED_REPLY, b""),
            ("LIST_META_CONTEXT", NBD_OPT_LIST_META_CONTEXT, meta),
            ("SET_META_CONTEXT", NBD_OPT_SET_META_CONTEXT, meta),
            ("EXTENDED_HEADERS", NBD_OPT_EXTENDED_HEADERS, b""),
            ("UNKNOWN", OPT_UNKNOWN, b"xyz"), ("LIST_BIG", NBD_OPT_LIST, b"\0" * 70000)]
    for label, opt, data in opts:
        types, _ = p.option(opt, data)
        print("%s=%s" % (label, ",".join(types)))
    types, _ = p.option(NBD_OPT_ABORT)
    print("ABORT=" + ",".join(types))
    print("leak=" + ("yes" if name.encode() in p.received else "no"))


def probe_exportname(port, name):
    p = Probe(port)
    send_option(p.sock, NBD_OPT_EXPORT_NAME, name.encode())
    try:
        data = p.sock.recv(1000)
        p.received += data
        print("exportname=" + ("closed" if not data else "replied"))
    except ConnectionResetError:
        print("exportname=closed")
    print("leak=" + ("yes" if len(p.received) > 18 else "no"))


def probe_starttls(port, cafile):
    p = Probe(port)
    print("starttls_with_data=" + ",".join(p.option(NBD_OPT_STARTTLS, b"x")[0]))
    print("starttls=" + ",".join(p.option(NBD_OPT_STARTTLS)[0]))
    ctx = ssl.create_default_context(cafile=cafile)
    p.sock = ctx.wrap_socket(p.sock, server_hostname="localhost")
    print("tls_version=" + p.sock.version())
    print("starttls_again=" + ",".join(p.option(NBD_OPT_STARTTLS)[0]))
    types, datas = p.option(NBD_OPT_LIST)
    print("list_over_tls=" + ",".join(types))
    print("names=" + ",".join(p.names(types, datas)))
    print("abort=" + ",".join(p.option(NBD_OPT_ABORT)[0]))


def probe_cipher(port, cafile, tls12_ciphers=None):
    """STARTTLS with Python's (OpenSSL's) client, which lists AES-256-GCM
    first for TLS 1.3; with tls12_ciphers (an OpenSSL cipher list), TLS 1.2
    offering only those.  Prints the suite negotiated, or handshake=failed."""
    p = Probe(port)
    print("starttls=" + ",".join(p.option(NBD_OPT_STARTTLS)[0]))
    ctx = ssl.create_default_context(cafile=cafile)
    if tls12_ciphers:
        ctx.maximum_version = ssl.TLSVersion.TLSv1_2
        ctx.set_ciphers(tls12_ciphers)
    try:
        p.sock = ctx.wrap_socket(p.sock, server_hostname="localhost")
    except (ssl.SSLError, ConnectionError) as e:
        print("handshake=failed")
        print("error=%s" % e)
        return
    print("handshake=done")
    print("cipher=" + p.sock.cipher()[0])
    print("abort=" + ",".join(p.option(NBD_OPT_ABORT)[0]))


def probe_list(port):
    p = Probe(port)
    types, datas = p.option(NBD_OPT_LIST)
    print("list=" + ",".join(types))
    print("names=" + ",".join(p.names(types, datas)))
    p.option(NBD_OPT_ABORT)


def probe_junk(port):
    p = Probe(port)
    print("starttls=" + ",".join(p.option(NBD_OPT_STARTTLS)[0]))
    p.sock.sendall(b"G" * 200)   # record header with a bad type and length: fails at once
    try:
        while p.sock.recv(4096):
            pass
        print("junk=closed")
    except socket.timeout:
        print("junk=still-open")
    except ConnectionResetError:
        print("junk=closed")


def probe_hangup(port):
    p = Probe(port)
    print("starttls=" + ",".join(p.option(NBD_OPT_STARTTLS)[0]))
    p.sock.close()
    print("hangup=done")


def probe_main(args):
    probes = {"require": probe_require, "exportname": probe_exportname,
              "starttls": probe_starttls, "cipher": probe_cipher, "list": probe_list, "junk": probe_junk,
              "hangup": probe_hangup}
    if not args or args[0] not in probes:
        sys.exit("usage: nbdraw.py {%s} PORT [ARG]" % "|".join(sorted(probes)))
    probes[args[0]](*args[1:])


if __name__ == "__main__":
    probe_main(sys.argv[1:])
