"""sbench.py: the workloads run by `shunt bench` (shunt's own NBD client) instead of fio:
its options for a workload of fio.WORKLOADS, and its JSON report parsed into a FioResult.

`--no-extended` keeps the protocol what every peer speaks (structured replies with compact
headers), so that no server gets a different wire format from this client."""
import json

from . import fio, procs


def available(shunt):
    """None when `shunt bench` can run here, else why not."""
    r = procs.run([shunt, "bench", "--help"], 10)
    if not r.ok or "--no-extended" not in r.out:
        return f"{shunt} has no 'bench --no-extended'"
    return None


def args(workload, runtime, size):
    """shunt bench options (before the URI) for one workload over a target of `size` bytes."""
    rw, bs, qd, jobs, _ = fio.WORKLOADS[workload]
    if jobs != 1:
        raise ValueError(f"{workload}: shunt bench runs one connection per run here")
    return ["--pattern", "rand" if rw.startswith("rand") else "seq",
            "--read-percent", "100" if "read" in rw else "0",
            "--block-size", str(bs), "--queue-depth", str(qd),
            "--duration", f"{int(runtime * 1000)}ms", "--size", str(size // bs * bs),
            "--no-extended", "--json"]


def run(shunt, uri, opts, timeout):
    """Run `shunt bench` and parse its report; raise RuntimeError on failure or on any failed
    request (a client that got errors measured nothing worth comparing)."""
    r = procs.run([shunt, "bench"] + list(opts) + [uri], timeout)
    try:
        d = json.loads(r.out[r.out.index("{"):])
    except ValueError:
        d = None
    if not r.ok or d is None or d.get("errors"):
        why = (d or {}).get("first_error") or (r.err + r.out).strip()[-300:]
        raise RuntimeError(f"shunt bench failed (rc={r.rc}"
                           f"{', timed out' if r.timed_out else ''}): {why}")
    if d.get("replies") == "extended":
        raise RuntimeError("shunt bench negotiated extended headers despite --no-extended")
    secs = float(d["seconds"])
    # Its CPU share: the process's rusage (connect and exit included) over the run time. It
    # has one thread, which issues and reaps every request, like one fio nbd job.
    share = float(d["cpu_seconds"]) / secs if secs else None
    return fio.FioResult(io_bytes=int(d["ops"]) * int(d["block_size"]), seconds=secs,
                         ios=int(d["ops"]), lat_ms=d["latency_us"]["p50"] / 1000.0,
                         client_cpu_s=r.cpu_s, job_cpu_share=share)
