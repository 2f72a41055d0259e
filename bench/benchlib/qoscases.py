"""qoscases.py: the cases of bench/qos, each run against every server of SERVERS on the
throttled disk (qosdisk.Disk), and the verdict of each against its target. A case returns one
flat record (numbers only, so that --repeat can take each figure's median); judge() turns a
record, and the same round's shunt --qos=off record, into met / not met."""
import json
import os
import signal
import threading
import time

from . import procs, qosflows, servers, sysstat
from .qosflows import Flow

# The servers every case runs against: shunt with its scheduler and without, and the peers
# with their page cache out of the way where they have the option.
SERVERS = ["shunt:qos=on", "shunt:qos=off", "nbdkit:file", "qemu-nbd:none+io_uring",
           "nbd-server:defaults"]
CASES = ["victim", "weights", "reserve", "limit", "idle", "conns"]
TITLES = {
    "victim": "a. victim QD1 4 KiB random reads beside a QD32 128 KiB neighbour",
    "weights": "b. three backlogged flows, weights 1:2:4",
    "reserve": "c. one flow reserved at half the device against three noisy flows",
    "limit": "d. limit-iops at a quarter of the device",
    "idle": "e. one of three flows goes idle half way",
    "conns": "f. 64 connections",
}
KiB = 1024
WEIGHTS = {"w100": 100, "w200": 200, "w400": 400}


def spec(key, shunt, flows, limit_iops=None):
    """servers.Spec for `key` (a SERVERS entry). shunt gets one export per flow, of the same
    device, with the flow's options (they all share the device's scheduler); a peer gets one
    export that every flow connects to, limited to `limit_iops` 4 KiB requests per second
    through its own means where it has one."""
    server, variant = key.split(":", 1)

    def build(port, dev, wd):
        if server == "shunt":
            exports = [f"{f.name}={dev},datapath=direct"
                       + (f",{f.export_opts}" if f.export_opts else "") for f in flows]
            qos = "off" if variant == "qos=off" else "on"
            return ([shunt, "serve", "--listen", f"127.0.0.1:{port}", f"--qos={qos}",
                     "--stats", servers.stats_path(wd, port)] + exports, flows[0].name, None)
        if server == "nbdkit":
            # cache=none: the file plugin evicts what it read or wrote from the page cache.
            argv = ["nbdkit", "-f", "-i", "127.0.0.1", "-p", str(port), "-t", "64"]
            tail = []
            if limit_iops:
                argv.append("--filter=rate")
                tail = [f"rate={limit_iops * 4 * KiB * 8}"]  # bits per second
            return argv + ["file", dev, "cache=none"] + tail, "", None
        if server == "qemu-nbd":
            argv = ["qemu-nbd", "-b", "127.0.0.1", "-p", str(port), "-x", servers.EXPORT,
                    "-t", "-e", "128"]
            if limit_iops:
                argv += ["--object", f"throttle-group,id=tg0,x-iops-total={limit_iops}",
                         "--image-opts", "driver=throttle,throttle-group=tg0,"
                         f"file.driver=host_device,file.filename={dev},"
                         "file.cache.direct=on,file.aio=io_uring"]
            else:
                argv += ["-f", "raw", "--cache=none", "--aio=io_uring", dev]
            return argv, servers.EXPORT, None
        if server == "nbd-server":
            # No O_DIRECT option: its reads may come from the page cache (each run drops the
            # caches first; device_ios_per_req shows it), and `sync = true` keeps its writes
            # from piling up there, out of the throttle's reach.
            conf = os.path.join(wd, f"nbd-server-{port}.conf")
            pidfile = os.path.join(wd, f"nbd-server-{port}.pid")
            with open(conf, "w") as f:
                f.write(f"[generic]\nlistenaddr = 127.0.0.1\nport = {port}\n"
                        f"[{servers.EXPORT}]\nexportname = {dev}\nsync = true\n")
            return ["nbd-server", "-C", conf, "-p", pidfile], servers.EXPORT, pidfile
        raise ValueError(f"unknown server {key}")
    return servers.Spec(server, variant, build)


