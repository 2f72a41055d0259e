"""sysstat.py: what bench/compare reads from /proc: CPU time of a process tree (utime + stime of
all threads, plus reaped children), the whole machine's non-idle time, the page cache size, and
dropping the caches."""
import os

CLK_TCK = os.sysconf("SC_CLK_TCK")


def _all_stats():
    """pid -> (ppid, ticks) for every process; ticks = utime+stime+cutime+cstime."""
    stats = {}
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/stat") as f:
                data = f.read()
        except OSError:
            continue
        rest = data[data.rindex(")") + 2:].split()
        # rest[0] is field 3 (state); field n is rest[n - 3].
        stats[int(name)] = (int(rest[1]), sum(int(x) for x in rest[11:15]))
    return stats


def descendants(root_pid, stats=None):
    """root_pid and all its live descendants."""
    stats = stats or _all_stats()
    children = {}
    for pid, (ppid, _) in stats.items():
        children.setdefault(ppid, []).append(pid)
    out, todo = [], [root_pid]
    while todo:
        pid = todo.pop()
        if pid in stats:
            out.append(pid)
            todo.extend(children.get(pid, []))
    return out


def tree_cpu_s(root_pids):
    """CPU seconds used so far by the given processes, all their threads and descendants
    (live ones directly, exited ones through their parents' cutime/cstime)."""
    stats = _all_stats()
    ticks = 0
    seen = set()
    for root in root_pids:
        for pid in descendants(root, stats):
            if pid not in seen:
                seen.add(pid)
                ticks += stats[pid][1]
    return ticks / CLK_TCK


def thread_cpu_s(pid):
    """Thread name -> CPU seconds (utime + stime) of process pid's live threads, summed over
    threads of one name; {} when the process is gone."""
    out = {}
    try:
        tids = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return out
    for tid in tids:
        try:
            with open(f"/proc/{pid}/task/{tid}/stat") as f:
                data = f.read()
        except OSError:
            continue
        name = data[data.index("(") + 1:data.rindex(")")]
        rest = data[data.rindex(")") + 2:].split()
        out[name] = out.get(name, 0.0) + (int(rest[11]) + int(rest[12])) / CLK_TCK
    return out


def machine_cpu_s():
    """(busy, total) CPU seconds of the whole machine since boot; busy excludes idle and iowait."""
    with open("/proc/stat") as f:
        v = [int(x) for x in f.readline().split()[1:]]
    user, nice, system, idle, iowait, irq, softirq, steal = (v + [0] * 8)[:8]
    busy = user + nice + system + irq + softirq + steal
    return busy / CLK_TCK, (busy + idle + iowait) / CLK_TCK


def page_cache_mib():
    """Cached + Buffers from /proc/meminfo, in MiB."""
    total = 0
    with open("/proc/meminfo") as f:
        for line in f:
            key, val = line.split(":", 1)
            if key in ("Cached", "Buffers"):
                total += int(val.split()[0])
    return total / 1024


def resident_mib(path):
    """MiB of `path` (a file or a block device) now in the page cache, from mincore(2).
    Unlike Cached + Buffers, other users of the machine do not change it."""
    import ctypes
    libc = ctypes.CDLL(None, use_errno=True)
    libc.mmap.restype = ctypes.c_void_p
    libc.mmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int, ctypes.c_int,
                          ctypes.c_int, ctypes.c_long]
    libc.mincore.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_void_p]
    libc.munmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t]
    fd = os.open(path, os.O_RDONLY)
    try:
        size = os.lseek(fd, 0, os.SEEK_END)
        if size == 0:
            return 0.0
        addr = libc.mmap(None, size, 1, 1, fd, 0)  # PROT_READ, MAP_SHARED
        if addr in (None, ctypes.c_void_p(-1).value):
            raise OSError(ctypes.get_errno(), f"mmap {path}")
        try:
            page = os.sysconf("SC_PAGE_SIZE")
            vec = (ctypes.c_ubyte * ((size + page - 1) // page))()
            if libc.mincore(addr, size, vec) != 0:
                raise OSError(ctypes.get_errno(), f"mincore {path}")
            raw = bytes(vec)
            return (len(raw) - raw.count(0)) * page / (1 << 20)
        finally:
            libc.munmap(addr, size)
    finally:
        os.close(fd)


def drop_caches():
    os.sync()
    with open("/proc/sys/vm/drop_caches", "w") as f:
        f.write("3\n")


def loadavg():
    with open("/proc/loadavg") as f:
        return [float(x) for x in f.read().split()[:3]]


def _foreign_ticks(s0, s1, ours):
    """CPU ticks that processes outside `ours` (other users of the machine; kernel threads
    excluded) used between snapshots s0 and s1. An exited process's time reappears in its
    parent's cutime/cstime, so its part before s0 is taken out again."""
    ticks = 0
    for pid, (ppid, t1) in s1.items():
        if pid in ours or pid == 2 or ppid == 2:
            continue
        ticks += t1 - (s0[pid][1] if pid in s0 else 0)
    for pid, (ppid, t0) in s0.items():
        if pid not in s1 and pid not in ours and ppid != 2 and pid != 2:
            ticks -= t0
    return ticks


class CacheSampler:
    """Context manager: while it is active, a thread samples Cached + Buffers and the residency
    of `path` every `interval` seconds. After exit: start_mib, peak_growth_mib, end_growth_mib
    and image_peak_mib (the most of `path` seen in the cache at once). Sampling during the run
    matters for block devices: their cache is dropped when the server closes the last handle."""

    def __init__(self, path, interval=0.3):
        self.path, self.interval = path, interval

    def _sample(self):
        self._peak = max(self._peak, page_cache_mib())
        try:
            self.image_peak_mib = max(self.image_peak_mib, resident_mib(self.path))
        except OSError:
            pass

    def _loop(self):
        while not self._stop.wait(self.interval):
            self._sample()

    def __enter__(self):
        import threading
        self.start_mib = page_cache_mib()
        self._peak, self.image_peak_mib = self.start_mib, 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()
        self._sample()
        self.end_growth_mib = page_cache_mib() - self.start_mib
        self.peak_growth_mib = self._peak - self.start_mib
        return False


class CpuWindow:
    """Context manager: CPU seconds of some process trees and of the machine, and wall time,
    between enter and exit. machine_busy_s is all non-idle time from /proc/stat; others_s the
    part visible processes outside this harness and the measured servers used (other people's
    work on a shared machine), so machine_busy_s - others_s is the run's own share."""

    def __init__(self, pids=()):
        self.pids = list(pids)

    def _ours(self, stats):
        ours = set(descendants(os.getpid(), stats))
        for p in self.pids:
            ours.update(descendants(p, stats))
        return ours

    def __enter__(self):
        import time
        self._s0 = _all_stats()
        self._t0 = time.monotonic()
        self._m0 = machine_cpu_s()
        return self

    def __exit__(self, *exc):
        import time
        m1 = machine_cpu_s()
        self.wall_s = time.monotonic() - self._t0
        s1 = _all_stats()
        s0 = self._s0

        def tree(stats):
            seen = set()
            for p in self.pids:
                seen.update(descendants(p, stats))
            return sum(stats[p][1] for p in seen)
        self.proc_s = (tree(s1) - tree(s0)) / CLK_TCK
        self.machine_busy_s = m1[0] - self._m0[0]
        self.machine_total_s = m1[1] - self._m0[1]
        ours = self._ours(s0) | self._ours(s1)
        self.others_s = max(0.0, _foreign_ticks(s0, s1, ours) / CLK_TCK)
        return False
