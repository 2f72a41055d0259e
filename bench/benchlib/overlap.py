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


def net_limit(cfg, thr):
    """iperf3 -Z inside the namespace, at least 3 s (TCP needs a moment to fill the bucket)."""
    return refs.iperf3(cfg.workdir, max(3, cfg.runtime), wrap=thr.wrap(in_cgroup=False),
                       netns=thr.netns)


def limits(cfg, thr):
    """Measured limits: the network's MB/s (iperf3 -Z in the netns), and per workload the
    disk's MB/s, throttled (fio O_DIRECT on the loop device, in the cgroup) and unthrottled (the
    same reads from outside the cgroup).

    Why the unthrottled figure matters: the blkio throttle grants its budget per 100 ms window
    (30 MB at 300 MB/s) and lets any request through at once while the window's budget lasts.
    A server that reads a request, then sends it, with no readahead, uses the disk at well under
    300 MB/s on average, so its reads run at the disk's unthrottled speed, and its rate is
    1 / (1/raw + 1/net), not the textbook 1 / (1/disk + 1/net)."""
    net = net_limit(cfg, thr)
    disk = steady_disk(cfg, thr)
    raw = {}
    for w in fio.OVERLAP_WORKLOADS:
        rec = refs.local_direct(thr.loop, w, cfg.runtime, cfg.workdir, cfg.image_size)
        raw[w] = rec["mbps"]
    return disk, raw, net


def setup(cfg):
    return isolation.Throttled(cfg.image, cfg.disk_bps, cfg.net_bps)


def measure_server(cfg, spec, thr):
    """Yield (workload, record) for one server started inside the throttled setup; the shares
    are added by add_shares() once the limits are final."""
    for w in fio.OVERLAP_WORKLOADS:
        # A fresh server per run: pages a server keeps mapped (shunt datapath=mmap) would
        # survive drop_caches and turn the next run's disk reads into cache hits.
        running = servers.start(spec, thr.loop, cfg.workdir, wrap=thr.wrap(), netns=thr.netns)
        try:
            sysstat.drop_caches()
            read0 = thr.disk_read_bytes()
            args = fio.job_args(w, cfg.runtime, cfg.image_size)
            with sysstat.CacheSampler(thr.loop) as c:
                rec = measure.fio_record([running.pid], thr.wrap(in_cgroup=False),
                                         fio.nbd_target(running.uri), args,
                                         os.path.join(cfg.workdir, "fio-overlap.json"),
                                         cfg.runtime + 60, stats=running.stats_snapshot
                                         if running.stats else None)
            disk_bytes = thr.disk_read_bytes() - read0
            rec.update({
                "disk_bytes_per_byte_served": round(disk_bytes / rec["io_bytes"], 3)
                if rec["io_bytes"] else None,
                "page_cache_growth_mib": round(c.peak_growth_mib, 1),
                "image_cache_mib": round(c.image_peak_mib, 1),
            })
        finally:
            running.stop()
        yield w, rec


def add_shares(rec, w, disk, raw, net_mbps):
    """Throughput against min(disk, net), the no-overlap model, and the read-then-send model
    with the disk at its unthrottled speed (see limits())."""
    model = 1 / (1 / disk[w] + 1 / net_mbps)
    model_raw = 1 / (1 / raw[w] + 1 / net_mbps)
    rec.update({
        "disk_mbps": disk[w], "disk_unthrottled_mbps": raw[w], "net_mbps": net_mbps,
        "share_of_min": round(rec["mbps"] / min(disk[w], net_mbps), 3),
        "share_of_no_overlap_model": round(rec["mbps"] / model, 3),
        "share_of_read_then_send_model": round(rec["mbps"] / model_raw, 3),
    })
    return rec