def uris(key, port, flows):
    if key.startswith("shunt:"):
        return {f.name: f"nbd://127.0.0.1:{port}/{f.name}" for f in flows}
    export = "" if key.startswith("nbdkit:") else servers.EXPORT
    return {f.name: f"nbd://127.0.0.1:{port}/{export}" for f in flows}


class Serving:
    """One server started inside the throttled cgroup for the flows of a case."""

    def __init__(self, ctx, key, flows, limit_iops=None):
        self.ctx, self.key, self.flows = ctx, key, flows
        self.running = servers.start(spec(key, ctx.shunt, flows, limit_iops), ctx.disk.loop,
                                     ctx.workdir, wrap=ctx.disk.wrap())
        self.uris = uris(key, self.running.port, flows)

    def flow_stats(self):
        """{export: [flow objects]} from shunt's --stats file (refreshed with SIGUSR1), {}
        for the peers or when it does not come."""
        if not self.key.startswith("shunt:"):
            return {}
        path = servers.stats_path(self.ctx.workdir, self.running.port)
        try:
            before = os.stat(path).st_mtime_ns
        except OSError:
            before = None
        os.kill(self.running.pid, signal.SIGUSR1)
        for _ in range(100):
            try:
                if os.stat(path).st_mtime_ns != before:
                    with open(path) as f:
                        data = json.load(f)
                    return {e["name"]: e.get("flows", []) for e in data.get("exports", [])}
            except (OSError, ValueError):
                pass
            time.sleep(0.01)
        return {}

    def measure(self, flows, runtime=None):
        """Run `flows` together; returns ({name: FlowResult or [FlowResult]}, run figures).
        For shunt, the figures have `flows`: its per-flow stats near the end of the run (the
        flows leave with their connections)."""
        c = self.ctx
        runtime = runtime or c.runtime
        sysstat.drop_caches()
        ios0 = c.disk.device_ios()
        snap = {}
        timer = threading.Timer(runtime * 0.9 + 0.3, lambda: snap.update(self.flow_stats()))
        timer.start()
        try:
            with sysstat.CpuWindow([self.running.pid]) as w:
                res, client_cpu = qosflows.run(flows, self.uris, runtime, c.size, c.workdir,
                                               runtime + 20)
        finally:
            timer.cancel()
            timer.join()
        os.sync()  # a server's buffered writes go to the disk before the next run
        dev = c.disk.device_ios() - ios0
        by = {}
        for r in res:
            by.setdefault(r.name, []).append(r)
        out = {f.name: by.get(f.name, []) if f.jobs > 1 else (by.get(f.name) or [None])[0]
               for f in flows}
        missing = [n for n, v in out.items() if not v]
        if missing:
            raise RuntimeError(f"fio reported nothing for {', '.join(missing)}")
        served = sum(r.ios for r in res)
        fig = {
            "server_cpu_s": round(w.proc_s, 3),
            "server_cpu_us_per_req": round(w.proc_s * 1e6 / served, 2) if served else None,
            "client_cpu_s": round(client_cpu, 3),
            # the share of the machine's CPUs that the server and fio used: near 1, the CPU
            # and not the disk limited; machine_busy_share also counts other work
            "own_cpu_share": round((w.proc_s + client_cpu) / (w.wall_s * os.cpu_count()), 3)
            if w.wall_s else None,
            "machine_busy_share": round(w.machine_busy_s / w.machine_total_s, 3)
            if w.machine_total_s else None,
            "device_ios_per_req": round(dev / served, 3) if served else None,
            "flows": snap,
        }
        return out, fig

    def stop(self):
        self.running.stop()


def _plain(fig):
    """The run figures without the per-flow stats (records hold numbers only)."""
    return {k: v for k, v in fig.items() if k != "flows"}


def _serve(ctx, key, flows, body, limit_iops=None):
    s = Serving(ctx, key, flows, limit_iops)
    try:
        return body(s)
    finally:
        s.stop()


