"""fio.py: the workloads as fio jobs (the nbd engine against a server, io_uring + O_DIRECT
against the image itself) and the parsing of fio's JSON output."""
import json
import os

from . import procs

MiB = 1 << 20

# name -> (rw, block size in bytes, iodepth, connections/jobs, description)
WORKLOADS = {
    "seqread":   ("read",      1 * MiB, 8,  1, "sequential read 1 MiB QD8"),
    "randread":  ("randread",  4096,    32, 1, "random read 4 KiB QD32"),
    "randread-sb": ("randread", 4096,   32, 1,
                    "random read 4 KiB QD32, shunt bench client (compact structured replies)"),
    "seqwrite":  ("write",     1 * MiB, 8,  1, "sequential write 1 MiB QD8"),
    "randwrite": ("randwrite", 4096,    32, 1, "random write 4 KiB QD32"),
    "seqread4":  ("read",      1 * MiB, 8,  4, "sequential read 1 MiB QD8 x 4 connections"),
    "read4m1":   ("read",      4 * MiB, 1,  1, "sequential read 4 MiB QD1"),
    "read4m4":   ("read",      4 * MiB, 4,  1, "sequential read 4 MiB QD4"),
    "randread4m1": ("randread", 4 * MiB, 1, 1, "random read 4 MiB QD1"),
    "read8m1":   ("read",      8 * MiB, 1,  1, "sequential read 8 MiB QD1"),
}
MAIN_WORKLOADS = ["seqread", "randread", "randread-sb", "seqwrite", "randwrite", "seqread4"]
READ_WORKLOADS = ["seqread", "randread", "randread-sb", "seqread4"]
# Run by `shunt bench` (shunt's own client, bench/benchlib/sbench.py) instead of fio's nbd
# engine, with the same request size and depth: every server gets the same client. fio's nbd
# engine runs libnbd in one thread that saturates its CPU on 4 KiB reads, so through fio the
# servers' own CPU per request cannot show; shunt bench needs about half of fio's CPU per request.
SHUNT_BENCH = {"randread-sb"}
COLD_READS = ["read4m1", "read4m4"]
OVERLAP_WORKLOADS = ["randread4m1", "read8m1"]


class FioResult:
    """client_cpu_s: fio's whole life (every process, from wait4), start and exit included;
    job_cpu_share: fio's own figure, the CPU its jobs used during the I/O (usr_cpu + sys_cpu,
    the job process's rusage over its runtime), per job, as a share of one CPU."""

    def __init__(self, io_bytes, seconds, ios, lat_ms, client_cpu_s, job_cpu_share=None):
        self.io_bytes, self.seconds, self.ios = io_bytes, seconds, ios
        self.lat_ms, self.client_cpu_s = lat_ms, client_cpu_s
        self.job_cpu_share = job_cpu_share

    @property
    def mbps(self):
        return self.io_bytes / self.seconds / 1e6 if self.seconds else 0.0

    @property
    def iops(self):
        return self.ios / self.seconds if self.seconds else 0.0


def job_args(workload, runtime, size, time_based=True):
    """fio options (after the target) for one workload over a target of `size` bytes.
    time_based=False reads each byte at most once (cold runs), stopping at `runtime` anyway."""
    rw, bs, qd, jobs, _ = WORKLOADS[workload]
    a = [f"--rw={rw}", f"--bs={bs}", f"--iodepth={qd}", f"--runtime={int(runtime * 1000)}ms",
         "--group_reporting", "--randrepeat=0", "--output-format=json"]
    if time_based:
        a.append("--time_based")
    if jobs > 1:
        part = (size // jobs) // bs * bs
        a += [f"--numjobs={jobs}", f"--size={part}", f"--offset_increment={part}"]
    else:
        a.append(f"--size={size // bs * bs}")
    return a


def nbd_target(uri):
    return ["--name=nbd", "--ioengine=nbd", f"--uri={uri}"]


def file_target(path):
    return ["--name=local", f"--filename={path}", "--ioengine=io_uring", "--direct=1"]


def run(prefix, target, args, out_path, timeout):
    """Run fio (argv `prefix` + fio ...) and parse its JSON; raise RuntimeError on failure."""
    argv = list(prefix) + ["fio"] + target + args + [f"--output={out_path}"]
    r = procs.run(argv, timeout)
    if not r.ok:
        raise RuntimeError(f"fio failed (rc={r.rc}{', timed out' if r.timed_out else ''}): "
                           f"{(r.err + r.out).strip()[-300:]}")
    return parse(out_path, r.cpu_s)


def start(prefix, target, args, out_path):
    """Start fio in the background (stop it with finish())."""
    argv = list(prefix) + ["fio"] + target + args + [f"--output={out_path}"]
    return procs.spawn(argv, out_path + ".log")


def finish(p, out_path, timeout=20):
    """Stop a background fio with SIGINT (it then reports what it did) and parse its JSON."""
    import signal
    import subprocess
    if p.poll() is None:
        os.killpg(p.pid, signal.SIGINT)
        try:
            p.wait(timeout)
        except subprocess.TimeoutExpired:
            procs.stop(p, 1)
            raise RuntimeError("fio did not stop on SIGINT")
    procs.stop(p, 1)
    return parse(out_path, 0.0)


def parse(out_path, client_cpu_s):
    try:
        with open(out_path) as f:
            text = f.read()
        data = json.loads(text[text.index("{"):])  # engines may print a line before the JSON
    except (OSError, ValueError) as e:
        raise RuntimeError(f"no fio results in {out_path}: {e}")
    job = data["jobs"][0]
    io_bytes = ios = 0
    seconds = 0.0
    lat_sum = 0.0
    for d in ("read", "write"):
        s = job[d]
        io_bytes += s["io_bytes"]
        ios += s["total_ios"]
        seconds = max(seconds, s["runtime"] / 1000.0)
        lat_sum += s["lat_ns"]["mean"] * s["total_ios"]
    os.unlink(out_path)
    # With group_reporting, fio sums the jobs' CPU times and runtimes: a per-job average.
    share = (job.get("usr_cpu", 0.0) + job.get("sys_cpu", 0.0)) / 100.0 if "usr_cpu" in job \
        else None
    return FioResult(io_bytes, seconds, ios, lat_sum / ios / 1e6 if ios else 0.0, client_cpu_s,
                     share)


def jobs_of(args):
    """numjobs in a job_args() list (1 when absent)."""
    return next((int(a.split("=", 1)[1]) for a in args if a.startswith("--numjobs=")), 1)
