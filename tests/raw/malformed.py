#!/usr/bin/python3
"""malformed.py: malformed and hostile input against an NBD server.

  malformed.py PORT EXPORT SERVER_PID
EXPORT is a writable export of at least 64 MiB. Each case uses its own
connection; after each, a well-behaved client (nbdinfo) must still be served,
the server process must be alive, and its peak RSS (VmHWM) must stay within
200 MB of where it started. Prints "ok - x" / "not ok - x" for tap_relay."""
import os
import socket
import struct
import subprocess
import sys
import threading

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tools"))
from nbdraw import *  # noqa: E402,F401,F403
import nbdraw  # noqa: E402

port, name, pid = int(sys.argv[1]), sys.argv[2], int(sys.argv[3])
uri = "nbd://127.0.0.1:%d/%s" % (port, name)
tap = nbdraw.Tap()
MAX_GROWTH_KB = 200 * 1024
JUNK = 256 << 20        # bytes of junk streamed after a lying length


def hwm_kb():
    try:
        for line in open("/proc/%d/status" % pid):
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    except OSError:
        return None


base_hwm = hwm_kb()
print("# server pid %d, VmHWM at start %s KiB" % (pid, base_hwm))


def connect(timeout=10):
    return nbdraw.Client(port=port, timeout=timeout)


def stream_junk(c, n, seconds=20):
    """Send n junk bytes from a thread (the server may stop reading or hang up);
    returns the number of bytes the kernel accepted before it stopped."""
    sent = [0]
    chunk = b"\x5a" * (1 << 20)

    def run():
        try:
            c.sock.settimeout(seconds)
            while sent[0] < n:
                sent[0] += c.sock.send(chunk[:min(len(chunk), n - sent[0])])
        except OSError:
            pass
    t = threading.Thread(target=run, daemon=True)
    t.start()
    t.join(seconds + 5)
    return sent[0]


def healthy(what):
    """After each case: the server is alive, serves nbdinfo, and memory is bounded."""
    alive = True
    try:
        os.kill(pid, 0)
    except OSError:
        alive = False
    tap.check(alive, "%s: server process still alive" % what)
    try:
        p = subprocess.run(["nbdinfo", "--size", uri], capture_output=True, timeout=30, text=True)
        ok, detail = p.returncode == 0 and p.stdout.strip().isdigit(), p.stdout + p.stderr
    except subprocess.TimeoutExpired:
        ok, detail = False, "nbdinfo timed out"
    tap.check(ok, "%s: then nbdinfo is served" % what, detail)
    h = hwm_kb()
    if base_hwm is not None and h is not None:
        tap.check(h - base_hwm < MAX_GROWTH_KB, "%s: peak RSS growth %d KiB < 200 MB" % (
            what, h - base_hwm), "VmHWM %d KiB, at start %d KiB" % (h, base_hwm))


def closed_or_error(c, opt=None, wait=10):
    """After a bad message: the server hangs up, or (if opt) answers it with an
    option error. Returns (ok, outcome)."""
    try:
        c.sock.settimeout(wait)
        if opt is not None:
            ropt, rep, _ = c.recv_option_reply()
            return bool(rep & NBD_REP_FLAG_ERROR), "option reply %#x" % rep
        closed = c.is_closed(wait)
        return closed, "closed" if closed else "connection left open"
    except nbdraw.Closed:
        return True, "closed"
    except socket.timeout:
        return False, "no answer within %ds" % wait
    except Exception as e:
        return False, "%s: %s" % (type(e).__name__, e)


def case(what, fn):
    tap.run(what, fn)
    healthy(what)


def transmission(structured=True):
    c = connect()
    c.negotiate(name, structured=structured)
    return c


# ---- handshake phase ----
def wrong_option_magic():
    c = connect()
    c.greeting()
    c.send(struct.pack(">QII", 0x0123456789ABCDEF, NBD_OPT_GO, 0))
    return closed_or_error(c)


case("wrong option magic (not IHAVEOPT): connection closed", wrong_option_magic)


def unknown_client_flags():
    c = connect()
    c.greeting(client_flags=NBD_FLAG_C_FIXED_NEWSTYLE | 0x80000000)
    return closed_or_error(c)


case("unknown client flag bits: connection closed (spec: MUST close)", unknown_client_flags)


def truncated_handshake():
    for cut in (0, 2, 4 + 8 + 3):   # no flags, half the flags, mid option header
        c = connect()
        c.recv_exact(18)
        c.send((struct.pack(">I", NBD_FLAG_C_FIXED_NEWSTYLE | NBD_FLAG_C_NO_ZEROES) +
                struct.pack(">QII", NBD_NEW_VERSION, NBD_OPT_GO, 10))[:cut])
        c.sock.shutdown(socket.SHUT_WR)
        if not c.is_closed(10):
            return False, "server kept the half-closed connection (cut at %d)" % cut
        c.close()
    return True


