"""report.py: bench/compare's output: markdown tables (one per workload and experiment) and JSON
lines (one object per measurement), built from the list of result records."""
import json

from . import fio, rounds


def _f(v, digits=2):
    if v is None:
        return "–"
    if isinstance(v, float):
        return f"{v:.{digits}f}"
    return str(v)


def _desc(r):
    w = fio.WORKLOADS.get(r.get("workload") or "")
    return w[4] if w else (r.get("workload") or "")


def _cache(r):
    if r.get("image_cache_mib") is None:
        return "–"
    return f"{_f(r['image_cache_mib'], 0)} / {_f(r.get('page_cache_growth_mib'), 0)}"


def _table(head, rows):
    out = ["| " + " | ".join(head) + " |", "|" + "|".join("---" for _ in head) + "|"]
    out += ["| " + " | ".join(str(c) for c in r) + " |" for r in rows]
    return "\n".join(out) + "\n"


def _by(records, **kv):
    return [r for r in records if all(r.get(k) == v for k, v in kv.items())]


def _na_rows(records, ncols, **kv):
    return [[r["server"], r["variant"], "n/a"] + [""] * (ncols - 3)
            for r in _by(records, kind="server", status="n/a", **kv)]


def _speed_key(workload):
    """IOPS for the 4 KiB workloads, MB/s for the others (as the log lines show them)."""
    return "iops" if fio.WORKLOADS[workload][1] < (1 << 20) else "mbps"


def _per_round(per_round, key, **match):
    """Each round's figure, in round order, "err" for a failed round."""
    vals = rounds.values(per_round, key, **match)
    return " / ".join("err" if vals[k] is None else _f(vals[k], 0) for k in sorted(vals))


