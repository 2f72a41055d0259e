"""servers.py: the NBD servers bench/compare measures (shunt per data path, nbdkit, qemu-nbd
twice, nbd-server): how each is started on a free 127.0.0.1 port, how we know it is ready and
which pid its CPU is charged to, and how it is stopped."""
import os
import re
import signal
import socket
import time

from . import procs, sysstat

EXPORT = "bench"
SHUNT_DATAPATHS = ["copy", "splice", "direct", "mmap", "auto"]
_shunt_stats = False  # set by shunt_supports_serve() when `shunt serve` has --stats FILE


def stats_path(workdir, port):
    return os.path.join(workdir, f"shunt-{port}.stats.json")


class Spec:
    """One server configuration: `server` is the program, `variant` the data path or options."""

    def __init__(self, server, variant, build):
        self.server, self.variant, self._build = server, variant, build

    @property
    def key(self):
        return f"{self.server}:{self.variant}" if self.variant else self.server

    def argv(self, port, image, workdir):
        """(argv, export name in the URI, pid file the server writes or None)."""
        return self._build(port, image, workdir)


def _nbdkit(port, image, _wd):
    return ["nbdkit", "-f", "-i", "127.0.0.1", "-p", str(port), "file", image], "", None


def _nbdkit_null(port, image, _wd):
    """nbdkit's null plugin: answers every read with zeroes and touches no storage (a
    reference: what a server costs the machine when it does nothing but the protocol)."""
    size = os.path.getsize(image) if os.path.isfile(image) else 1 << 30
    return ["nbdkit", "-f", "-i", "127.0.0.1", "-p", str(port), "null", str(size)], "", None


def _qemu_nbd(opts):
    def build(port, image, _wd):
        return (["qemu-nbd", "-f", "raw", "-b", "127.0.0.1", "-p", str(port), "-x", EXPORT,
                 "-t", "-e", "16"] + opts + [image], EXPORT, None)
    return build


def _nbd_server(port, image, wd):
    conf = os.path.join(wd, f"nbd-server-{port}.conf")
    pidfile = os.path.join(wd, f"nbd-server-{port}.pid")
    with open(conf, "w") as f:
        f.write(f"[generic]\nlistenaddr = 127.0.0.1\nport = {port}\n"
                f"[{EXPORT}]\nexportname = {image}\n")
    # nbd-server forks a daemon (and one child per client); -d would serve one client only.
    return ["nbd-server", "-C", conf, "-p", pidfile], EXPORT, pidfile


def _shunt(path, datapath):
    def build(port, image, wd):
        export = f"{EXPORT}={image}" + (f",datapath={datapath}" if datapath else "")
        stats = ["--stats", stats_path(wd, port)] if _shunt_stats else []
        return [path, "serve", "--listen", f"127.0.0.1:{port}"] + stats + [export], EXPORT, None
    return build


def null_spec():
    """The reference server that does no storage work (nbdkit null)."""
    return Spec("nbdkit", "null", _nbdkit_null)


def peer_specs():
    return [
        Spec("nbdkit", "file", _nbdkit),
        Spec("qemu-nbd", "none+io_uring", _qemu_nbd(["--cache=none", "--aio=io_uring"])),
        Spec("qemu-nbd", "defaults", _qemu_nbd([])),
        Spec("nbd-server", "defaults", _nbd_server),
    ]


def shunt_supports_serve(path):
    if not (path and os.access(path, os.X_OK)):
        return False
    global _shunt_stats
    r = procs.run([path, "serve", "--help"], 10)
    _shunt_stats = "--stats" in r.out + r.err
    # Some --help texts exit non-zero; the dispatcher's "unknown command" is what says no.
    return r.rc == 0 or (r.rc not in (126, 127) and not r.timed_out
                         and "unknown command" not in r.out + r.err)


def shunt_specs(path, datapaths=None):
    """One spec per data path; the caller falls back to shunt_default_spec() if none starts."""
    return [Spec("shunt", dp, _shunt(path, dp)) for dp in (datapaths or SHUNT_DATAPATHS)]


