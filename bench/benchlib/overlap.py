"""overlap.py: large reads with disk and network both limited to about the same rate (the
synchronized-sends experiment): measures the two limits in the same run, then each server's
throughput against min(disk, network) and against the no-overlap model 1/(1/disk + 1/net), and
the disk bytes read per byte served."""
import os

from . import fio, isolation, measure, refs, servers, sysstat


def steady_disk(cfg, thr):
    """{workload: MB/s} of fio O_DIRECT reads on the loop device from inside the cgroup."""
    disk = {}
    for w in fio.OVERLAP_WORKLOADS:
        rec = refs.local_direct(thr.loop, w, cfg.runtime, cfg.workdir, cfg.image_size,
                                wrap=thr.wrap(in_netns=False))
        disk[w] = rec["mbps"]
    return disk


def limits(cfg, thr):
    """Measured limits: the network's MB/s (iperf3 -Z in the netns) and per workload the disk's
    MB/s (fio O_DIRECT on the loop device, in the cgroup), steady and after pauses.

    The blkio throttle hands out budget per 100 ms slice and lets it accumulate while the
    device is idle, so a disk that pauses while the network sends is faster on the next read.
    "after_pause" runs the same reads with a think time of one request's network time: it is
    the disk a read-then-send server really sees. At QD 1 the steady rate is also sometimes
    half the limit (requests meet the slice boundaries badly), which is why steady_disk() is
    measured again after the servers and the higher figure used."""
    net = refs.iperf3(cfg.workdir, cfg.runtime, wrap=thr.wrap(in_cgroup=False),
                      netns=thr.netns)
    disk = steady_disk(cfg, thr)
    after_pause = {}
    for w in fio.OVERLAP_WORKLOADS:
        bs = fio.WORKLOADS[w][1]
        pause_us = int(bs / (net["mbps"] * 1e6) * 1e6)
        # psync: a pread, then the pause, like a server that reads, then sends
        rec = refs.local_direct(thr.loop, w, cfg.runtime, cfg.workdir, cfg.image_size,
                                wrap=thr.wrap(in_netns=False),
                                extra=[f"--thinktime={pause_us}", "--ioengine=psync"])
        after_pause[w] = {"pause_us": pause_us, "lat_ms": rec["lat_ms"],
                          "mbps_while_reading": round(bs / (rec["lat_ms"] / 1e3) / 1e6, 1)}
    return disk, after_pause, net


def setup(cfg):
    return isolation.Throttled(cfg.image, cfg.disk_bps, cfg.net_bps)


def measure_server(cfg, spec, thr):
    """Yield (workload, record) for one server started inside the throttled setup; the shares
    are added by add_shares() once the limits are final."""
    running = servers.start(spec, thr.loop, cfg.workdir, wrap=thr.wrap(), netns=thr.netns)
    try:
        for w in fio.OVERLAP_WORKLOADS:
            sysstat.drop_caches()
            read0 = thr.disk_read_bytes()
            args = fio.job_args(w, cfg.runtime, cfg.image_size)
            with sysstat.CacheSampler(thr.loop) as c:
                rec = measure.fio_record([running.pid], thr.wrap(in_cgroup=False),
                                         fio.nbd_target(running.uri), args,
                                         os.path.join(cfg.workdir, "fio-overlap.json"),
                                         cfg.runtime + 60)
            disk_bytes = thr.disk_read_bytes() - read0
            rec.update({
                "disk_bytes_per_byte_served": round(disk_bytes / rec["io_bytes"], 3)
                if rec["io_bytes"] else None,
                "page_cache_growth_mib": round(c.peak_growth_mib, 1),
                "image_cache_mib": round(c.image_peak_mib, 1),
            })
            yield w, rec
    finally:
        running.stop()


def add_shares(rec, w, disk, after_pause, net_mbps):
    """Throughput against min(disk, net), the no-overlap model, and that model with the disk's
    speed after a pause."""
    model = 1 / (1 / disk[w] + 1 / net_mbps)
    burst = after_pause[w]["mbps_while_reading"]
    model_burst = 1 / (1 / burst + 1 / net_mbps)
    rec.update({
        "disk_mbps": disk[w], "net_mbps": net_mbps,
        "share_of_min": round(rec["mbps"] / min(disk[w], net_mbps), 3),
        "share_of_no_overlap_model": round(rec["mbps"] / model, 3),
        "share_of_no_overlap_model_after_pause": round(rec["mbps"] / model_burst, 3),
    })
    return rec
