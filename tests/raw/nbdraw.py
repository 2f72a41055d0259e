"""nbdraw.py: a small raw-protocol NBD client for tests (python3 standard library only).

It speaks the wire format byte by byte so tests can do what real clients never do:
extended headers, malformed or truncated messages, lying lengths. Every wire
constant comes from src/proto/nbd-protocol.h (parsed at import), so there is one
definition of the protocol. Every receive is bounded by a socket timeout."""
import os
import re
import socket
import struct

_HEADER = os.path.join(os.path.dirname(os.path.abspath(__file__)),
                       "..", "..", "src", "proto", "nbd-protocol.h")


def _load_constants(path):
    """#define NAME VALUE lines of nbd-protocol.h, evaluated as integers."""
    env = {}
    pat = re.compile(r"^#define\s+(NBD_\w+)\s+(.+?)\s*(?:/\*.*)?$")
    for line in open(path):
        m = pat.match(line)
        if not m:
            continue
        expr = re.sub(r"UINT(?:32|64)_C\(([^)]*)\)", r"(\1)", m.group(2))
        expr = re.sub(r"\b(0x[0-9a-fA-F]+|\d+)[uUlL]+\b", r"\1", expr)
        try:
            env[m.group(1)] = int(eval(expr, {"__builtins__": {}}, dict(env)))
        except Exception:
            pass  # not an integer constant (e.g. NBD_PACKED)
    return env


C = _load_constants(os.environ.get("NBD_PROTOCOL_H", _HEADER))
globals().update(C)


class Closed(Exception):
    """The server closed the connection (EOF or reset)."""


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
