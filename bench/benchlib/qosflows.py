"""qosflows.py: the clients of bench/qos: several flows (fio jobs of the nbd engine, each its
own connection) run together by one fio, each flow with its own URI, request mix and depth, and
its IOPS logged per 100 ms window; the per-flow results and the fairness arithmetic."""
import glob
import json
import os

from . import procs

WINDOW_MS = 100


class Flow:
    """One source of requests: `export_opts` are the shunt export options its export gets
    (weight=, reserve-iops=, limit-iops=); `jobs` > 1 makes it that many connections of one
    fio job section (each its own flow in the server), `runtime` shorter than the run's
    makes it go idle early."""

    def __init__(self, name, rw="randread", bs=4096, qd=1, export_opts="", jobs=1,
                 runtime=None):
        self.name, self.rw, self.bs, self.qd = name, rw, bs, qd
        self.export_opts, self.jobs, self.runtime = export_opts, jobs, runtime


def jobfile(flows, uris, runtime, size, logdir):
    """fio's job file: one section per flow; `uris` maps a flow name to its URI."""
    out = ["[global]", "ioengine=nbd", "thread", "time_based", f"runtime={runtime}s",
           "randrepeat=0", "norandommap", f"size={size}", f"log_avg_msec={WINDOW_MS}", ""]
    for f in flows:
        out += [f"[{f.name}]", f"uri={uris[f.name]}", f"rw={f.rw}", f"bs={f.bs}",
                f"iodepth={f.qd}"]
        if f.jobs > 1:
            out.append(f"numjobs={f.jobs}")
        else:
            out.append(f"write_iops_log={os.path.join(logdir, f.name)}")
        if f.runtime:
            out.append(f"runtime={f.runtime}s")
        out.append("")
    return "\n".join(out)


class FlowResult:
    """One fio job: its requests, IOPS over its own runtime, completion latency p99 (µs) and,
    for single-connection flows, IOPS per 100 ms window as [(end time ms, IOPS)]."""

    def __init__(self, name, ios, seconds, p99_us, windows):
        self.name, self.ios, self.seconds = name, ios, seconds
        self.p99_us, self.windows = p99_us, windows

    @property
    def iops(self):
        return self.ios / self.seconds if self.seconds else 0.0


def run(flows, uris, runtime, size, workdir, timeout):
    """Run every flow together in one fio; returns ([FlowResult] in job order, client CPU s)."""
    logdir = os.path.join(workdir, "fio-logs")
    os.makedirs(logdir, exist_ok=True)
    for old in glob.glob(os.path.join(logdir, "*")):
        os.unlink(old)
    path = os.path.join(workdir, "qos.fio")
    with open(path, "w") as f:
        f.write(jobfile(flows, uris, runtime, size, logdir))
    out = os.path.join(workdir, "qos-fio.json")
    r = procs.run(["fio", "--output-format=json", f"--output={out}", path], timeout)
    if not r.ok:
        raise RuntimeError(f"fio failed (rc={r.rc}{', timed out' if r.timed_out else ''}): "
                           f"{(r.err + r.out).strip()[-300:]}")
    try:
        with open(out) as f:
            text = f.read()
        data = json.loads(text[text.index("{"):])
    except (OSError, ValueError) as e:
        raise RuntimeError(f"no fio results in {out}: {e}")
    results = []
    for job in data["jobs"]:
        ios, seconds, p99 = 0, 0.0, 0.0
        for d in ("read", "write"):
            s = job[d]
            if not s["total_ios"]:
                continue
            ios += s["total_ios"]
            seconds = max(seconds, s["runtime"] / 1000.0)
            pct = s.get("clat_ns", {}).get("percentile", {})
            p99 = max(p99, pct.get("99.000000", 0) / 1000.0)
        name = job["jobname"]
        results.append(FlowResult(name, ios, seconds, round(p99, 1), _windows(logdir, name)))
    return results, r.cpu_s


def _windows(logdir, name):
    """[(window end ms, IOPS)] from fio's averaged IOPS log of job `name` (reads and writes
    of one window added up), or [] when the job wrote none."""
    per = {}
    for path in glob.glob(os.path.join(logdir, f"{name}_iops*.log")):
        with open(path) as f:
            for line in f:
                parts = [p.strip() for p in line.split(",")]
                if len(parts) < 2:
                    continue
                t = int(parts[0])
                key = (t + WINDOW_MS // 2) // WINDOW_MS  # fio's stamps drift by a few ms
                per[key] = per.get(key, 0) + int(parts[1])
    return [(k * WINDOW_MS, v) for k, v in sorted(per.items())]


def jain(xs):
    """Jain's fairness index of xs: 1 when all are equal, 1/n when one has everything."""
    xs = list(xs)
    if not xs or not any(xs):
        return None
    return round(sum(xs) ** 2 / (len(xs) * sum(x * x for x in xs)), 4)