def victim(ctx, key):
    v = Flow("victim", "randread", 4 * KiB, 1)
    nr = Flow("noisyread", "randread", 128 * KiB, 32)
    nw = Flow("noisywrite", "randwrite", 128 * KiB, 32)

    def body(s):
        alone, f0 = s.measure([v])
        rd, f1 = s.measure([v, nr])
        wr, f2 = s.measure([v, nw])
        rec = {"p99_alone_us": alone["victim"].p99_us, "p99_read_us": rd["victim"].p99_us,
               "p99_write_us": wr["victim"].p99_us,
               "victim_iops_alone": round(alone["victim"].iops),
               "victim_iops_read": round(rd["victim"].iops),
               "victim_iops_write": round(wr["victim"].iops),
               "neighbour_read_mbps": round(rd["noisyread"].iops * nr.bs / 1e6, 1),
               "neighbour_write_mbps": round(wr["noisywrite"].iops * nw.bs / 1e6, 1),
               "own_cpu_share": max(f["own_cpu_share"] or 0 for f in (f0, f1, f2)),
               "machine_busy_share": max(f["machine_busy_share"] or 0 for f in (f0, f1, f2)),
               "device_ios_per_req": f1["device_ios_per_req"]}
        # shunt: the victim's p99 wait in the scheduler's queue (the rest is the device's)
        for tag, fig in (("alone", f0), ("read", f1), ("write", f2)):
            fl = fig["flows"].get("victim") or [{}]
            rec[f"queue_p99_{tag}_us"] = fl[0].get("delay_p99_us")
        for w in ("read", "write"):
            a = rec["p99_alone_us"]
            rec[f"ratio_{w}"] = round(rec[f"p99_{w}_us"] / a, 2) if a else None
        return rec
    return _serve(ctx, key, [v, nr, nw], body)


def weights(ctx, key):
    flows = [Flow(n, "randread", 4 * KiB, 16, f"weight={w}") for n, w in WEIGHTS.items()]

    def body(s):
        res, fig = s.measure(flows)
        x = {n: res[n].iops for n in WEIGHTS}
        total = sum(x.values())
        wsum = sum(WEIGHTS.values())
        rec = {"total_iops": round(total)}
        dev = []
        for n, w in WEIGHTS.items():
            share = x[n] / total if total else 0.0
            rec[f"iops_{n}"] = round(x[n])
            rec[f"share_{n}"] = round(share, 4)
            dev.append(abs(share / (w / wsum) - 1))
        rec["max_share_error"] = round(max(dev), 4)
        rec["jain_per_weight"] = qosflows.jain(x[n] / w for n, w in WEIGHTS.items())
        rec["jain_raw"] = qosflows.jain(x.values())
        rec.update(_plain(fig))
        return rec
    return _serve(ctx, key, flows, body)


def _inner(windows):
    """The windows of a flow without its first and last (partial) ones."""
    return windows[1:-1]


def reserve(ctx, key):
    r = max(1, round(ctx.cap / 2))
    flows = [Flow("reserved", "randread", 4 * KiB, 32, f"reserve-iops={r}")] + \
        [Flow(f"noisy{i}", "randread", 4 * KiB, 32) for i in (1, 2, 3)]

    def body(s):
        res, fig = s.measure(flows)
        win = _inner(res["reserved"].windows)
        # met: at least the reservation less one request per window (fio's window edges)
        floor = r - 1000 / qosflows.WINDOW_MS
        met = sum(1 for _, v in win if v >= floor)
        # Windows in which the device itself served less than 90% of its capacity (all
        # four flows together): a floor cannot hold through them whatever the order.
        total = {}
        for fl in flows:
            for t, v in res[fl.name].windows:
                total[t] = total.get(t, 0) + v
        full = [(t, v) for t, v in win if total.get(t, 0) >= 0.9 * ctx.cap]
        met_full = sum(1 for _, v in full if v >= floor)
        rec = {"reserve_iops": r, "reserved_iops": round(res["reserved"].iops),
               "noisy_iops": round(sum(res[f"noisy{i}"].iops for i in (1, 2, 3))),
               "windows": len(win), "windows_met": met,
               "fraction_met": round(met / len(win), 4) if win else None,
               "min_window_iops": min((v for _, v in win), default=None),
               "device_short_windows": len(win) - len(full),
               "fraction_met_device_full": round(met_full / len(full), 4) if full else None}
        rec.update(_plain(fig))
        return rec
    return _serve(ctx, key, flows, body)


