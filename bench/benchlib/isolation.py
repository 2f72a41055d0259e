"""isolation.py: the throttled setup of the overlap experiment: the image on a loop device whose
reads are limited by a cgroup v1 blkio throttle, and a network namespace whose loopback carries
a token-bucket qdisc. Every piece is removed by the cleanup stack; stale pieces left by a killed
run (named after its pid) are removed at start."""
import os
import re
import shutil

from . import procs

BLKIO = "/sys/fs/cgroup/blkio"
PREFIX = "shunt-bench-"


def _pid_alive(pid):
    return os.path.exists(f"/proc/{pid}")


def remove_stale(workdir_base):
    """Remove namespaces, cgroups, loop devices and work directories of earlier runs whose
    process is gone."""
    r = procs.run(["ip", "netns", "list"], 10)
    for m in re.finditer(rf"^{PREFIX}(\d+)", r.out, re.M):
        if not _pid_alive(int(m.group(1))):
            procs.run(["ip", "netns", "del", m.group(0)], 10)
    if os.path.isdir(BLKIO):
        for name in os.listdir(BLKIO):
            m = re.fullmatch(rf"{PREFIX}(\d+)", name)
            if m and not _pid_alive(int(m.group(1))):
                rmdir_cgroup(os.path.join(BLKIO, name))
    r = procs.run(["losetup", "-l", "-n", "-O", "NAME,BACK-FILE"], 10)
    for line in r.out.splitlines():
        parts = line.split(None, 1)
        m = re.search(rf"/{PREFIX}(\d+)/", parts[1]) if len(parts) == 2 else None
        if m and not _pid_alive(int(m.group(1))):
            procs.run(["losetup", "-d", parts[0]], 10)
    for name in os.listdir(workdir_base):
        if re.fullmatch(rf"{PREFIX}\d+", name) and not _pid_alive(int(name[len(PREFIX):])):
            shutil.rmtree(os.path.join(workdir_base, name), ignore_errors=True)


def rmdir_cgroup(path, root=BLKIO):
    """Remove the cgroup at path (gone already: nothing to do); a process still in it goes
    back to root, the hierarchy's root group (cgroup v1's blkio, or v2's)."""
    try:
        with open(os.path.join(path, "cgroup.procs")) as f:
            pids = f.read().split()
        for pid in pids:
            with open(os.path.join(root, "cgroup.procs"), "w") as f:
                f.write(pid)
        os.rmdir(path)
    except FileNotFoundError:
        pass


class Throttled:
    """The loop device, blkio cgroup and network namespace of one benchmark run."""

    def __init__(self, image, disk_bps, net_bps, mtu=16384, burst=65536):
        self.name = f"{PREFIX}{os.getpid()}"
        self.disk_bps, self.net_bps = disk_bps, net_bps
        self.loop = self._loop_attach(image)
        with open(f"/sys/block/{os.path.basename(self.loop)}/dev") as f:
            self.majmin = f.read().strip()
        self.cgroup = os.path.join(BLKIO, self.name)
        os.mkdir(self.cgroup)
        procs.CLEANUP.push(f"remove cgroup {self.cgroup}", lambda: rmdir_cgroup(self.cgroup))
        with open(os.path.join(self.cgroup, "blkio.throttle.read_bps_device"), "w") as f:
            f.write(f"{self.majmin} {disk_bps}\n")
        self.netns = self.name
        procs.check(["ip", "netns", "add", self.netns])
        procs.CLEANUP.push(f"delete netns {self.netns}",
                           lambda: procs.run(["ip", "netns", "del", self.netns], 10))
        procs.check(["ip", "-n", self.netns, "link", "set", "lo", "mtu", str(mtu), "up"])
        procs.check(["tc", "-n", self.netns, "qdisc", "add", "dev", "lo", "root", "tbf",
                     "rate", f"{net_bps * 8}bit", "burst", str(burst), "latency", "50ms"])

    def _loop_attach(self, image):
        # The loop device reads its file with O_DIRECT: the host disk, not a second page cache,
        # sits under the throttle. The image lives in a directory named after our pid, which
        # is how remove_stale() recognises a loop device of a killed run.
        loop = procs.check(["losetup", "--find", "--show", "--direct-io=on", image]).strip()
        procs.CLEANUP.push(f"detach {loop}", lambda: procs.run(["losetup", "-d", loop], 10))
        return loop

    def wrap(self, in_cgroup=True, in_netns=True):
        """argv prefix that runs a command inside the cgroup and/or the namespace."""
        w = []
        if in_cgroup:
            w += ["sh", "-c", 'echo $$ > "$0" && exec "$@"',
                  os.path.join(self.cgroup, "cgroup.procs")]
        if in_netns:
            w += ["ip", "netns", "exec", self.netns]
        return w

    def disk_read_bytes(self):
        """Bytes read from the loop device by the cgroup so far (blkio.throttle stats)."""
        with open(os.path.join(self.cgroup, "blkio.throttle.io_service_bytes")) as f:
            for line in f:
                parts = line.split()
                if len(parts) == 3 and parts[0] == self.majmin and parts[1] == "Read":
                    return int(parts[2])
        return 0


def have_throttle_support():
    """A reason string when the overlap setup cannot work here, else None."""
    if os.geteuid() != 0:
        return "needs root"
    if not os.path.isfile(os.path.join(BLKIO, "blkio.throttle.read_bps_device")):
        return f"no cgroup v1 blkio throttle at {BLKIO}"
    for tool in ("ip", "tc", "losetup", "iperf3"):
        if not shutil.which(tool):
            return f"{tool} not installed"
    return None