case("truncated handshake (hang-up mid header, 3 ways): server closes its side", truncated_handshake)


def option_claims_4gib(opt):
    def run():
        c = connect()
        c.greeting()
        c.send_option(opt, b"", claimed_len=0xFFFFFFFF)
        sent = stream_junk(c, JUNK)
        ok, outcome = closed_or_error(c, opt if opt != NBD_OPT_EXPORT_NAME else None, wait=5)
        if not ok and "no answer" in outcome:
            ok, outcome = True, "server is still discarding the data (allowed)"
        print("#   option %d claiming 4 GiB: %s after %d MiB of junk" % (opt, outcome, sent >> 20))
        c.close()
        return ok, outcome
    return run


case("option GO claiming a 4 GiB length: error or close, nothing allocated",
     option_claims_4gib(NBD_OPT_GO))
case("unknown option claiming a 4 GiB length, 256 MiB of junk streamed: memory bounded",
     option_claims_4gib(0x7777))
case("EXPORT_NAME claiming a 4 GiB length: close, nothing allocated",
     option_claims_4gib(NBD_OPT_EXPORT_NAME))


def unknown_option():
    c = connect()
    c.greeting()
    r1 = c.option(0x1234)[0]
    r2 = c.option(0x4321, b"some option data")[0]
    info = c.go(name)
    c.disconnect()
    return r1 == NBD_REP_ERR_UNSUP and r2 == NBD_REP_ERR_UNSUP and info.get("size", 0) > 0, \
        "replies %#x %#x" % (r1, r2)


case("unknown options get NBD_REP_ERR_UNSUP, then GO works on that connection", unknown_option)


def starttls():
    c = connect()
    c.greeting()
    r = c.option(NBD_OPT_STARTTLS)[0]
    info = c.go(name)
    c.disconnect()
    return r == NBD_REP_ERR_POLICY and info.get("size", 0) > 0, "reply %#x" % r


case("STARTTLS without TLS configured: NBD_REP_ERR_POLICY, connection goes on", starttls)


def go_unknown_export():
    c = connect()
    c.greeting()
    nm = b"no-such-export"
    rep, _ = c.option(NBD_OPT_GO, struct.pack(">I", len(nm)) + nm + b"\0\0")
    info = c.go(name)
    c.disconnect()
    return rep == NBD_REP_ERR_UNKNOWN and info.get("size", 0) > 0, "reply %#x" % rep


case("GO for an unknown export: NBD_REP_ERR_UNKNOWN, connection goes on", go_unknown_export)


def go_name_too_long():
    c = connect()
    c.greeting()
    nm = b"n" * 5000
    c.send_option(NBD_OPT_GO, struct.pack(">I", len(nm)) + nm + b"\0\0")
    return closed_or_error(c, NBD_OPT_GO)


case("GO with a 5000-byte export name: option error or close", go_name_too_long)


def go_inner_length_lies():
    # The name length inside GO's data claims more than the option carries.
    c = connect()
    c.greeting()
    rep, _ = c.option(NBD_OPT_GO, struct.pack(">I", 0xFFFFFF00) + b"abc\0\0")
    c.close()
    return rep in (NBD_REP_ERR_INVALID, NBD_REP_ERR_TOO_BIG), "reply %#x" % rep


case("GO whose inner name length exceeds the option length: NBD_REP_ERR_INVALID",
     go_inner_length_lies)


def option_hangup_mid_data():
    c = connect()
    c.greeting()
    c.send(struct.pack(">QII", NBD_NEW_VERSION, NBD_OPT_GO, 100) + b"x" * 50)
    c.sock.shutdown(socket.SHUT_WR)
    return c.is_closed(10)


case("hang-up in the middle of option data: server closes", option_hangup_mid_data)


# ---- transmission phase ----
def wrong_request_magic():
    c = transmission()
    c.send(struct.pack(">IHHQQI", 0xDEADBEEF, 0, NBD_CMD_READ, 1, 0, 4096))
    return closed_or_error(c)


case("wrong request magic: connection closed", wrong_request_magic)


def extended_magic_not_negotiated():
    c = transmission()
    c.send(struct.pack(">IHHQQQ", NBD_EXTENDED_REQUEST_MAGIC, 0, NBD_CMD_READ, 1, 0, 4096))
    ok, outcome = closed_or_error(c)
    return ok, outcome


case("extended request magic without EXTENDED_HEADERS: connection closed",
     extended_magic_not_negotiated)


def unknown_command(structured):
    def run():
        c = transmission(structured)
        r = c.command(0x99, 0, 4096)
        errs = [x.chunk_error() for x in r]
        nxt = c.command(NBD_CMD_READ, 0, 4096)
        data, e = nbdraw.read_data(nxt, 0, 4096)
        c.disconnect()
        return NBD_EINVAL in errs and e == 0 and len(data) == 4096, "replies %s" % r
    return run


case("unknown command (simple replies): EINVAL, next request served", unknown_command(False))
case("unknown command (structured replies): EINVAL error chunk, next request served",
     unknown_command(True))