def limit(ctx, key):
    lim = max(1, round(ctx.cap / 4))
    flows = [Flow("limited", "randread", 4 * KiB, 16, f"limit-iops={lim}")]

    def body(s):
        res, fig = s.measure(flows)
        iops = res["limited"].iops
        win = [v for _, v in _inner(res["limited"].windows)]
        rec = {"limit_iops": lim, "iops": round(iops, 1), "ratio": round(iops / lim, 4),
               "window_min_iops": min(win, default=None),
               "window_max_iops": max(win, default=None)}
        rec.update(_plain(fig))
        return rec
    return _serve(ctx, key, flows, body, limit_iops=lim)


def idle(ctx, key):
    half = max(1, round(ctx.runtime / 2))
    flows = [Flow("stay1", "randread", 4 * KiB, 16), Flow("stay2", "randread", 4 * KiB, 16),
             Flow("leaver", "randread", 4 * KiB, 16, runtime=half)]

    def body(s):
        res, fig = s.measure(flows)
        leave = res["leaver"].windows
        if len(leave) < 3:
            raise RuntimeError("the leaving flow logged fewer than 3 windows")
        stop_ms = leave[-1][0]
        per = {}
        for n in ("stay1", "stay2", "leaver"):
            for t, v in res[n].windows:
                per[t] = per.get(t, 0) + v
        before = [v for t, v in per.items() if 2 * qosflows.WINDOW_MS <= t < stop_ms]
        pre = sum(before) / len(before) if before else 0
        after = sorted((t, v) for t, v in per.items() if t > stop_ms)[:-1]  # last: partial
        # windows after the leaver's last one whose total fell short of 95% of the total
        # before it left, until the first that did not
        short = next((i for i, (_, v) in enumerate(after) if v >= 0.95 * pre), None)
        total = sum(res[n].ios for n in ("stay1", "stay2", "leaver")) / ctx.runtime
        rec = {"total_before_iops": round(pre), "after_windows": len(after),
               "absorb_ms": None if short is None else short * qosflows.WINDOW_MS,
               "total_after_iops": round(sum(v for _, v in after) / len(after)) if after
               else None,
               "total_iops": round(total)}
        rec.update(_plain(fig))
        return rec
    return _serve(ctx, key, flows, body)


def conns(ctx, key):
    n = ctx.connections
    flows = [Flow("c", "randread", 4 * KiB, 2, jobs=n)]

    def body(s):
        res, fig = s.measure(flows)
        x = [r.iops for r in res["c"]]
        if len(x) != n:
            raise RuntimeError(f"{len(x)} of {n} connections reported")
        rec = {"connections": n, "total_iops": round(sum(x)), "jain": qosflows.jain(x),
               "min_iops": round(min(x)), "max_iops": round(max(x))}
        rec.update(_plain(fig))
        return rec
    return _serve(ctx, key, flows, body)


RUN = {"victim": victim, "weights": weights, "reserve": reserve, "limit": limit,
       "idle": idle, "conns": conns}


