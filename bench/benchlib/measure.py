"""measure.py: one measured client run: fio (or shunt bench) against a target while the CPU of the server's
process tree and of the whole machine is sampled, turned into a result record."""
from . import fio, sysstat

GiB = 1 << 30


def _per(value, amount):
    return round(value / amount, 4) if amount else None


def fio_record(server_pids, prefix, target, args, out_path, timeout, stats=None):
    """Run fio; return a dict with throughput, IOPS, latency and CPU figures. `stats`, when
    given, returns the server's own (bytes copied by its CPU, bytes served) counters."""
    return client_record(server_pids, lambda: fio.run(prefix, target, args, out_path, timeout),
                         fio.jobs_of(args), stats)


def client_record(server_pids, run_client, jobs, stats=None):
    """The record of one client run: run_client() runs the client (fio or shunt bench) and
    returns a fio.FioResult; `jobs` is how many client threads issued requests."""
    s0 = stats() if stats else None
    with sysstat.CpuWindow(server_pids) as w:
        r = run_client()
    s1 = stats() if s0 else None
    gib = r.io_bytes / GiB
    own = max(0.0, w.machine_busy_s - w.others_s)
    rec = {
        "mbps": round(r.mbps, 1), "iops": round(r.iops), "io_bytes": r.io_bytes,
        "seconds": round(r.seconds, 3), "lat_ms": round(r.lat_ms, 3),
        "server_cpu_s": round(w.proc_s, 3) if server_pids else None,
        "client_cpu_s": round(r.client_cpu_s, 3),
        "client_jobs": jobs,
    }
    if r.job_cpu_share is not None and r.seconds:
        # fio's own CPU during the I/O, all jobs. Each nbd-engine job is one thread that
        # issues and reaps every request, so it can use at most 1 CPU: a busy share near
        # client_jobs says the client was the limit. (client_cpu_s also counts fio's start,
        # connect and exit: about 0.1 s, a tenth of a --quick run.)
        job_cpu_s = r.job_cpu_share * jobs * r.seconds
        rec["client_job_cpu_s"] = round(job_cpu_s, 3)
        rec["client_cpu_busy"] = round(job_cpu_s / r.seconds, 3)
        rec["client_cpu_us_per_req"] = _per(job_cpu_s * 1e6, r.ios)
    rec.update({
        "machine_busy_s": round(w.machine_busy_s, 3), "window_s": round(w.wall_s, 3),
        "server_cpu_s_per_gib": _per(w.proc_s, gib) if server_pids else None,
        "machine_cpu_s_per_gib": _per(w.machine_busy_s, gib),
        "machine_own_cpu_s_per_gib": _per(own, gib),
        "server_cpu_us_per_req": _per(w.proc_s * 1e6, r.ios) if server_pids else None,
        "machine_cpu_us_per_req": _per(w.machine_busy_s * 1e6, r.ios),
        "machine_own_cpu_us_per_req": _per(own * 1e6, r.ios),
        "others_cpu_s": round(w.others_s, 3),
        # Busy CPU charged neither to the server, nor to fio, nor to visible other processes:
        # kernel threads, interrupts, and work of processes too short-lived to be seen.
        "unattributed_cpu_s": round(own - (w.proc_s if server_pids else 0)
                                    - r.client_cpu_s, 3),
    })
    if s0 and s1 and s1[1] > s0[1]:
        # the server's accounting: payload bytes its CPU copied per payload byte served
        served = s1[1] - s0[1]
        rec["server_copies_per_byte"] = round((s1[0] - s0[0]) / served, 3)
        # Of those, zero-copy sends the kernel copied anyway (always, on loopback), and the
        # rest: copies made by shunt's own code.
        zc = s1[2] - s0[2]
        rec["kernel_zc_copies_per_byte"] = round(zc / served, 3)
        rec["code_copies_per_byte"] = round((s1[0] - s0[0] - zc) / served, 3)
    return rec
