#!/usr/bin/python3
"""nbdinfo_check.py: checks nbdinfo's JSON output for nbdinfo.sh.

  list LIST.json NAME:SIZE:DESC:rw|ro...   every export listed, nothing else
  map MAP.json FILE "OFF:LEN ..."          hole/data layout equals the file's
Prints "ok - x" / "not ok - x" lines (tests/lib.sh tap_relay renumbers them)."""
import json
import os
import sys


def report(cond, what, detail=""):
    print(("ok - " if cond else "not ok - ") + what)
    if not cond and detail:
        for line in str(detail).splitlines():
            print("#   " + line)


def check_list(path, specs):
    doc = json.load(open(path))
    exports = {e["export-name"]: e for e in doc.get("exports", [])}
    want = [s.split(":") for s in specs]
    report(sorted(exports) == sorted(w[0] for w in want),
           "--list names exactly the exports served",
           "got %s" % sorted(exports))
    for name, size, desc, mode in want:
        e = exports.get(name, {})
        report(e.get("export-size") == int(size), "%s: size %s" % (name, size),
               "got %s" % e.get("export-size"))
        report(e.get("description", "") == desc,
               "%s: description %r" % (name, desc), "got %r" % e.get("description"))
        report(e.get("is_read_only") == (mode == "ro"), "%s: read-only is %s" % (name, mode == "ro"))
        report("base:allocation" in e.get("contexts", []), "%s: offers base:allocation" % name)
        sizes = (e.get("block_size_minimum"), e.get("block_size_preferred"),
                 e.get("block_size_maximum"))
        report(sizes == (512, 4096, 32 << 20),
               "%s: block sizes 512/4096/32M advertised" % name, "got %s" % (sizes,))
    report(doc.get("structured") is True, "--list: structured replies negotiated")


def file_layout(path):
    """[(offset, length, is_hole)] from SEEK_DATA/SEEK_HOLE, adjacent runs merged."""
    size = os.path.getsize(path)
    out, off = [], 0
    with open(path, "rb") as f:
        fd = f.fileno()
        while off < size:
            try:
                data = os.lseek(fd, off, os.SEEK_DATA)
            except OSError:
                data = size
            if data > off:
                out.append((off, data - off, True))
            if data >= size:
                break
            hole = os.lseek(fd, data, os.SEEK_HOLE)
            out.append((data, hole - data, False))
            off = hole
    return out


def merge(runs):
    out = []
    for off, length, hole in runs:
        if out and out[-1][2] == hole and out[-1][0] + out[-1][1] == off:
            out[-1] = (out[-1][0], out[-1][1] + length, hole)
        else:
            out.append((off, length, hole))
    return out


def check_map(path, image, layout):
    size = os.path.getsize(image)
    want, off = [], 0
    for spec in layout.split():
        o, n = (int(x) << 10 for x in spec.split(":"))
        if o > off:
            want.append((off, o - off, True))
        want.append((o, n, False))
        off = o + n
    if off < size:
        want.append((off, size - off, True))
    want = merge(want)
    real = file_layout(image)
    report(real == want, "the file system keeps the intended data/hole layout",
           "SEEK_DATA/SEEK_HOLE: %s\nintended: %s" % (real, want))
    extents = json.load(open(path))
    got = merge([(e["offset"], e["length"], bool(e["type"] & 1)) for e in extents])
    report(sum(e["length"] for e in extents) == size and got and got[0][0] == 0,
           "--map covers the whole export contiguously")
    report(got == real, "--map data/hole layout equals the file's (%d runs)" % len(real),
           "map: %s\nfile: %s" % (got, real))
    zero_mismatch = [e for e in extents if (e["type"] & 1) and not (e["type"] & 2)]
    report(not zero_mismatch, "every hole extent also reads as zero",
           "hole without zero flag: %s" % zero_mismatch)


if __name__ == "__main__":
    if sys.argv[1] == "list":
        check_list(sys.argv[2], sys.argv[3:])
    elif sys.argv[1] == "map":
        check_map(sys.argv[2], sys.argv[3], sys.argv[4])
    else:
        sys.exit("usage: nbdinfo_check.py list|map ...")
