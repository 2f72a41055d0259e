#!/usr/bin/python3
# tests/tools/disconnect_client.py: hang up on the server at awkward moments, many times.
# Each scenario opens one connection and drops it mid-handshake, mid-request or
# mid-payload (with a FIN or an RST). Used by tests/interop/faults_disconnect.sh;
# prints one line per scenario with how often it ran, exits 1 if the server stopped
# accepting connections. Writes stay below --limit bytes of the export.
import argparse
import random
import socket
import struct
import sys
import threading
import time

import nbdraw as R


def close(s, rng):
    if rng.random() < 0.5:
        R.hard_close(s)
    else:
        s.close()


def greeting_only(p, rng, a):
    s = R.connect(p)
    if rng.random() < 0.5:
        R.recv_exact(s, rng.randint(1, 17))
    close(s, rng)


def half_client_flags(p, rng, a):
    s = R.connect(p)
    R.read_greeting(s)
    s.sendall(b"\0\0")
    close(s, rng)


def half_option_header(p, rng, a):
    s = R.connect(p)
    R.read_greeting(s)
    R.send_client_flags(s)
    s.sendall(struct.pack(">QII", R.NBD_NEW_VERSION, R.NBD_OPT_GO, 64)[:rng.randint(1, 15)])
    close(s, rng)


def half_option_payload(p, rng, a):
    s = R.connect(p)
    R.read_greeting(s)
    R.send_client_flags(s)
    payload = R.go_payload(b"disk" * 16)
    s.sendall(struct.pack(">QII", R.NBD_NEW_VERSION, R.NBD_OPT_GO, len(payload)))
    s.sendall(payload[:rng.randint(0, len(payload) - 1)])
    close(s, rng)


def option_unread(p, rng, a):
    s = R.connect(p)
    R.read_greeting(s)
    R.send_client_flags(s)
    R.send_option(s, rng.choice([R.NBD_OPT_LIST, R.NBD_OPT_GO, R.NBD_OPT_INFO]),
                  b"" if rng.random() < 0.3 else R.go_payload(a.name))
    close(s, rng)


def half_request_header(p, rng, a):
    s, size, _ = R.handshake(p, a.name)
    s.sendall(R.request(R.NBD_CMD_READ, 1, 0, 4096)[:rng.randint(1, 27)])
    close(s, rng)


def reads_unread(p, rng, a):
    # Replies the client never reads: the server's sends fail with EPIPE/ECONNRESET.
    s, size, _ = R.handshake(p, a.name)
    n = rng.randint(1, 16)
    length = min(rng.choice([4096, 65536, 1 << 20]), size)
    s.sendall(b"".join(R.request(R.NBD_CMD_READ, i, rng.randrange(0, size - length + 1) & ~4095, length)
                       for i in range(n)))
    if rng.random() < 0.5:
        s.recv(rng.randint(1, 100000))
    close(s, rng)


def structured_reads_unread(p, rng, a):
    # The same with structured replies (data and hole chunks), or extended headers.
    ext = rng.random() < 0.5
    try:
        s, size, _ = R.handshake(p, a.name, structured=True, extended=ext)
    except ValueError:
        if not ext:
            raise
        s, size, _ = R.handshake(p, a.name, structured=True)
        ext = False
    req = R.request_ext if ext else R.request
    n = rng.randint(1, 16)
    length = min(rng.choice([4096, 65536, 1 << 20]), size)
    s.sendall(b"".join(req(R.NBD_CMD_READ, i, rng.randrange(0, size - length + 1) & ~4095, length)
                       for i in range(n)))
    if rng.random() < 0.5:
        s.recv(rng.randint(1, 100000))
    close(s, rng)


def half_write_payload(p, rng, a):
    s, size, _ = R.handshake(p, a.name)
    length = rng.choice([4096, 65536, 1 << 20])
    off = rng.randrange(0, a.limit - length + 1) & ~4095
    s.sendall(R.request(R.NBD_CMD_WRITE, 7, off, length, rng.choice([0, R.NBD_CMD_FLAG_FUA])))
    s.sendall(b"\xa5" * rng.randint(0, length - 1))
    close(s, rng)


def write_then_flush_unread(p, rng, a):
    s, size, _ = R.handshake(p, a.name)
    off = rng.randrange(0, a.limit - 65536 + 1) & ~4095
    s.sendall(R.request(R.NBD_CMD_WRITE, 1, off, 65536) + b"\x5a" * 65536 +
              R.request(R.NBD_CMD_FLUSH, 2, 0, 0))
    close(s, rng)


def clean_disc(p, rng, a):
    # Control: a well-behaved client that reads its reply and says NBD_CMD_DISC.
    s, size, _ = R.handshake(p, a.name)
    s.sendall(R.request(R.NBD_CMD_READ, 9, 0, 4096))
    err, handle = R.read_simple_reply(s)
    if err != 0 or handle != 9:
        raise RuntimeError("control read failed: error %d handle %d" % (err, handle))
    R.recv_exact(s, 4096)
    s.sendall(R.request(R.NBD_CMD_DISC, 10, 0, 0))
    s.close()


SCENARIOS = [greeting_only, half_client_flags, half_option_header, half_option_payload,
             option_unread, half_request_header, reads_unread, structured_reads_unread,
             half_write_payload,
             write_then_flush_unread, clean_disc]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("port", type=int)
    ap.add_argument("--name", default="disk")
    ap.add_argument("--rounds", type=int, default=20)
    ap.add_argument("--threads", type=int, default=4)
    ap.add_argument("--limit", type=int, required=True, help="writes stay below this offset")
    ap.add_argument("--seconds", type=float, default=60)
    a = ap.parse_args()
    a.name = a.name.encode()
    counts = {f.__name__: 0 for f in SCENARIOS}
    refused = []
    lock = threading.Lock()
    deadline = time.monotonic() + a.seconds

    def worker(seed):
        rng = random.Random(seed)
        for _ in range(a.rounds):
            for f in rng.sample(SCENARIOS, len(SCENARIOS)):
                if time.monotonic() > deadline:
                    return
                try:
                    f(a.port, rng, a)
                except (R.Closed, ConnectionError, BrokenPipeError, socket.timeout) as e:
                    # The server may legitimately close first, except on connect or
                    # in the control scenario.
                    if isinstance(e, ConnectionRefusedError) or f is clean_disc:
                        with lock:
                            refused.append("%s: %s" % (f.__name__, e))
                        return
                except Exception as e:  # noqa: BLE001 - report and stop this worker
                    # (a ValueError here is a refused handshake or a malformed reply)
                    with lock:
                        refused.append("%s: %r" % (f.__name__, e))
                    return
                with lock:
                    counts[f.__name__] += 1

    ts = [threading.Thread(target=worker, args=(i,)) for i in range(a.threads)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    for k, v in counts.items():
        print("%-24s %d" % (k, v))
    print("total %d connections" % sum(counts.values()))
    for r in refused:
        print("FAILED %s" % r)
    return 1 if refused else 0


if __name__ == "__main__":
    sys.exit(main())
