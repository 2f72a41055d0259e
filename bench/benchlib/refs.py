"""refs.py: the reference measurements of a run: iperf3 -Z (sendfile) over a loopback, and local
O_DIRECT reads of the image (fio io_uring) at each request size and depth the servers see."""
import json
import math
import os
import time

from . import fio, measure, procs, servers, sysstat

GiB = 1 << 30


def iperf3(workdir, runtime, wrap=(), netns=None):
    """iperf3 -Z from a client to a server on 127.0.0.1 (inside netns when given)."""
    port = servers.free_port()
    srv = procs.spawn(list(wrap) + ["iperf3", "-s", "-1", "-p", str(port)],
                      os.path.join(workdir, f"iperf3-{port}.log"))
    try:
        deadline = time.monotonic() + 10
        while not servers._listening_pids(port, netns):
            if srv.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("iperf3 server did not start")
            time.sleep(0.05)
        with sysstat.CpuWindow([srv.pid]) as w:
            r = procs.run(list(wrap) + ["iperf3", "-c", "127.0.0.1", "-p", str(port), "-Z",
                                        "-t", str(math.ceil(runtime)), "-J"], runtime + 20)
        if not r.ok:
            raise RuntimeError(f"iperf3 client failed: {r.err.strip()[-200:]}")
        end = json.loads(r.out)["end"]["sum_received"]
        gib = end["bytes"] / GiB
        return {
            "mbps": round(end["bytes"] / end["seconds"] / 1e6, 1), "io_bytes": end["bytes"],
            "seconds": round(end["seconds"], 3),
            "sender_cpu_s_per_gib": round(r.cpu_s / gib, 4),
            "receiver_cpu_s_per_gib": round(w.proc_s / gib, 4),
            "machine_cpu_s_per_gib": round(w.machine_busy_s / gib, 4),
            "machine_own_cpu_s_per_gib": round(max(0.0, w.machine_busy_s - w.others_s) / gib, 4),
            "others_cpu_s": round(w.others_s, 3),
        }
    finally:
        procs.stop(srv, 2)


def local_direct(image, workload, runtime, workdir, size, time_based=True, wrap=(), extra=()):
    """fio io_uring O_DIRECT against the image (or device) itself."""
    args = fio.job_args(workload, runtime, size, time_based) + list(extra)
    rec = measure.fio_record([], list(wrap), fio.file_target(image), args,
                             os.path.join(workdir, "fio-local.json"), runtime + 60)
    return rec
