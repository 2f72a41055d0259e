"""qosdisk.py: the disk of bench/qos: an image on a loop device (O_DIRECT to its file), its
reads and writes limited in IOPS and bytes per second by a cgroup throttle (cgroup v2 io.max
where the io controller is on the unified hierarchy, else cgroup v1 blkio.throttle.*), so that
the device, not the CPU, is the bottleneck. Servers run inside the cgroup, clients outside.
Every piece is removed by the cleanup stack; stale pieces of a killed run are removed by
isolation.remove_stale() (v1) and remove_stale_v2()."""
import os
import re

from . import isolation, procs

UNIFIED = ["/sys/fs/cgroup", "/sys/fs/cgroup/unified"]


def _v2_root():
    """The cgroup v2 mount whose io controller can be enabled, or None."""
    for root in UNIFIED:
        try:
            with open(os.path.join(root, "cgroup.controllers")) as f:
                if "io" in f.read().split():
                    return root
        except OSError:
            continue
    return None


def why_not():
    """A reason string when no IOPS throttle can be set up here, else None."""
    if os.geteuid() != 0:
        return "needs root (loop devices, cgroups)"
    if _v2_root():
        return None
    if os.path.isfile(os.path.join(isolation.BLKIO, "blkio.throttle.read_iops_device")):
        return None
    return ("no cgroup v2 io controller and no cgroup v1 blkio throttle "
            f"({', '.join(UNIFIED)}, {isolation.BLKIO})")


def remove_stale_v2():
    root = _v2_root()
    if not root:
        return
    for name in os.listdir(root):
        m = re.fullmatch(rf"{isolation.PREFIX}(\d+)", name)
        if m and not os.path.exists(f"/proc/{m.group(1)}"):
            isolation.rmdir_cgroup(os.path.join(root, name), root)


class Disk:
    """The throttled loop device of one run. riops/wiops in requests per second, rbps/wbps in
    bytes per second (0: no limit on that axis)."""

    def __init__(self, image, riops, wiops, rbps, wbps):
        self.limits = dict(riops=riops, wiops=wiops, rbps=rbps, wbps=wbps)
        name = f"{isolation.PREFIX}{os.getpid()}"
        self.loop = procs.check(["losetup", "--find", "--show", "--direct-io=on",
                                 image]).strip()
        procs.CLEANUP.push(f"detach {self.loop}",
                           lambda: procs.run(["losetup", "-d", self.loop], 10))
        with open(f"/sys/block/{os.path.basename(self.loop)}/dev") as f:
            self.majmin = f.read().strip()
        # A non-rotational queue gets the throttle's short time slice (20 ms, not 100 ms):
        # requests held for the budget are let go in smaller bursts. It is read when the
        # first limit is set, so it goes first.
        self.nonrot = False
        try:
            with open(f"/sys/block/{os.path.basename(self.loop)}/queue/rotational", "w") as f:
                f.write("0\n")
            self.nonrot = True
        except OSError:
            pass
        root = _v2_root()
        self.v2 = root is not None
        self.root = root or isolation.BLKIO
        self.cgroup = os.path.join(self.root, name)
        os.mkdir(self.cgroup)
        procs.CLEANUP.push(f"remove cgroup {self.cgroup}",
                           lambda: isolation.rmdir_cgroup(self.cgroup, self.root))
        if self.v2:
            sub = os.path.join(root, "cgroup.subtree_control")
            with open(sub, "w") as f:
                f.write("+io")
            keys = " ".join(f"{k}={v if v else 'max'}" for k, v in self.limits.items())
            with open(os.path.join(self.cgroup, "io.max"), "w") as f:
                f.write(f"{self.majmin} {keys}\n")
        else:
            files = {"riops": "read_iops_device", "wiops": "write_iops_device",
                     "rbps": "read_bps_device", "wbps": "write_bps_device"}
            for k, v in self.limits.items():
                if v:
                    with open(os.path.join(self.cgroup, f"blkio.throttle.{files[k]}"),
                              "w") as f:
                        f.write(f"{self.majmin} {v}\n")

    @property
    def kind(self):
        return "cgroup v2 io.max" if self.v2 else "cgroup v1 blkio.throttle"

    def wrap(self):
        """argv prefix that runs a command inside the throttled cgroup."""
        return ["sh", "-c", 'echo $$ > "$0" && exec "$@"',
                os.path.join(self.cgroup, "cgroup.procs")]

    def device_ios(self):
        """Requests the cgroup's processes sent to the loop device so far (reads + writes)."""
        if self.v2:
            try:
                with open(os.path.join(self.cgroup, "io.stat")) as f:
                    for line in f:
                        parts = line.split()
                        if parts and parts[0] == self.majmin:
                            kv = dict(p.split("=", 1) for p in parts[1:])
                            return int(kv.get("rios", 0)) + int(kv.get("wios", 0))
            except OSError:
                pass
            return 0
        total = 0
        with open(os.path.join(self.cgroup, "blkio.throttle.io_serviced")) as f:
            for line in f:
                parts = line.split()
                if len(parts) == 3 and parts[0] == self.majmin and parts[1] in ("Read",
                                                                                "Write"):
                    total += int(parts[2])
        return total
