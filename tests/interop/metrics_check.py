"""metrics_check.py: the client side of tests/interop/metrics.sh.

  workload URI_DISK URI_RO N M      N reads of M bytes and a known mix of other
                                     commands and refused requests (libnbd)
  check METRICS_FILE N M             parse a /metrics text with prometheus_client's
                                     parser and check it against that workload
  same_json STATS_FILE CONTROL_JSON  --stats FILE and `shunt stats --json` agree
  same_prom A B                      two Prometheus texts hold the same samples
                                     (but uptime)
  hostile HOST PORT                  garbage, huge headers, slow and non-reading
                                     HTTP clients; prints what the server answered
  label METRICS_FILE NAME            NAME is an export label value, as parsed

Each check prints "ok - what" or "not ok - what"; the exit status is 1 when
any failed.
"""
import json
import socket
import sys

failed = 0


def report(cond, what):
    global failed
    print(("ok - " if cond else "not ok - ") + what)
    if not cond:
        failed += 1


# The workload metrics.sh counts on: besides the reads, WRITES writes of
# 4 KiB, one flush, TRIMS trims of 8 KiB, one zero of 4 KiB, READ_ERRS reads
# out of range (EINVAL) and RO_WRITES writes to the read-only export (EPERM).
WRITES, TRIMS, READ_ERRS, RO_WRITES = 5, 2, 3, 2


def workload(uri, uri_ro, n, m):
    import nbd
    h = nbd.NBD()
    h.set_strict_mode(0)   # let out-of-range requests reach the server
    h.connect_uri(uri)
    size = h.get_size()
    for i in range(n):
        h.pread(m, (i * m) % (size - m))
    for i in range(WRITES):
        h.pwrite(b"w" * 4096, i * 4096)
    h.flush()
    for i in range(TRIMS):
        h.trim(8192, (1 << 20) + i * 8192)
    h.zero(4096, 2 << 20)
    for _ in range(READ_ERRS):
        try:
            h.pread(4096, size + 4096)
            report(False, "a read beyond the end fails")
        except nbd.Error:
            pass
    h.shutdown()
    r = nbd.NBD()
    r.set_strict_mode(0)
    r.connect_uri(uri_ro)
    for _ in range(RO_WRITES):
        try:
            r.pwrite(b"x" * 512, 0)
            report(False, "a write to the read-only export fails")
        except nbd.Error:
            pass
    r.shutdown()
    report(True, f"workload: {n} reads of {m} bytes and the rest, errors as expected")


def parse(path):
    """The families by name (the parser names a counter without its _total,
    so the gauge shunt_connections and the counter shunt_connections_total
    share a name: a list each)."""
    from prometheus_client.parser import text_string_to_metric_families
    fams = {}
    with open(path, encoding="utf-8") as f:
        for fam in text_string_to_metric_families(f.read()):
            fams.setdefault(fam.name, []).append(fam)
    return fams


def samples(fams, family, name=None, **labels):
    return [s for fam in fams.get(family, []) for s in fam.samples if (name is None or s.name == name)
            and all(s.labels.get(k) == v for k, v in labels.items())]


def ftype(fams, family, name):
    return [f.type for f in fams.get(family, []) if any(s.name == name for s in f.samples)]


def value(fams, family, name=None, **labels):
    s = samples(fams, family, name, **labels)
    return s[0].value if len(s) == 1 else None