def unknown_command_flag():
    c = transmission()
    r = c.command(NBD_CMD_READ, 0, 4096, flags=0x4000)
    c.disconnect()
    return nbdraw.reply_error(r) == NBD_EINVAL, "replies %s" % r


case("unknown command flag on READ: EINVAL", unknown_command_flag)


def offset_overflow():
    c = transmission()
    off = 0xFFFFFFFFFFFFF000
    r1 = c.command(NBD_CMD_READ, off, 8192)
    r2 = c.command(NBD_CMD_WRITE, off, payload=b"\0" * 8192)
    r3 = c.command(NBD_CMD_TRIM, off, 8192)
    c.disconnect()
    errs = [nbdraw.reply_error(r1), nbdraw.reply_error(r2), nbdraw.reply_error(r3)]
    # Spec, "Error values": EINVAL for reads and trims past the end, ENOSPC for writes.
    return errs[0] == NBD_EINVAL and errs[1] in (NBD_EINVAL, NBD_ENOSPC) and \
        errs[2] == NBD_EINVAL, "errors %s" % errs


case("offset + length wrapping past 2^64 (read, write, trim): EINVAL (ENOSPC for the write)",
     offset_overflow)


def read_claims_4gib():
    c = transmission(structured=False)
    r = c.command(NBD_CMD_READ, 0, 0xFFFFFE00)
    err = nbdraw.reply_error(r)
    nxt = c.command(NBD_CMD_READ, 0, 4096)
    c.disconnect()
    return err in (NBD_EINVAL, NBD_EOVERFLOW, NBD_ENOMEM) and nbdraw.reply_error(nxt) == 0, \
        "error %d" % err


case("simple-reply READ of 4 GiB: error reply, nothing allocated, connection goes on",
     read_claims_4gib)


def write_longer_than_max(claim, send):
    def run():
        c = transmission()
        off = 32 << 20
        before = nbdraw.read_data(c.command(NBD_CMD_READ, off, 4096), off, 4096)[0]
        c.send(struct.pack(">IHHQQI", NBD_REQUEST_MAGIC, 0, NBD_CMD_WRITE, 7, off, claim))
        holder = {}

        def reader():
            try:
                c.sock.settimeout(25)
                holder["r"] = c.recv_reply()
            except Exception as e:
                holder["e"] = e
        t = threading.Thread(target=reader, daemon=True)
        t.start()
        sent = stream_junk(c, send)
        t.join(30)
        r, e = holder.get("r"), holder.get("e")
        if r is not None:
            ok = r.chunk_error() != 0
            outcome = "error reply %d" % r.chunk_error()
        elif isinstance(e, nbdraw.Closed):
            ok, outcome = True, "closed"
        elif isinstance(e, socket.timeout) and sent == send < claim:
            # Everything sent so far was consumed: the server is discarding the
            # payload it refused (allowed; memory is checked below).
            ok, outcome = True, "still discarding the payload (allowed)"
        else:
            ok, outcome = False, "%s %s" % (type(e).__name__, e)
        c.close()
        d = transmission()
        after = nbdraw.read_data(d.command(NBD_CMD_READ, off, 4096), off, 4096)[0]
        d.disconnect()
        print("#   write claiming %d bytes: %s after %d MiB sent" % (claim, outcome, sent >> 20))
        return ok and before == after and after != b"\x5a" * 4096, \
            "outcome %s; data written: %s" % (outcome, after != before)
    return run


case("WRITE of 48 MiB (> 32 MiB maximum payload): error or close, nothing written",
     write_longer_than_max(48 << 20, 48 << 20))
case("WRITE claiming 4 GiB with 256 MiB sent: error or close, memory bounded",
     write_longer_than_max(0xFFFFFE00, JUNK))


def hangup_mid_write():
    c = transmission()
    c.send(struct.pack(">IHHQQI", NBD_REQUEST_MAGIC, 0, NBD_CMD_WRITE, 9, 8 << 20, 1 << 20))
    c.send(b"\xa5" * (512 << 10))
    c.close()
    return True


case("hang-up in the middle of a 1 MiB write payload", hangup_mid_write)


def hangup_with_reads_in_flight():
    c = transmission()
    for i in range(32):
        c.request(NBD_CMD_READ, i << 20, 1 << 20)
    c.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    c.close()   # RST while replies are being sent
    return True


case("reset with 32 MiB of reads in flight", hangup_with_reads_in_flight)


def many_connections():
    cs = []
    for _ in range(64):
        c = connect()
        c.recv_exact(18)
        cs.append(c)
    h = transmission()
    r = h.command(NBD_CMD_READ, 0, 4096)
    h.disconnect()
    for c in cs:
        c.close()
    return nbdraw.reply_error(r) == 0


case("64 idle half-negotiated connections do not block a new client", many_connections)

sys.exit(1 if tap.failed else 0)