def judge(case, rec, off):
    """(met: True/False/None, what it needs) for a record; `off` is shunt --qos=off's
    record of the same case (for the targets relative to no scheduling), or None."""
    if case == "victim":
        rr, rw = rec.get("ratio_read"), rec.get("ratio_write")
        return (None if rr is None or rw is None else rr <= 2 and rw <= 2,
                "p99 with / alone ≤ 2 (read and write neighbour)")
    if case == "weights":
        e, j = rec.get("max_share_error"), rec.get("jain_per_weight")
        return (None if e is None or j is None else e <= 0.05 and j >= 0.99,
                "each share within ±5% of 1/7, 2/7, 4/7; Jain(IOPS/weight) ≥ 0.99")
    if case == "reserve":
        f = rec.get("fraction_met")
        return (None if f is None else f >= 0.99, "reservation met in ≥ 99% of 100 ms windows")
    if case == "limit":
        r = rec.get("ratio")
        return (None if r is None else 0.98 <= r <= 1.02, "IOPS / limit within 0.98..1.02")
    if case == "idle":
        a, t = rec.get("absorb_ms"), rec.get("total_iops")
        ot = (off or {}).get("total_iops")
        ok = None if a is None or t is None or not ot else a <= 100 and t >= 0.95 * ot
        return ok, "share absorbed within 100 ms; total ≥ 0.95 × --qos=off's"
    if case == "conns":
        j, c = rec.get("jain"), rec.get("server_cpu_us_per_req")
        oc = (off or {}).get("server_cpu_us_per_req")
        ok = None if j is None or c is None or not oc else j >= 0.95 and c <= 1.05 * oc
        return ok, "Jain ≥ 0.95; server CPU per request ≤ 1.05 × --qos=off's"
    raise ValueError(case)


def _local_victim(ctx):
    """Case a without a server: fio's io_uring O_DIRECT jobs on the loop device inside the
    cgroup, the victim alone and beside the 128 KiB QD 32 reader. What the throttled device
    itself does to the victim's p99 bounds what any server can show on it."""
    out = {}
    victim = ["--name=victim", "--rw=randread", "--bs=4k", "--iodepth=1"]
    noisy = ["--name=noisy", "--rw=randread", "--bs=128k", "--iodepth=32"]
    for tag, jobs in (("alone", victim), ("with_neighbour", victim + noisy)):
        argv = ctx.disk.wrap() + [
            "fio", f"--filename={ctx.disk.loop}", "--ioengine=io_uring", "--direct=1",
            "--time_based", f"--runtime={ctx.cap_runtime}s", "--randrepeat=0",
            "--norandommap", "--output-format=json"] + jobs
        r = procs.run(argv, ctx.cap_runtime + 60)
        if not r.ok:
            raise RuntimeError(f"fio on {ctx.disk.loop} failed: {r.err.strip()[-300:]}")
        job = json.loads(r.out[r.out.index("{"):])["jobs"][0]["read"]
        out[f"local_victim_p99_{tag}_us"] = round(
            job["clat_ns"]["percentile"]["99.000000"] / 1000, 1)
    a = out["local_victim_p99_alone_us"]
    out["local_victim_ratio"] = round(out["local_victim_p99_with_neighbour_us"] / a, 2) \
        if a else None
    return out


def capacity(ctx):
    """The device's capacity as the benchmark sees it: fio io_uring O_DIRECT random 4 KiB
    reads at QD 32 and 128 KiB reads at QD 32 on the loop device from inside the cgroup, and
    the 4 KiB reads again from outside it (the device unthrottled)."""
    out = {}
    for name, bs, wrap in (("iops_4k", 4 * KiB, True), ("iops_128k", 128 * KiB, True),
                           ("unthrottled_iops_4k", 4 * KiB, False)):
        argv = (ctx.disk.wrap() if wrap else []) + [
            "fio", "--name=cap", f"--filename={ctx.disk.loop}", "--ioengine=io_uring",
            "--direct=1", "--rw=randread", f"--bs={bs}", "--iodepth=32", "--time_based",
            f"--runtime={ctx.cap_runtime}s", "--randrepeat=0", "--norandommap",
            "--output-format=json"]
        r = procs.run(argv, ctx.cap_runtime + 60)
        if not r.ok:
            raise RuntimeError(f"fio on {ctx.disk.loop} failed: {r.err.strip()[-300:]}")
        job = json.loads(r.out[r.out.index("{"):])["jobs"][0]["read"]
        out[name] = round(job["iops"])
    out.update(_local_victim(ctx))
    out["mbps_128k"] = round(out["iops_128k"] * 128 * KiB / 1e6, 1)
    out["throttled_share_of_unthrottled"] = round(out["iops_4k"] / out["unthrottled_iops_4k"],
                                                  3) if out["unthrottled_iops_4k"] else None
    return out
