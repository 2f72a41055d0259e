"""interference.py: the thesis's interference experiment. A co-runner pinned to CPU 0 runs alone,
then beside a server (and its fio client) streaming hot sequential reads pinned to CPU 1; the
pairs alternate so that drift on the shared machine hits both halves alike."""
import os
import re
import statistics
import time

from . import fio, procs

CORUNNERS = {
    # name -> (source file, argument after the duration, unit of the rate it prints)
    "stream-triad": ("stream_triad.c", "128", "MB per CPU-s"),
    "cache-walk-32M": ("cache_walk.c", "32", "M accesses per CPU-s"),
}
CORUN_CPU, SERVER_CPU = "0", "1"


def build(srcdir, workdir):
    """Compile the co-runners into workdir; name -> binary path."""
    out = {}
    for name, (src, _, _) in CORUNNERS.items():
        binary = os.path.join(workdir, name)
        procs.check(["cc", "-O2", "-Wall", "-Wextra", "-o", binary, os.path.join(srcdir, src)], 60)
        out[name] = binary
    return out


def _corun(binary, name, seconds):
    """(work per CPU-second, work per wall-second) of one co-runner run. The first is the
    figure used: other users of this shared machine take CPU time from the co-runner, but they
    do not change what it achieves per second it runs, unlike cache and memory-bus contention."""
    arg = CORUNNERS[name][1]
    r = procs.run(["taskset", "-c", CORUN_CPU, binary, str(seconds), arg], seconds + 30)
    m = re.search(r"\brate=([0-9.]+) cpu_rate=([0-9.]+)", r.out)
    if not r.ok or not m:
        raise RuntimeError(f"{name} failed: {r.err.strip()[-200:]}")
    return float(m.group(2)), float(m.group(1))


def server_wrap():
    return ["taskset", "-c", SERVER_CPU]


def measure(cfg, running, binaries):
    """Yield (corunner, record) with the co-runner's slowdown beside `running` (started with
    server_wrap()) and the throughput served meanwhile."""
    out_path = os.path.join(cfg.workdir, "fio-corun.json")
    for name, binary in binaries.items():
        alone, beside, served, wall_alone, wall_beside = [], [], [], [], []
        for _ in range(cfg.pairs):
            cpu_rate, wall_rate = _corun(binary, name, cfg.corun_s)
            alone.append(cpu_rate)
            wall_alone.append(wall_rate)
            args = fio.job_args("seqread", int(cfg.corun_s + 60), cfg.image_size)
            p = fio.start(["taskset", "-c", SERVER_CPU], fio.nbd_target(running.uri), args,
                          out_path)
            try:
                time.sleep(0.5)  # let the stream reach its pace first
                cpu_rate, wall_rate = _corun(binary, name, cfg.corun_s)
                beside.append(cpu_rate)
                wall_beside.append(wall_rate)
            finally:
                r = fio.finish(p, out_path)
            served.append(r.io_bytes / r.seconds / (1 << 30) if r.seconds else 0.0)
        slow = [a / b - 1 for a, b in zip(alone, beside)]
        wall_slow = [a / b - 1 for a, b in zip(wall_alone, wall_beside)]
        gibps = statistics.mean(served)
        mean = statistics.mean(slow)
        yield name, {
            "unit": CORUNNERS[name][2], "pairs": cfg.pairs, "corun_s": cfg.corun_s,
            "alone": round(statistics.mean(alone), 2), "beside": round(statistics.mean(beside), 2),
            "slowdown_pct": round(100 * mean, 1),
            "slowdown_spread_pct": round(50 * (max(slow) - min(slow)), 1),
            "slowdown_pct_each": [round(100 * s, 1) for s in slow],
            "wall_slowdown_pct": round(100 * statistics.mean(wall_slow), 1),
            "served_gibps": round(gibps, 3),
            "slowdown_pct_per_gibps": round(100 * mean / gibps, 2) if gibps else None,
        }
