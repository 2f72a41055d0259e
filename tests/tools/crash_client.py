#!/usr/bin/python3
# tests/tools/crash_client.py: the client side of tests/interop/durability_crash.sh.
# `init` fills an image with generation-0 blocks; `write` writes verified blocks over
# several connections (FUA, or write then FLUSH) and journals what the server
# acknowledged; `verify` reads the export back and checks the journal's promises.
#
# Every 4 KiB block carries a pattern derived from (block offset, generation), so a
# block read back names the write that produced it. Journal lines, in order:
#   W gen off nblocks fua   a write about to be sent
#   A gen                   that write was acknowledged (durable if it was FUA)
#   S fid                   a FLUSH about to be sent
#   F fid                   that FLUSH was acknowledged: every write whose A line
#                           precedes the matching S line (and follows the last R line)
#                           is durable (CAN_MULTI_CONN lets the flush travel on any connection)
#   R                       a new writer starts against a restarted server: writes
#                           acknowledged before it and never flushed may be lost, and
#                           no later FLUSH covers them
import argparse
import random
import struct
import sys
import threading
import time

import nbd

BS = 4096


def pattern(off, gen):
    return struct.pack("<4sIQ", b"SHNT", gen, off) * (BS // 16)


def decode(block, off):
    """Return the generation a block holds, or None if it is no valid pattern for off."""
    tag, gen, boff = struct.unpack_from("<4sIQ", block)
    if tag != b"SHNT" or boff != off or block != pattern(off, gen):
        return None
    return gen


def cmd_init(a):
    with open(a.image, "r+b") as f:
        for b in range(a.blocks):
            f.write(pattern(b * BS, 0))


class Journal:
    def __init__(self, path):
        self.f = open(path, "a", buffering=1)
        self.lock = threading.Lock()

    def log(self, line):
        with self.lock:
            self.f.write(line + "\n")


def read_journal(path, all_acked=False):
    """Return (writes {gen: (off, n, fua)}, durable gens, max gen, max flush id).
    With all_acked, every acknowledged write counts as durable (after a clean stop)."""
    writes, acked, durable = {}, [], set()
    flush_at = {}
    maxfid = 0
    with open(path) as f:
        lines = f.read().split("\n")
    # A line cut short by the writer's death is ignored; it is the last one.
    for line in lines:
        p = line.split()
        if not p:
            continue
        if p[0] == "W" and len(p) == 5:
            writes[int(p[1])] = (int(p[2]), int(p[3]), p[4] == "1")
        elif p[0] == "A" and len(p) == 2:
            g = int(p[1])
            acked.append(g)
            if writes[g][2]:
                durable.add(g)
        elif p[0] == "R":
            acked = []
        elif p[0] == "S" and len(p) == 2:
            flush_at[int(p[1])] = len(acked)
            maxfid = max(maxfid, int(p[1]))
        elif p[0] == "F" and len(p) == 2:
            durable.update(acked[:flush_at[int(p[1])]])
    if all_acked:
        durable.update(acked)
    return writes, durable, max(writes, default=0), maxfid


def connect(uri):
    h = nbd.NBD()
    h.connect_uri(uri)
    return h


def cmd_write(a):
    writes, _, gen, fid = read_journal(a.journal) if a.resume else ({}, set(), 0, 0)
    j = Journal(a.journal)
    j.log("R")
    state = {"gen": gen, "fid": fid, "errors": 0, "ops": 0}
    lock = threading.Lock()
    handles = [connect(a.uri) for _ in range(a.conns)]
    multi = all(h.can_multi_conn() for h in handles)
    if a.ready:
        open(a.ready, "w").close()
    rng = random.Random(a.seed)
    stripe = 64  # blocks; stripe s belongs to thread s % conns, so writes never overlap
    nstripes = a.write_blocks // stripe

    def next_id(key):
        with lock:
            state[key] += 1
            return state[key]

    def worker(i):
        h = handles[i]
        r = random.Random(rng.random())
        mine = [s for s in range(nstripes) if s % a.conns == i]
        pending = 0
        try:
            while True:
                s = r.choice(mine)
                n = r.randint(1, 8)
                b = s * stripe + r.randrange(stripe - n + 1)
                g = next_id("gen")
                # Even connections mostly use FUA, odd ones mostly write then FLUSH, so
                # both kinds of promise are in flight when the crash comes.
                fua = r.random() < (0.8 if i % 2 == 0 else 0.1)
                j.log("W %d %d %d %d" % (g, b * BS, n, int(fua)))
                buf = b"".join(pattern((b + k) * BS, g) for k in range(n))
                h.pwrite(buf, b * BS, nbd.CMD_FLAG_FUA if fua else 0)
                j.log("A %d" % g)
                with lock:
                    state["ops"] += 1
                pending += not fua
                # Pace the stream (about 1000 writes/s per connection): the kill
                # lands among in-flight requests just as well, and the journal stays small.
                time.sleep(r.random() * 0.002)
                if pending and r.random() < 0.25:
                    f = next_id("fid")
                    fh = handles[r.randrange(a.conns)] if multi else h
                    j.log("S %d" % f)
                    fh.flush()
                    j.log("F %d" % f)
                    pending = 0
        except nbd.Error:
            with lock:
                state["errors"] += 1

    ts = [threading.Thread(target=worker, args=(i,), daemon=True) for i in range(a.conns)]
    for t in ts:
        t.start()
    for t in ts:
        t.join(a.max_seconds)
    print("writer: %d writes acknowledged, multi-conn %s" % (state["ops"], multi))


def cmd_verify(a):
    writes, durable, _, _ = read_journal(a.journal, a.all_acked)
    by_block = {}
    for g in sorted(writes):
        off, n, _ = writes[g]
        for k in range(n):
            by_block.setdefault(off // BS + k, []).append(g)
    h = connect(a.uri)
    bad = 0
    nd = 0
    chunk = 256
    for base in range(0, a.blocks, chunk):
        cnt = min(chunk, a.blocks - base)
        data = h.pread(cnt * BS, base * BS)
        for k in range(cnt):
            b = base + k
            got = decode(data[k * BS:(k + 1) * BS], b * BS)
            gens = by_block.get(b, [])
            # Writes to one block are strictly sequential (one thread owns it), so the
            # newest durable generation, or anything written after it, is allowed.
            dur = [g for g in gens if g in durable]
            if dur:
                nd += 1
                allowed = set(g for g in gens if g >= dur[-1])
            else:
                allowed = {0} | set(gens)
            if got not in allowed:
                bad += 1
                if bad <= 10:
                    what = "garbage" if got is None else "generation %d" % got
                    print("block %d (offset %d): holds %s, allowed %s" %
                          (b, b * BS, what, sorted(allowed)[:8]))
    print("verify: %d blocks, %d with a durable write, %d writes journaled, %d durable, %d bad" %
          (a.blocks, nd, len(writes), len(durable), bad))
    return 1 if bad else 0


def main():
    p = argparse.ArgumentParser()
    sub = p.add_subparsers(dest="cmd", required=True)
    i = sub.add_parser("init")
    i.add_argument("image")
    i.add_argument("--blocks", type=int, required=True)
    w = sub.add_parser("write")
    w.add_argument("uri")
    w.add_argument("--journal", required=True)
    w.add_argument("--write-blocks", type=int, required=True)
    w.add_argument("--conns", type=int, default=2)
    w.add_argument("--seed", type=int, default=1)
    w.add_argument("--max-seconds", type=float, default=30)
    w.add_argument("--resume", action="store_true")
    w.add_argument("--ready", help="file to create once connected")
    v = sub.add_parser("verify")
    v.add_argument("uri")
    v.add_argument("--journal", required=True)
    v.add_argument("--blocks", type=int, required=True)
    v.add_argument("--all-acked", action="store_true")
    a = p.parse_args()
    return {"init": cmd_init, "write": cmd_write, "verify": cmd_verify}[a.cmd](a) or 0


if __name__ == "__main__":
    sys.exit(main())
