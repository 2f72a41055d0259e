#!/usr/bin/python3
# tests/tools/soak_client.py: one process of tests/interop/soak.sh's load.
# `run` opens --conns connections (one thread each) and, for --seconds, does random
# verified writes (some FUA), reads, flushes and write-zeroes, each connection in its
# own region of the export; then it re-reads its regions and saves what they must hold.
# `verify` reads every saved region back over one fresh connection.
# Every 4 KiB block carries (connection, sequence, offset), so a wrong block says whose
# write it is; a block never written (or zeroed) must read as zeroes.
import argparse
import array
import json
import os
import random
import struct
import sys
import threading
import time

import nbd

BS = 4096
ZERO = bytes(BS)


def block(conn, seq, off):
    return struct.pack("<4sIIIQQ", b"SOAK", conn, seq, 0, off, 0) * (BS // 32)


def expected(conn, seq, off):
    return ZERO if seq < 0 else block(conn, seq, off)


def describe(data):
    tag, conn, seq, _, off, _ = struct.unpack_from("<4sIIIQQ", data)
    if data == ZERO:
        return "zeroes"
    if tag != b"SOAK":
        return "garbage"
    return "conn %d seq %d offset %d" % (conn, seq, off)


def cmd_run(a):
    handles = []
    for _ in range(a.conns):
        h = nbd.NBD()
        h.connect_uri(a.uri)
        handles.append(h)
    if a.ready:
        open(a.ready, "w").close()
    nblk = a.region // BS
    stats = {"ops": 0, "bytes": 0, "verify_errors": 0, "nbd_errors": 0}
    lock = threading.Lock()
    regions = {}
    messages = []
    start = threading.Barrier(a.conns)

    def worker(t):
        conn = a.index * a.conns + t
        h = handles[t]
        base = conn * a.region
        seqs = array.array("l", [-1] * nblk)
        r = random.Random(a.seed * 1000 + conn)
        can_zero = h.can_zero()
        seq = 0
        ops = nbytes = verr = nerr = 0

        def check(data, b0):
            nonlocal verr
            for k in range(len(data) // BS):
                want = expected(conn, seqs[b0 + k], base + (b0 + k) * BS)
                got = data[k * BS:(k + 1) * BS]
                if got != want:
                    verr += 1
                    if verr <= 3:
                        with lock:
                            messages.append("conn %d block %d: want %s, got %s" %
                                            (conn, b0 + k, describe(want), describe(got)))

        start.wait()
        deadline = time.monotonic() + a.seconds
        try:
            while time.monotonic() < deadline:
                n = r.randint(1, 16)
                b0 = r.randrange(nblk - n + 1)
                off = base + b0 * BS
                x = r.random()
                if x < 0.45:
                    seq += 1
                    data = b"".join(block(conn, seq, off + k * BS) for k in range(n))
                    h.pwrite(data, off, nbd.CMD_FLAG_FUA if r.random() < 0.2 else 0)
                    for k in range(n):
                        seqs[b0 + k] = seq
                    nbytes += n * BS
                elif x < 0.92:
                    check(h.pread(n * BS, off), b0)
                    nbytes += n * BS
                elif x < 0.96 or not can_zero:
                    h.flush()
                else:
                    h.zero(n * BS, off)
                    for k in range(n):
                        seqs[b0 + k] = -1
                ops += 1
            for b in range(0, nblk, 64):
                check(h.pread(min(64, nblk - b) * BS, base + b * BS), b)
            h.flush()
        except nbd.Error as e:
            nerr += 1
            with lock:
                messages.append("conn %d: %s" % (conn, e.string))
        with lock:
            stats["ops"] += ops
            stats["bytes"] += nbytes
            stats["verify_errors"] += verr
            stats["nbd_errors"] += nerr
            regions[conn] = seqs.tolist()

    ts = [threading.Thread(target=worker, args=(t,)) for t in range(a.conns)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    for h in handles:
        try:
            h.shutdown()
        except nbd.Error:
            pass
    for m in messages[:10]:
        print(m)
    with open(a.state, "w") as f:
        json.dump({"region": a.region, "regions": regions}, f)
    print(json.dumps(stats))
    return 0 if stats["verify_errors"] == 0 and stats["nbd_errors"] == 0 else 1


def cmd_verify(a):
    h = nbd.NBD()
    h.connect_uri(a.uri)
    bad = blocks = 0
    for path in a.states:
        with open(path) as f:
            st = json.load(f)
        region = st["region"]
        for conn, seqs in st["regions"].items():
            conn = int(conn)
            base = conn * region
            data = h.pread(region, base)
            for k, seq in enumerate(seqs):
                blocks += 1
                got = data[k * BS:(k + 1) * BS]
                want = expected(conn, seq, base + k * BS)
                if got != want:
                    bad += 1
                    if bad <= 5:
                        print("conn %d block %d: want %s, got %s" %
                              (conn, k, describe(want), describe(got)))
    h.shutdown()
    print("verify: %d blocks over a fresh connection, %d bad" % (blocks, bad))
    return 1 if bad or not blocks else 0


def main():
    p = argparse.ArgumentParser()
    sub = p.add_subparsers(dest="cmd", required=True)
    r = sub.add_parser("run")
    r.add_argument("uri")
    r.add_argument("--index", type=int, required=True)
    r.add_argument("--conns", type=int, default=16)
    r.add_argument("--region", type=int, default=1 << 20)
    r.add_argument("--seconds", type=float, default=10)
    r.add_argument("--seed", type=int, default=1)
    r.add_argument("--state", required=True)
    r.add_argument("--ready")
    v = sub.add_parser("verify")
    v.add_argument("uri")
    v.add_argument("states", nargs="+")
    a = p.parse_args()
    return cmd_run(a) if a.cmd == "run" else cmd_verify(a)


if __name__ == "__main__":
    sys.exit(main())
