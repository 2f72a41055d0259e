# tests/tools/nbdraw.py: a raw NBD protocol client for fault and limit tests.
# It speaks just enough fixed-newstyle handshake and simple-reply transmission to
# misbehave on purpose (partial headers, oversized options, hang-ups, no reads).
# Wire constants come from src/proto/nbd-protocol.h, parsed at import time.
import os
import re
import socket
import struct
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
