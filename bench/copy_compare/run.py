#!/usr/bin/env python3
"""bench/copy_compare/run.py: `shunt copy` against nbdcopy and `qemu-img convert`
on the same source and destination, in the same run.

For each scenario and tool it runs the copy REPEAT times and reports the median
wall time, throughput, and the median of the client's CPU seconds per GiB (user +
system, of the copy process only; the nbdkit servers are not counted).  The runs
of one scenario are interleaved (tool A, B, C, A, B, C, ...) so that a burst of
load from elsewhere hits every tool alike.  The target is:
shunt copy throughput >= nbdcopy's, at <= 0.7x its CPU per GiB.

Usage: bench/copy_compare/run.py [--size 1G] [--repeat 3] [--shunt build/shunt] [--json OUT]
         [--only SCENARIO[,SCENARIO]] [--tools TOOL[,TOOL]] [--shunt-args "ARGS"]
Scenarios (data is random, fully allocated, so every byte moves):
  nbd-to-file   nbdkit file (source in the page cache) -> local file
  file-to-nbd   local file -> nbdkit memory
  nbd-to-nbd    nbdkit file -> nbdkit memory
"""
import argparse, json, os, resource, shutil, socket, subprocess, sys, tempfile, time

def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p

def wait_port(port, timeout=10):
    end = time.time() + timeout
    while time.time() < end:
        try:
            socket.create_connection(("127.0.0.1", port), 0.2).close()
            return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError("server on port %d did not start" % port)

class Nbdkit:
    def __init__(self, *args):
        self.port = free_port()
        self.p = subprocess.Popen(["nbdkit", "-f", "-i", "127.0.0.1", "-p", str(self.port)] + list(args),
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_port(self.port)
        self.uri = "nbd://127.0.0.1:%d/" % self.port
    def stop(self):
        self.p.terminate()
        self.p.wait()

def run_measured(cmd):
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.monotonic()
    r = subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    dt = time.monotonic() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if r.returncode != 0:
        raise RuntimeError("%s failed: %s" % (" ".join(cmd), r.stderr.decode()[-500:]))
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return dt, cpu

def tools(shunt, src, dst, dst_is_file, shunt_args=()):
    t = {
        "shunt copy": [shunt, "copy", "--no-progress"] + list(shunt_args) + [src, dst],
        "nbdcopy": ["nbdcopy", src, dst],
        "qemu-img convert": ["qemu-img", "convert", "-f", "raw", "-O", "raw"] +
                            ([] if dst_is_file else ["-n"]) + [src, dst],
    }
    return t

SCENARIOS = ("nbd-to-file", "file-to-nbd", "nbd-to-nbd")

def median(xs):
    xs = sorted(xs)
    n = len(xs)
    return xs[n // 2] if n % 2 else (xs[n // 2 - 1] + xs[n // 2]) / 2

def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--size", default="1G")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--shunt", default=os.path.join(os.path.dirname(__file__), "../../build/shunt"))
    ap.add_argument("--only", default=",".join(SCENARIOS), help="comma-separated scenarios")
    ap.add_argument("--tools", default="shunt copy,nbdcopy,qemu-img convert",
                    help="comma-separated tools")
    ap.add_argument("--shunt-args", default="", help="extra options for shunt copy")
    ap.add_argument("--json")
    a = ap.parse_args()
    units = {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30}
    size = int(a.size[:-1]) * units[a.size[-1]] if a.size[-1] in units else int(a.size)
    shunt = os.path.abspath(a.shunt)
    only = [x for x in a.only.split(",") if x]
    wanted = [x for x in a.tools.split(",") if x]
    for x in only:
        if x not in SCENARIOS:
            ap.error("unknown scenario %s" % x)
    for x in wanted:
        if x not in tools("", "", "", True):
            ap.error("unknown tool %s" % x)
    tmp = tempfile.mkdtemp(prefix="shunt-copybench.")
    results = []
    load0 = os.getloadavg()
    try:
        src_file = os.path.join(tmp, "src.img")
        with open(src_file, "wb") as f:
            left = size
            while left:
                n = min(left, 16 << 20)
                f.write(os.urandom(n))
                left -= n
        subprocess.run(["cat", src_file], stdout=subprocess.DEVNULL)  # warm the page cache
        dst_file = os.path.join(tmp, "dst.img")
        src_srv = Nbdkit("file", src_file)
        scenarios = [("nbd-to-file", src_srv.uri, dst_file, True),
                     ("file-to-nbd", src_file, None, False),
                     ("nbd-to-nbd", src_srv.uri, None, False)]
        for name, src, dst, dst_is_file in scenarios:
            if name not in only:
                continue
            runs = {t: [] for t in wanted}
            for _ in range(a.repeat):
                for tool in wanted:
                    srv = None
                    if dst is None:
                        srv = Nbdkit("memory", str(size))
                        d = srv.uri
                    else:
                        d = dst
                        if os.path.exists(d):
                            os.unlink(d)
                    try:
                        cmd = tools(shunt, src, d, dst_is_file, a.shunt_args.split())[tool]
                        runs[tool].append(run_measured(cmd))
                    finally:
                        if srv:
                            srv.stop()
            gib = size / (1 << 30)
            for tool in wanted:
                dt = median([r[0] for r in runs[tool]])
                cpu = median([r[1] for r in runs[tool]])
                row = {"scenario": name, "tool": tool, "seconds": round(dt, 3),
                       "mib_per_s": round(size / dt / (1 << 20), 1),
                       "cpu_s_per_gib": round(cpu / gib, 3),
                       "runs": [{"seconds": round(r[0], 3), "cpu_s": round(r[1], 3)}
                                for r in runs[tool]]}
                results.append(row)
                print("%-12s %-17s %7.3f s %8.1f MiB/s %7.3f CPU s/GiB   (runs: %s)" %
                      (name, tool, row["seconds"], row["mib_per_s"], row["cpu_s_per_gib"],
                       ", ".join("%.2fs/%.2f" % (r[0], r[1] / gib) for r in runs[tool])),
                      flush=True)
        src_srv.stop()
        for name in only:
            r = {x["tool"]: x for x in results if x["scenario"] == name}
            if "shunt copy" not in r or "nbdcopy" not in r:
                continue
            s, n = r["shunt copy"], r["nbdcopy"]
            print("%-12s shunt/nbdcopy: throughput %.2fx, CPU per GiB %.2fx (target >= 1.0x, <= 0.7x)" %
                  (name, s["mib_per_s"] / n["mib_per_s"], s["cpu_s_per_gib"] / max(n["cpu_s_per_gib"], 1e-9)))
        load1 = os.getloadavg()
        print("load average: start %.2f %.2f %.2f, end %.2f %.2f %.2f" % (load0 + load1))
        if a.json:
            with open(a.json, "w") as f:
                json.dump({"size": size, "repeat": a.repeat, "shunt_args": a.shunt_args,
                           "load_start": load0, "load_end": load1, "results": results}, f, indent=2)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)

if __name__ == "__main__":
    sys.exit(main())
