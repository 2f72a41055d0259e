"""workloads.py: the main workloads against one running server, hot (image in the page cache)
and cold (caches dropped before each run), and the cold 4 MiB reads with their share of local
O_DIRECT throughput and the page-cache growth while serving."""
import os

from . import fio, measure, procs, sbench, sysstat


def prewarm(path):
    """Read the whole image through the page cache."""
    procs.run(["dd", f"if={path}", "of=/dev/null", "bs=4M"], 120)


def _one(cfg, running, workload, cache, time_based):
    stats = running.stats_snapshot if running.stats else None
    if workload in fio.SHUNT_BENCH:
        opts = sbench.args(workload, cfg.runtime, cfg.image_size)
        return measure.client_record(
            [running.pid], lambda: sbench.run(cfg.shunt, running.uri, opts, cfg.runtime + 60),
            1, stats=stats)
    args = fio.job_args(workload, cfg.runtime, cfg.image_size, time_based)
    return measure.fio_record([running.pid], [], fio.nbd_target(running.uri), args,
                              os.path.join(cfg.workdir, "fio.json"), cfg.runtime + 60,
                              stats=stats)


def hot_order(workloads):
    """Reads first, so that they see the prewarmed cache and not the writes' dirty pages."""
    return [w for w in workloads if w in fio.READ_WORKLOADS] + \
        [w for w in workloads if w not in fio.READ_WORKLOADS]


def hot(cfg, running, workload):
    """One workload on a warm page cache (call prewarm() first); writes are synced after."""
    rec = _one(cfg, running, workload, "hot", True)
    if workload not in fio.READ_WORKLOADS:
        os.sync()  # write back outside the measured window
    return rec


def cold_list(workloads):
    """The cold runs to make: each read workload run by fio, then the cold 4 MiB reads."""
    return [w for w in workloads if w in fio.READ_WORKLOADS and w not in fio.SHUNT_BENCH] + \
        fio.COLD_READS


def cold(cfg, running, w):
    """One cold run of workload w, caches dropped first; returns its record. Cold runs read
    each byte at most once (not time based). Give each one a freshly started server: pages a
    server keeps mapped (shunt datapath=mmap) survive drop_caches."""
    sysstat.drop_caches()
    with sysstat.CacheSampler(cfg.image) as c:
        rec = _one(cfg, running, w, "cold", False)
    rec["page_cache_growth_mib"] = round(c.peak_growth_mib, 1)
    rec["image_cache_mib"] = round(c.image_peak_mib, 1)
    return rec