def check(path, n, m):
    fams = parse(path)
    # prometheus_client names counter families without _total.
    req = lambda cmd, ex="disk": value(fams, "shunt_requests", "shunt_requests_total", export=ex, command=cmd)
    byt = lambda cmd, ex="disk": value(fams, "shunt_request_bytes", "shunt_request_bytes_total", export=ex, command=cmd)
    err = lambda cmd, e, ex="disk": value(fams, "shunt_request_errors", "shunt_request_errors_total",
                                          export=ex, command=cmd, errno=e)
    report(ftype(fams, "shunt_requests", "shunt_requests_total") == ["counter"]
           and ftype(fams, "shunt_request_duration_seconds", "shunt_request_duration_seconds_count") == ["histogram"]
           and ftype(fams, "shunt_connections", "shunt_connections") == ["gauge"]
           and ftype(fams, "shunt_connections", "shunt_connections_total") == ["counter"],
           "metric types: counters, histogram, gauge")
    report(req("read") == n + READ_ERRS, f"read requests: {req('read')} == {n} + {READ_ERRS} refused")
    report(byt("read") == n * m, f"read bytes: {byt('read')} == {n} x {m}")
    report(err("read", "EINVAL") == READ_ERRS, f"read errors EINVAL: {err('read', 'EINVAL')} == {READ_ERRS}")
    report(req("write") == WRITES and byt("write") == WRITES * 4096, f"writes: {req('write')}, {byt('write')} bytes")
    report(req("flush") == 1 and req("trim") == TRIMS and byt("trim") == TRIMS * 8192
           and req("zero") == 1 and byt("zero") == 4096, "flush, trims and zero counted with their ranges")
    report(req("block-status") == 0 and req("cache") == 0, "block-status and cache: none")
    report(req("write", "ro") == RO_WRITES and err("write", "EPERM", "ro") == RO_WRITES
           and byt("write", "ro") == 0, "writes to the read-only export: EPERM, no bytes")
    report(not samples(fams, "shunt_request_errors", export="disk", command="write"), "no write errors on disk")
    # Histograms: cumulative, +Inf == _count == requests, one series per export and command.
    good = True
    for ex in ("disk", "ro"):
        for cmd in ("read", "write", "flush", "trim", "zero", "block-status", "cache"):
            b = samples(fams, "shunt_request_duration_seconds", "shunt_request_duration_seconds_bucket",
                        export=ex, command=cmd)
            les = [float(s.labels["le"]) for s in b]
            counts = [s.value for s in b]
            cnt = value(fams, "shunt_request_duration_seconds", "shunt_request_duration_seconds_count",
                        export=ex, command=cmd)
            sm = value(fams, "shunt_request_duration_seconds", "shunt_request_duration_seconds_sum",
                       export=ex, command=cmd)
            ok_ = (les == sorted(les) and les[-1] == float("inf") and counts == sorted(counts)
                   and counts[-1] == cnt == req(cmd, ex) and sm is not None and sm >= 0
                   and (cnt == 0 or sm > 0))
            if not ok_:
                print(f"# histogram {ex}/{cmd}: le={les} counts={counts} count={cnt} sum={sm}")
            good &= ok_
    report(good, "latency histograms: cumulative buckets, +Inf == _count == requests, a sum")
    bi = samples(fams, "shunt_build_info")
    report(len(bi) == 1 and bi[0].labels.get("version") and bi[0].value == 1, "shunt_build_info{version=...} 1")
    report((value(fams, "shunt_uptime_seconds") or 0) > 0, "uptime")
    report(value(fams, "shunt_connections", "shunt_connections") == 0, "no connection open now")
    report(value(fams, "shunt_connections", "shunt_connections_total") == 2, "connections served: 2")
    pb = value(fams, "shunt_payload_bytes", "shunt_payload_bytes_total", export="disk", direction="read")
    report(pb == n * m, f"data-path counter: payload bytes read {pb} == {n} x {m}")
    for fam in ("shunt_datapath_bytes", "shunt_server_copied_bytes", "shunt_chunks", "shunt_pool_hits",
                "shunt_range_lock_waits", "shunt_phase_seconds", "shunt_auto_choice_requests",
                "shunt_auto_cache_misses"):
        if fam not in fams:
            report(False, f"data-path family {fam} present")
            break
    else:
        report(True, "data-path counter families present")


def same_json(a, b):
    with open(a) as f:
        x = json.load(f)
    with open(b) as f:
        y = json.load(f)
    report(x["exports"] == y["exports"], "shunt stats --json: the same exports as --stats FILE")
    report(x["connections"] == y["connections"] and x["version"] == y["version"],
           "shunt stats --json: the same connections and version")
    cmds = x["exports"][0]["commands"]
    report(set(cmds) == {"read", "write", "flush", "trim", "zero", "block-status", "cache", "other"}
           and all(k in cmds["read"] for k in ("count", "bytes", "errors", "latency_p50_us", "latency_p99_us",
                                                "latency_p999_us", "latency_log2_us")),
           "per-command figures with p50/p99/p99.9")
    r = cmds["read"]
    report(r["latency_p50_us"] <= r["latency_p99_us"] <= r["latency_p999_us"] and r["latency_p50_us"] > 0
           and sum(r["latency_log2_us"]) == r["count"], "percentiles ordered; buckets add up to the count")