def shunt_default_spec(path):
    return Spec("shunt", "default", _shunt(path, None))


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class StartError(Exception):
    pass


class Running:
    """A started server: `pid` is the process its CPU is charged to (with its descendants)."""

    def __init__(self, spec, proc, pid, port, uri, log_path, stats=None):
        self.spec, self.proc, self.pid = spec, proc, pid
        self.port, self.uri, self.log_path = port, uri, log_path
        self.stats = stats  # shunt's --stats file, or None
        self._cleanup_item = procs.CLEANUP.push(f"stop {spec.key}", self.stop)

    def stats_snapshot(self):
        """(bytes copied, payload bytes served, bytes of zero-copy sends the kernel copied) from
        shunt's --stats file; the first includes the third (shunt's accounting counts both),
        refreshed with SIGUSR1; None when there are no stats."""
        if not self.stats:
            return None
        import json
        try:
            before = os.stat(self.stats).st_mtime_ns
        except OSError:
            before = None
        os.kill(self.pid, signal.SIGUSR1)
        for _ in range(100):
            try:
                if os.stat(self.stats).st_mtime_ns != before:
                    break
            except OSError:
                pass
            time.sleep(0.01)
        try:
            with open(self.stats) as f:
                data = json.load(f)
        except (OSError, ValueError):
            return None
        ex = data.get("exports", [])
        return (sum(e.get("cpu_copied_bytes", 0) for e in ex),
                sum(e.get("bytes_read", 0) + e.get("bytes_written", 0) for e in ex),
                sum(e.get("zc_copied_bytes", 0) for e in ex))

    def stop(self):
        if self.pid != self.proc.pid:  # a daemon outside our process group
            procs.kill_tree(self.pid, signal.SIGTERM)
            for _ in range(100):
                if not sysstat.descendants(self.pid):
                    break
                time.sleep(0.05)
            procs.kill_tree(self.pid, signal.SIGKILL)
        procs.stop(self.proc, 5)
        procs.CLEANUP.pop(self._cleanup_item, run=False)


def _listening_pids(port, netns):
    argv = ["ss"] + (["-N", netns] if netns else []) + ["-Htlnp", f"sport = :{port}"]
    r = procs.run(argv, 5)
    return {int(p) for p in re.findall(r"pid=(\d+)", r.out)}


def _tail(path, n=5):
    try:
        with open(path, errors="replace") as f:
            return " | ".join(line.strip() for line in f.readlines()[-n:])
    except OSError:
        return ""


def start(spec, image, workdir, wrap=(), netns=None, timeout=10):
    """Start spec serving `image`; wrap is an argv prefix (taskset, cgroup, ip netns exec).
    Returns a Running once the server's own process listens; raises StartError otherwise."""
    port = free_port()
    argv, export, pidfile = spec.argv(port, image, workdir)
    log_path = os.path.join(workdir, f"{spec.key.replace(':', '-')}-{port}.log")
    proc = procs.spawn(list(wrap) + argv, log_path)
    deadline = time.monotonic() + timeout
    pid = proc.pid
    try:
        while True:
            if pidfile:
                try:
                    with open(pidfile) as f:
                        pid = int(f.read().split()[0])
                except (OSError, ValueError, IndexError):
                    pid = proc.pid
            owners = _listening_pids(port, netns)
            if owners and owners & set(sysstat.descendants(pid)):
                break
            if proc.poll() is not None and not pidfile:
                raise StartError(f"exited with status {proc.returncode}: {_tail(log_path)}")
            if time.monotonic() > deadline:
                raise StartError(f"not listening after {timeout}s: {_tail(log_path)}")
            time.sleep(0.05)
    except BaseException:
        if pid != proc.pid:
            procs.kill_tree(pid, signal.SIGKILL)
        procs.stop(proc, 2)
        raise
    stats = stats_path(workdir, port) if spec.server == "shunt" and _shunt_stats else None
    return Running(spec, proc, pid, port, f"nbd://127.0.0.1:{port}/{export}", log_path, stats)