def markdown(records):
    all_records = records
    records, per_round = rounds.split(records)
    meta = next((r for r in records if r["kind"] == "meta"), {})
    end = next((r for r in records if r["kind"] == "end"), {})
    md = ["# bench/compare results\n",
          f"Run {meta.get('run_id', '?')} on {meta.get('host', '?')} "
          f"({meta.get('cpus', '?')} CPUs, kernel {meta.get('kernel', '?')}); image "
          f"{meta.get('image_mib', '?')} MiB; runtime {meta.get('runtime_s', '?')} s per run"
          f"{' (--quick)' if meta.get('quick') else ''}; load average at start "
          f"{meta.get('loadavg')}, at end {end.get('loadavg')}; took {end.get('elapsed_s')} s"
          f"{'; INTERRUPTED: ' + end['interrupted'] if end.get('interrupted') else ''}.\n"]
    if per_round:
        cold = any(r.get("cache") == "cold" for r in per_round)
        md.append(f"--repeat {meta.get('repeat')}: every hot figure (and nbdkit null's) "
                  f"{'and every cold one ' if cold else ''}is the "
                  f"median over {meta.get('repeat')} rounds, each figure its own median; the "
                  "per-round column lists each round's figure in round order. Each round "
                  "measured every server once, the order rotated by one server per round. "
                  f"{'' if cold else 'Cold runs, '}Interference, overlap and the other "
                  "references ran once.\n")

    refs = _by(records, kind="reference")
    if refs:
        md.append("## References (same run)\n")
        rows = []
        for r in refs:
            if r.get("status") != "ok":
                rows.append([f"{r['name']} {_desc(r)}", "error", "", "", ""])
            elif r["name"] == "iperf3-loopback":
                rows.append(["iperf3 -Z, loopback", _f(r["mbps"], 0), "",
                             f"sender {_f(r['sender_cpu_s_per_gib'])}, receiver "
                             f"{_f(r['receiver_cpu_s_per_gib'])}",
                             f"{_f(r['machine_own_cpu_s_per_gib'])} / "
                             f"{_f(r['machine_cpu_s_per_gib'])}"])
            elif r["name"] == "null-server":
                each = ""
                if r.get("round") == "median":
                    key = _speed_key(r["workload"])
                    each = (f" (median of {r['rounds_ok']}/{r['rounds']} rounds: "
                            + _per_round(per_round, key, kind="reference",
                                         name="null-server", workload=r["workload"])
                            + (" IOPS)" if key == "iops" else " MB/s)"))
                rows.append([f"nbdkit null (no storage), {fio.WORKLOADS[r['workload']][4]}"
                             + each, _f(r["mbps"], 0), _f(r["iops"], 0),
                             f"server {_f(r['server_cpu_s_per_gib'])}",
                             f"{_f(r['machine_own_cpu_s_per_gib'])} / "
                             f"{_f(r['machine_cpu_s_per_gib'])}"])
            else:
                rows.append([f"local O_DIRECT, {fio.WORKLOADS[r['workload']][4]}",
                             _f(r["mbps"], 0), _f(r["iops"], 0), "",
                             f"{_f(r['machine_own_cpu_s_per_gib'])} / "
                             f"{_f(r['machine_cpu_s_per_gib'])}"])
        md.append(_table(["reference", "MB/s", "IOPS", "process CPU s/GiB",
                          "machine CPU s/GiB own / all"], rows))

    work = _by(records, kind="workload")
    rounds_col = bool(_by(per_round, kind="workload"))
    for w in fio.MAIN_WORKLOADS:
        rows = []
        for cache in ("hot", "cold"):
            for r in _by(work, workload=w, cache=cache):
                each = []
                if rounds_col:
                    each = [_per_round(per_round, _speed_key(w), kind="workload", workload=w,
                                       cache=cache, server=r["server"], variant=r["variant"])
                            or "–"]
                if r.get("status") != "ok":
                    rows.append([r["server"], r["variant"], cache, "error"] + [""] * 9 + each)
                    continue
                rows.append([r["server"], r["variant"], cache, _f(r["mbps"], 0),
                             _f(r["iops"], 0), _f(r["server_cpu_s_per_gib"]),
                             f"{_f(r['machine_own_cpu_s_per_gib'])} / "
                             f"{_f(r['machine_cpu_s_per_gib'])}",
                             _f(r["server_cpu_us_per_req"], 1),
                             _f(r.get("server_copies_per_byte")),
                             f"{_f(r['machine_own_cpu_us_per_req'], 1)} / "
                             f"{_f(r['machine_cpu_us_per_req'], 1)}",
                             f"{_f(_client_us_per_req(r), 1)} ({_f(_client_busy(r))})",
                             _f(r["lat_ms"], 3), _cache(r)] + each)
        if rows:
            head = ["server", "variant", "cache", "MB/s", "IOPS", "server CPU s/GiB",
                    "machine CPU s/GiB own / all", "server CPU µs/req", "server copies / byte",
                    "machine CPU µs/req own / all", "client CPU µs/req (busy)",
                    "lat ms (fio: mean, shunt bench: p50)",
                    "image in cache / page cache + (MiB)"]
            if rounds_col:
                head.append(("IOPS" if _speed_key(w) == "iops" else "MB/s") + " per round")
            md.append(f"## {fio.WORKLOADS[w][4]}\n")
            md.append(_table(head, rows + _na_rows(records, len(head))))

    cold = _by(records, kind="cold_read")
    if cold:
        md.append("## Cold reads (caches dropped; share of local O_DIRECT at the same size and "
                  "depth)\n")
        rows = []
        for r in cold:
            if r.get("status") != "ok":
                rows.append([r["server"], r["variant"], _desc(r), "error",
                             "", "", "", ""])
                continue
            rows.append([r["server"], r["variant"], _desc(r),
                         _f(r["mbps"], 0), _f(r.get("local_mbps"), 0),
                         _f(100 * r["share_of_local"], 0) + "%" if r.get("share_of_local")
                         else "–", _f(r.get("image_cache_mib"), 0),
                         _f(r["page_cache_growth_mib"], 0)])
        md.append(_table(["server", "variant", "workload", "MB/s", "local O_DIRECT MB/s",
                          "share", "image in cache MiB", "page cache +MiB"],
                         rows + _na_rows(records, 8)))

    inter = _by(records, kind="interference")
    if inter:
        md.append("## Interference (co-runner on CPU 0; server + client streaming hot 1 MiB "
                  "QD8 reads on CPU 1)\n")
        rows = []
        for r in inter:
            if r.get("status") != "ok":
                rows.append([r["server"], r["variant"], r["corunner"], "error", "", "", "", "", ""])
                continue
            rows.append([r["server"], r["variant"], r["corunner"],
                         f"{_f(r['alone'])} {r['unit']}", _f(r["beside"]),
                         f"{_f(r['slowdown_pct'], 1)} ± {_f(r['slowdown_spread_pct'], 1)}",
                         _f(r["served_gibps"]), _f(r["slowdown_pct_per_gibps"], 1),
                         _f(r.get("wall_slowdown_pct"), 1)])
        md.append(_table(["server", "variant", "co-runner", "alone", "beside", "slowdown %",
                          "served GiB/s", "slowdown % per GiB/s", "wall-clock slowdown %"],
                         rows + _na_rows(records, 9)))

    ov = _by(records, kind="overlap")
    lim = next((r for r in records if r["kind"] == "overlap_limits"), None)
    if lim and lim.get("status") != "ok":
        md.append("## Overlap (disk and network both throttled)\n")
        md.append(f"Not measured: {lim.get('reason', 'no reason recorded')}.\n")
        lim = None
    if lim:
        md.append("## Overlap (disk and network both throttled)\n")
        md.append(f"Limits measured in this run: disk (blkio throttle {lim['disk_bps'] / 1e6:.0f} "
                  f"MB/s, fio O_DIRECT on the loop device, before / after the servers) "
                  + ", ".join(f"{fio.WORKLOADS[w][4]}: {_f(v, 0)} / "
                              f"{_f(lim.get('disk_mbps_after', {}).get(w), 0)} MB/s"
                              for w, v in lim.get("disk_mbps_before", lim["disk_mbps"]).items())
                  + f"; network (tbf {lim['net_bps'] / 1e6:.0f} MB/s on the namespace's lo, "
                  f"iperf3 -Z, before / after): {_f(lim.get('net_mbps_before'), 0)} / "
                  f"{_f(lim.get('net_mbps_after'), 0)} MB/s. The shares use the higher "
                  "figures. Unthrottled, the same reads run at "
                  + ", ".join(f"{_f(v, 0)} MB/s ({fio.WORKLOADS[w][4]})"
                              for w, v in lim.get("disk_unthrottled_mbps", {}).items())
                  + ": the throttle grants 100 ms of budget at a time, so a server that reads, "
                  "then sends, without readahead, reads at that speed; the read-then-send model "
                  "column is 1 / (1/unthrottled + 1/net).\n")
        rows = []
        for r in ov:
            if r.get("status") != "ok":
                rows.append([r["server"], r["variant"], _desc(r), r.get("status"),
                             "", "", "", "", ""])
                continue
            rows.append([r["server"], r["variant"], _desc(r),
                         _f(r["mbps"], 0), f"{_f(100 * r['share_of_min'], 0)}%",
                         f"{_f(100 * r['share_of_no_overlap_model'], 0)}%",
                         f"{_f(100 * r['share_of_read_then_send_model'], 0)}%",
                         _f(r["disk_bytes_per_byte_served"]), _cache(r)])
        md.append(_table(["server", "variant", "workload", "MB/s", "of min(disk, net)",
                          "of no-overlap model", "of read-then-send model",
                          "disk bytes / byte served", "image in cache / page cache + (MiB)"],
                         rows + _na_rows(records, 9)))

    md.append(_tls_section(records, per_round))
    md.append(targets(all_records))
    na = _by(records, kind="server", status="n/a")
    if na:
        md.append("Not available: " + "; ".join(f"{r['server']} {r['variant']} "
                                                 f"({r.get('reason', '')[:160]})" for r in na)
                  + "\n")
    errs = [r for r in all_records if r.get("status") == "error"]
    if errs:
        md.append("Errors: " + "; ".join(f"{r.get('server', '')} {r.get('variant', '')} "
                                         f"{r.get('workload', r.get('name', ''))}"
                                         + (f" round {r['round']}" if "round" in r else "")
                                         + f": "
                                         f"{r.get('reason', '')[:160]}" for r in errs) + "\n")
    return "\n".join(md)