def same_prom(a, b):
    fa, fb = parse(a), parse(b)
    key = lambda s: (s.name, tuple(sorted(s.labels.items())))
    sa = {key(s): s.value for fs in fa.values() for f in fs for s in f.samples if f.name != "shunt_uptime_seconds"}
    sb = {key(s): s.value for fs in fb.values() for f in fs for s in f.samples if f.name != "shunt_uptime_seconds"}
    report(sa == sb and len(sa) > 100, f"shunt stats --prometheus: the same {len(sa)} samples as GET /metrics")


def exchange(host, port, data, read=True):
    s = socket.create_connection((host, port), timeout=20)
    try:
        s.sendall(data)
    except OSError:
        pass   # the server may close before taking everything
    if not read:
        return s
    out = b""
    try:
        while True:
            b = s.recv(65536)
            if not b:
                break
            out += b
    except OSError:
        pass
    s.close()
    return out


def hostile(host, port):
    port = int(port)
    out = exchange(host, port, b"\x16\x03\x01garbage\x00\xff\r\n\r\n")
    report(out == b"" or out.startswith(b"HTTP/1.1 400"), f"garbage: closed or 400 ({out[:12]!r})")
    out = exchange(host, port, b"NOT HTTP AT ALL\r\n\r\n")
    report(out.startswith(b"HTTP/1.1 400"), "a request line that is not HTTP: 400")
    out = exchange(host, port, b"GET /metrics HTTP/1.1\r\n" + b"X-Big: " + b"a" * (1 << 20) + b"\r\n\r\n")
    report(out.startswith(b"HTTP/1.1 431"), f"a megabyte of headers: 431 ({out[:12]!r})")
    out = exchange(host, port, b"POST /metrics HTTP/1.1\r\nContent-Length: 3\r\n\r\nabc")
    report(out.startswith(b"HTTP/1.1 405"), "POST: 405")
    out = exchange(host, port, b"GET /secret HTTP/1.1\r\n\r\n")
    report(out.startswith(b"HTTP/1.1 404"), "another path: 404")
    out = exchange(host, port, b"HEAD /metrics HTTP/1.0\r\n\r\n")
    report(out.startswith(b"HTTP/1.1 200") and out.endswith(b"\r\n\r\n"), "HEAD: 200 without a body")
    # Slow clients that never finish their request, and clients that never
    # read their answer: more of both than the endpoint keeps at once.
    held = []
    for _ in range(40):
        s = socket.create_connection((host, port), timeout=20)
        s.sendall(b"GET /metrics HTTP/1.1\r\nX-Slow: ")
        held.append(s)
    for _ in range(20):
        s = socket.create_connection((host, port), timeout=20)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        s.sendall(b"GET /metrics HTTP/1.1\r\n\r\n")
        held.append(s)
    print(f"holding {len(held)} hostile connections")
    return held


def label(path, name):
    fams = parse(path)
    got = {s.labels.get("export") for s in samples(fams, "shunt_requests")}
    report(name in got, f"an export name with quotes and backslashes survives as a label: {sorted(got)!r}")


def main():
    cmd, args = sys.argv[1], sys.argv[2:]
    if cmd == "workload":
        workload(args[0], args[1], int(args[2]), int(args[3]))
    elif cmd == "check":
        check(args[0], int(args[1]), int(args[2]))
    elif cmd == "same_json":
        same_json(args[0], args[1])
    elif cmd == "same_prom":
        same_prom(args[0], args[1])
    elif cmd == "label":
        label(args[0], args[1])
    elif cmd == "hostile":
        held = hostile(args[0], args[1])
        # Keep them open until told (metrics.sh checks the server meanwhile).
        print("ready", flush=True)
        sys.stdin.read()
        for s in held:
            s.close()
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
