#!/usr/bin/python3
# tests/tools/stalled_client.py: clients that hold server resources without making
# progress, and a probe client that must still be served beside them
# (tests/interop/stalled_clients.sh).
#   hold PORT IMAGE NREAD NWRITE READS LEN [WLEN]
#       IMAGE is dropped from the page cache first (cold reads take pipes on mmap too).
#       NREAD connections each pipeline READS READs of LEN bytes and never read a
#       reply; NWRITE connections each send a WRITE header of WLEN bytes (default
#       32 MiB) and 100 bytes of its payload, then nothing.  Prints "ready", then
#       waits until stdin closes and prints how many of the connections the server
#       had closed by then.
#   probe-big PORT IMAGE TIMEOUT
#       One connection writes 8 MiB (more than a connection may always have in
#       flight, whatever the memory budget) and reads it back, within TIMEOUT seconds.
#   probe PORT IMAGE NCONN TIMEOUT
#       NCONN connections each read 4 KiB and 1 MiB (compared with IMAGE) and write
#       4 KiB and read it back; every step must finish within TIMEOUT seconds.
#       Prints "ok - x" / "not ok - x".
import os
import select
import socket
import struct
import sys
import time

import nbdraw as R


def stalled_conn(port):
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    # A small receive buffer: the replies pile up in the server, not in our kernel.
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    s.settimeout(10)
    s.connect(("127.0.0.1", port))
    R.read_greeting(s)
    R.send_client_flags(s)
    R.send_option(s, R.NBD_OPT_GO, R.go_payload(b"disk"))
    while True:
        _, rtype, _ = R.read_option_reply(s)
        if rtype == R.NBD_REP_ACK:
            break
        if rtype & R.NBD_REP_FLAG_ERROR:
            raise ValueError("NBD_OPT_GO refused")
    return s


def closed_by_server(s):
    """True when the server closed s (reads drain what it sent)."""
    s.setblocking(False)
    try:
        while True:
            r, _, _ = select.select([s], [], [], 0.2)
            if not r:
                return False
            if not s.recv(1 << 20):
                return True
    except OSError:
        return True


def cmd_hold(port, image, nread, nwrite, reads, length, wlen=32 << 20):
    fd = os.open(image, os.O_RDONLY)
    os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
    os.close(fd)
    conns = []
    for i in range(nread):
        s = stalled_conn(port)
        s.sendall(b"".join(R.request(R.NBD_CMD_READ, j, (j * length) % (32 << 20), length)
                           for j in range(reads)))
        conns.append(s)
    for i in range(nwrite):
        s = stalled_conn(port)
        s.sendall(R.request(R.NBD_CMD_WRITE, 1, 0, wlen) + b"w" * 100)
        conns.append(s)
    print("ready", flush=True)
    sys.stdin.read()
    n = sum(closed_by_server(s) for s in conns)
    print("closed %d of %d" % (n, len(conns)), flush=True)
    for s in conns:
        R.hard_close(s)


results = []


def check(cond, what):
    results.append(bool(cond))
    print("%s - %s" % ("ok" if cond else "not ok", what), flush=True)


def read_once(s, handle, off, length):
    s.sendall(R.request(R.NBD_CMD_READ, handle, off, length))
    err, h = R.read_simple_reply(s)
    if err or h != handle:
        raise ValueError("READ %d+%d: error %d, handle %d" % (off, length, err, h))
    return R.recv_exact(s, length)


def cmd_probe(port, image, nconn, timeout):
    # Ranges the stalled clients never read (they stay cold: on mmap they need pipes).
    with open(image, "rb") as f:
        ref = f.read()
        os.posix_fadvise(f.fileno(), 0, 0, os.POSIX_FADV_DONTNEED)
    socks = []
    for i in range(nconn):
        s, _, _ = R.handshake(port, b"disk", timeout=timeout)
        socks.append(s)
    for i, s in enumerate(socks):
        t0 = time.monotonic()
        what = "connect"
        try:
            what = "4 KiB read"
            off = (36 << 20) + 4096 * i
            small = read_once(s, 1, off, 4096) == ref[off:off + 4096]
            what = "1 MiB read"
            off = (40 << 20) + (i << 20)
            big = read_once(s, 2, off, 1 << 20) == ref[off:off + (1 << 20)]
            what = "4 KiB write"
            data = os.urandom(4096)
            off = (56 << 20) + 4096 * i
            s.sendall(R.request(R.NBD_CMD_WRITE, 3, off, 4096) + data)
            err, h = R.read_simple_reply(s)
            what = "read back"
            back = err == 0 and read_once(s, 4, off, 4096) == data
            took = time.monotonic() - t0
            check(small and big and back,
                  "probe %d: 4 KiB and 1 MiB reads and a 4 KiB write verified in %.1f s" % (i, took))
        except (R.Closed, OSError, ValueError) as e:
            check(False, "probe %d: %s failed after %.1f s (%s)" % (i, what, time.monotonic() - t0, e))
        s.close()


def cmd_probe_big(port, image, timeout):
    t0 = time.monotonic()
    what = "connect"
    try:
        s, _, _ = R.handshake(port, b"disk", timeout=timeout)
        what = "8 MiB write"
        data = os.urandom(8 << 20)
        off = 8 << 20
        s.sendall(R.request(R.NBD_CMD_WRITE, 1, off, len(data)) + data)
        err, h = R.read_simple_reply(s)
        what = "8 MiB read back"
        back = err == 0 and read_once(s, 2, off, len(data)) == data
        check(back, "8 MiB write and read back verified in %.1f s" % (time.monotonic() - t0))
        s.close()
    except (R.Closed, OSError, ValueError) as e:
        check(False, "8 MiB probe: %s failed after %.1f s (%s)" % (what, time.monotonic() - t0, e))


def main():
    cmd, args = sys.argv[1], sys.argv[2:]
    if cmd == "hold":
        cmd_hold(int(args[0]), args[1], *(int(a) for a in args[2:]))
    elif cmd == "probe-big":
        cmd_probe_big(int(args[0]), args[1], float(args[2]))
        sys.exit(0 if all(results) else 1)
    elif cmd == "probe":
        cmd_probe(int(args[0]), args[1], int(args[2]), float(args[3]))
        sys.exit(0 if all(results) else 1)
    else:
        sys.exit("unknown command " + cmd)


if __name__ == "__main__":
    main()