def _ok(records, **kv):
    return [r for r in _by(records, **kv) if r.get("status") == "ok"]


def _client_busy(r):
    """fio's job CPU seconds per second of its run (all jobs), from fio's own accounting."""
    return r.get("client_cpu_busy")


def _client_us_per_req(r):
    return r.get("client_cpu_us_per_req")


def _tls_section(records, per_round):
    """The TLS experiment (tls.py): a table per workload, and shunt's ratios to nbdkit's
    throughput and server CPU per GiB against the targets (≥ 1.2x at ≤ 0.8x)."""
    tls = _by(records, kind="tls")
    if not tls:
        return ""
    md = ["## TLS (X.509, --tls=require), hot, fio nbd engine over nbds://\n"]
    rows = []
    for r in tls:
        w = r.get("workload", "")
        each = _per_round(per_round, _speed_key(w), kind="tls", workload=w, server=r["server"],
                          variant=r["variant"]) if per_round and w in fio.WORKLOADS else ""
        if r.get("status") != "ok":
            rows.append([r["server"], r["variant"], w, "error", "", "", "", "", "", each or "–"])
            continue
        rows.append([r["server"], r["variant"], fio.WORKLOADS[w][4], _f(r["mbps"], 0),
                     _f(r["iops"], 0), _f(r["server_cpu_s_per_gib"]),
                     _f(r["server_cpu_us_per_req"], 1),
                     f"{_f(r.get('machine_own_cpu_s_per_gib'))} / "
                     f"{_f(r.get('machine_cpu_s_per_gib'))}",
                     f"{_f(_client_us_per_req(r), 1)} ({_f(_client_busy(r))})", each or "–"])
    # The client (fio and libnbd, decrypting) shares the machine: a client CPU near 1.0 busy
    # bounds the throughput whatever the server does; the server's CPU per GiB still shows.
    md.append(_table(["server", "variant", "workload", "MB/s", "IOPS", "server CPU s/GiB",
                      "server CPU µs/req", "machine CPU s/GiB own / all",
                      "client CPU µs/req (busy)", "per round"], rows))
    lines = []
    for w in sorted({r["workload"] for r in _ok(tls)}):
        sh = _ok(tls, server="shunt", workload=w)
        kit = _ok(tls, server="nbdkit", workload=w)
        if not sh or not kit or not kit[0]["mbps"] or not kit[0]["server_cpu_s_per_gib"]:
            continue
        t = sh[0]["mbps"] / kit[0]["mbps"]
        c = sh[0]["server_cpu_s_per_gib"] / kit[0]["server_cpu_s_per_gib"]
        lines.append(f"- {fio.WORKLOADS[w][4]}: shunt/nbdkit throughput {t:.2f}x "
                     f"(target ≥ 1.2x {'✓' if t >= 1.2 else '✗'}), server CPU per GiB "
                     f"{c:.2f}x (target ≤ 0.8x {'✓' if c <= 0.8 else '✗'})")
    return "\n".join(md) + ("\n" + "\n".join(lines) + "\n" if lines else "")


def targets(records):
    """The performance targets, each with the best peer's figure, what shunt needs, and what each
    shunt configuration measured in this run. With --repeat, the figures are the medians, and
    each throughput target gets a row "rounds met": in how many rounds shunt met the target
    against that round's own best peer."""
    records, per_round = rounds.split(records)
    n_rounds = max((r["round"] for r in per_round), default=0)
    peers = [r for r in records if r.get("server") not in (None, "shunt")]
    shunt = [r for r in records if r.get("server") == "shunt" and r["kind"] != "tls"]
    variants = sorted({r["variant"] for r in shunt if r.get("status") == "ok"})
    rows = []

    def row(name, best_txt, need_txt, value_of, passes, fmt=lambda x: f"{x:.0f}"):
        cells = []
        for v in variants:
            val = value_of(v)
            verdict = passes(val, v) if val is not None else None
            mark = "" if verdict is None else (" ✓" if verdict else " ✗")
            cells.append("–" if val is None else fmt(val) + mark)
        rows.append([name, best_txt, need_txt] + cells)

    def always(check):
        return lambda x, _v: check(x)

    def best(kind, key, pick=max, **kv):
        rs = [r for r in _ok(peers, kind=kind, **kv) if r.get(key) is not None]
        return pick(rs, key=lambda r: r[key]) if rs else None

    def shunt_val(v, key, kind, **kv):
        rs = _ok(shunt, kind=kind, variant=v, **kv)
        return rs[0].get(key) if rs else None

    def rounds_met(workload, key, meets, best_key="mbps"):
        """A row: in how many rounds shunt's `key` met the target, meets(shunt's value, that
        round's best peer by `best_key`), for each shunt configuration."""
        if not n_rounds:
            return

        def count(v):
            k = 0
            for rnd in range(1, n_rounds + 1):
                rs = _ok(per_round, kind="workload", workload=workload, cache="hot", round=rnd)
                pe = [r for r in rs if r["server"] != "shunt" and r.get(best_key) is not None]
                sh = [r for r in rs if r["server"] == "shunt" and r["variant"] == v
                      and r.get(key) is not None]
                if pe and sh and meets(sh[0][key], max(pe, key=lambda r: r[best_key])):
                    k += 1
            return k
        row("… rounds met (each round against its own best peer)", "–", f"k/{n_rounds}",
            count, lambda x, v: None, fmt=lambda k: f"{k}/{n_rounds}")

    def null_rows(workload, key, need, meets, cpu_need=None):
        """Rows for nbdkit null (no storage work, same client, same machine) under a target:
        its figure (the median with --repeat) and machine CPU against what the target needs,
        marked null ≥ needed ✓/✗: the ceiling this client and machine allow any server. Shunt's
        cells: its share of null's figure (no verdict). With --repeat, a row "rounds where null
        reached the target": meets(null's figure, that round's best peer) in k of N rounds."""
        nul = _ok(records, kind="reference", name="null-server", workload=workload)
        if not nul or nul[0].get(key) is None:
            return
        n = nul[0]
        unit = "IOPS" if key == "iops" else "MB/s"
        busy = _client_busy(n)
        own, allc = n.get("machine_own_cpu_s_per_gib"), n.get("machine_cpu_s_per_gib")
        txt = (f"{n[key]:.0f} {unit}, null ≥ needed {'✓' if n[key] >= need else '✗'}; machine "
               f"CPU s/GiB own / all {_f(own)} / {_f(allc)}")
        if cpu_need is not None and own is not None:
            txt += f", ≤ {cpu_need:.2f} {'✓' if own <= cpu_need else '✗'}"
        if busy is not None:
            txt += f"; client CPU busy {busy:.2f}"

        def share(v):
            x = shunt_val(v, key, "workload", workload=workload, cache="hot")
            return x / n[key] if x is not None and n[key] else None
        row(f"… nbdkit null (no storage at all) {unit}, same client (shunt columns: shunt's "
            "% of null's)", txt, f"≥ {need:.0f}", share, lambda x, v: None,
            fmt=lambda x: f"{100 * x:.0f}% of null")
        if not n_rounds:
            return
        k = 0
        for rnd in range(1, n_rounds + 1):
            pe = [r for r in _ok(per_round, kind="workload", workload=workload, cache="hot",
                                 round=rnd) if r["server"] != "shunt" and r.get(key) is not None]
            nu = _ok(per_round, kind="reference", name="null-server", workload=workload,
                     round=rnd)
            if pe and nu and nu[0].get(key) is not None and \
                    meets(nu[0][key], max(pe, key=lambda r: r[key])):
                k += 1
        rows.append([f"… rounds where nbdkit null reached the target (each round against its "
                     "own best peer)", f"{k}/{n_rounds}", f"k/{n_rounds}"] + ["–"] * len(variants))

    b = best("workload", "mbps", workload="seqread", cache="hot")
    if b:
        need_cpu = 0.9 * b["machine_own_cpu_s_per_gib"]
        row("hot seq read MB/s", f"{b['mbps']:.0f} ({b['server']} {b['variant']})",
            f"≥ {b['mbps']:.0f}", lambda v: shunt_val(v, "mbps", "workload", workload="seqread",
                                                      cache="hot"),
            always(lambda x: x >= b["mbps"]))
        rounds_met("seqread", "mbps", lambda x, p: x >= p["mbps"])
        row("… machine CPU s/GiB (own)", f"{b['machine_own_cpu_s_per_gib']:.2f}",
            f"≤ {need_cpu:.2f}", lambda v: shunt_val(v, "machine_own_cpu_s_per_gib", "workload",
                                                      workload="seqread", cache="hot"),
            always(lambda x: x <= need_cpu), fmt=lambda x: f"{x:.2f}")
        rounds_met("seqread", "machine_own_cpu_s_per_gib",
                   lambda x, p: x <= 0.9 * p["machine_own_cpu_s_per_gib"])
        null_rows("seqread", "mbps", b["mbps"], lambda x, p: x >= p["mbps"], cpu_need=need_cpu)
    row("copies per byte served, hot seq read (shunt's stats)", "2 (read + send)",
        "0 (splice, direct)", lambda v: shunt_val(v, "server_copies_per_byte", "workload",
                                                  workload="seqread", cache="hot"),
        lambda x, v: x == 0 if v in ("splice", "direct") else None, fmt=lambda x: f"{x:.2f}")

    def copy_split(v):
        code = shunt_val(v, "code_copies_per_byte", "workload", workload="seqread", cache="hot")
        zc = shunt_val(v, "kernel_zc_copies_per_byte", "workload", workload="seqread", cache="hot")
        return None if code is None or zc is None else (code, zc)
    row("… of which by shunt's code / zero-copy sends the kernel copied (on loopback it copies "
        "every SEND_ZC)", "–", "0 by the code (splice, direct)", copy_split,
        lambda x, v: x[0] == 0 if v in ("splice", "direct") else None,
        fmt=lambda x: f"{x[0]:.2f} / {x[1]:.2f}")
    b = best("workload", "mbps", workload="seqread4", cache="hot")
    if b:
        row("hot seq read, 4 connections, MB/s", f"{b['mbps']:.0f} ({b['server']} {b['variant']})",
            f"≥ {1.2 * b['mbps']:.0f}", lambda v: shunt_val(v, "mbps", "workload",
                                                             workload="seqread4", cache="hot"),
            always(lambda x: x >= 1.2 * b["mbps"]))
        rounds_met("seqread4", "mbps", lambda x, p: x >= 1.2 * p["mbps"])
        null_rows("seqread4", "mbps", 1.2 * b["mbps"], lambda x, p: x >= 1.2 * p["mbps"])
    def random_rows(workload, client):
        """The random 4 KiB target through one client: shunt against the best peer, rounds
        met, what the client alone allows, and nbdkit null."""
        b = best("workload", "iops", workload=workload, cache="hot")
        if not b:
            return
        busy = _client_busy(b)
        row(f"hot random 4 KiB read IOPS, {client}", f"{b['iops']:.0f} ({b['server']} "
            f"{b['variant']}" + (f"; client CPU busy {busy:.2f}" if busy is not None else "")
            + ")", f"≥ {1.5 * b['iops']:.0f}",
            lambda v: shunt_val(v, "iops", "workload", workload=workload, cache="hot"),
            always(lambda x: x >= 1.5 * b["iops"]))
        rounds_met(workload, "iops", lambda x, p: x >= 1.5 * p["iops"], best_key="iops")
        # What the client alone allows. fio's nbd engine issues and reaps every request of a
        # job in one thread, and so does shunt bench, so the client can use at most 1 CPU per
        # job, however many CPUs the machine has: jobs / the client's CPU per request
        # (measured in each run). Even a server that cost nothing could not serve more;
        # informational, no verdict. IOPS = bound x client busy / jobs, so a busy share near
        # `jobs` says the client was the limit.
        jobs = fio.WORKLOADS[workload][3]

        def bound_busy(r):
            if not r or not _client_us_per_req(r):
                return None
            return (jobs * 1e6 / _client_us_per_req(r), _client_busy(r))

        def shunt_rec(v):
            rs = _ok(shunt, kind="workload", variant=v, workload=workload, cache="hot")
            return rs[0] if rs else None

        def bb_txt(x):
            return f"{x[0]:.0f}" + (f" (busy {x[1]:.2f})" if x[1] is not None else "")
        bb = bound_busy(b)
        row(f"… bound: {jobs} job{'s' if jobs > 1 else ''} × 1 CPU / the client's CPU per "
            "request (a server costing 0), and the client's CPU busy share (its CPU-s / run s)",
            bb_txt(bb) if bb else "–", f"≥ {1.5 * b['iops']:.0f}",
            lambda v: bound_busy(shunt_rec(v)), lambda x, v: None, fmt=bb_txt)
        null_rows(workload, "iops", 1.5 * b["iops"], lambda x, p: x >= 1.5 * p["iops"])
    random_rows("randread", "fio nbd engine (libnbd)")
    random_rows("randread-sb", "shunt bench client")
    b = best("overlap", "share_of_min", workload="randread4m1")
    if b:
        row("overlap: random 4 MiB QD1, share of min(disk, net)",
            f"{100 * b['share_of_min']:.0f}% ({b['server']} {b['variant']})", "≥ 90%",
            lambda v: shunt_val(v, "share_of_min", "overlap", workload="randread4m1"),
            always(lambda x: x >= 0.9), fmt=lambda x: f"{100 * x:.0f}%")
    b = best("cold_read", "image_cache_mib", pick=min, workload="read4m1")
    if b:
        row("page cache: image in cache, cold 4 MiB QD1 reads (MiB)",
            f"{b['image_cache_mib']:.0f} ({b['server']} {b['variant']})", "≤ 64 (direct)",
            lambda v: shunt_val(v, "image_cache_mib", "cold_read", workload="read4m1"),
            lambda x, v: x <= 64 if v in ("direct", "auto") else None)
    for co in sorted({r["corunner"] for r in _ok(peers, kind="interference")}):
        b = best("interference", "slowdown_pct_per_gibps", pick=min, corunner=co)
        if not b:
            continue
        need = 0.5 * b["slowdown_pct_per_gibps"]
        noise = b["slowdown_pct"] <= b["slowdown_spread_pct"]

        def within(x, v, co=co, need=need, noise=noise):
            rs = _ok(shunt, kind="interference", variant=v, corunner=co)
            if noise:  # no peer slows it measurably: shunt must not either
                return bool(rs) and rs[0]["slowdown_pct"] <= rs[0]["slowdown_spread_pct"]
            return x <= need
        row(f"interference: {co} slowdown % per GiB/s",
            f"{b['slowdown_pct_per_gibps']:.1f} ({b['server']} {b['variant']})"
            + (", within noise" if noise else ""),
            "within noise" if noise else f"≤ {need:.1f}",
            lambda v, co=co: shunt_val(v, "slowdown_pct_per_gibps", "interference",
                                       corunner=co),
            within, fmt=lambda x: f"{x:.1f}")
    if not rows:
        return ""
    head = ["target", "best peer", "shunt needs"] + [f"shunt {v}" for v in variants]
    return ("## Targets\n\n" + _table(head, rows)
            + "\nCopies per byte come from shunt's own accounting (`--stats`, refreshed with "
            "SIGUSR1 before and after each run); the peers have none.\n")


def json_lines(records):
    return "\n".join(json.dumps(r, sort_keys=True) for r in records) + "\n"
