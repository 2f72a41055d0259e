#!/usr/bin/env python3
"""bench/copy_compare/run.py: `shunt copy` against nbdcopy and `qemu-img convert`
on the same source and destination, in the same run (issue 4's benchmark).

For each scenario and tool it runs the copy REPEAT times and reports the best
wall time, throughput, and the client's CPU seconds per GiB (user + system, of
the copy process only; the nbdkit servers are not counted).  The target is:
shunt copy throughput >= nbdcopy's, at <= 0.7x its CPU per GiB.

Usage: bench/copy_compare/run.py [--size 1G] [--repeat 3] [--shunt build/shunt] [--json OUT]
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

def tools(shunt, src, dst, dst_is_file):
    t = {
        "shunt copy": [shunt, "copy", "--no-progress", src, dst],
        "nbdcopy": ["nbdcopy", src, dst],
        "qemu-img convert": ["qemu-img", "convert", "-f", "raw", "-O", "raw"] +
                            ([] if dst_is_file else ["-n"]) + [src, dst],
    }
    return t

def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--size", default="1G")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--shunt", default=os.path.join(os.path.dirname(__file__), "../../build/shunt"))
    ap.add_argument("--json")
    a = ap.parse_args()
    units = {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30}
    size = int(a.size[:-1]) * units[a.size[-1]] if a.size[-1] in units else int(a.size)
    shunt = os.path.abspath(a.shunt)
    tmp = tempfile.mkdtemp(prefix="shunt-copybench.")
    results = []
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
            for tool, _ in tools(shunt, "", "", dst_is_file).items():
                best = None
                for _ in range(a.repeat):
                    srv = None
                    if dst is None:
                        srv = Nbdkit("memory", str(size))
                        d = srv.uri
                    else:
                        d = dst
                        if os.path.exists(d):
                            os.unlink(d)
                    try:
                        dt, cpu = run_measured(tools(shunt, src, d, dst_is_file)[tool])
                    finally:
                        if srv:
                            srv.stop()
                    if best is None or dt < best[0]:
                        best = (dt, cpu)
                gib = size / (1 << 30)
                row = {"scenario": name, "tool": tool, "seconds": round(best[0], 3),
                       "mib_per_s": round(size / best[0] / (1 << 20), 1),
                       "cpu_s_per_gib": round(best[1] / gib, 3)}
                results.append(row)
                print("%-12s %-17s %7.3f s %8.1f MiB/s %7.3f CPU s/GiB" %
                      (name, tool, row["seconds"], row["mib_per_s"], row["cpu_s_per_gib"]), flush=True)
        src_srv.stop()
        for name in ("nbd-to-file", "file-to-nbd", "nbd-to-nbd"):
            r = {x["tool"]: x for x in results if x["scenario"] == name}
            s, n = r["shunt copy"], r["nbdcopy"]
            print("%-12s shunt/nbdcopy: throughput %.2fx, CPU per GiB %.2fx (target >= 1.0x, <= 0.7x)" %
                  (name, s["mib_per_s"] / n["mib_per_s"], s["cpu_s_per_gib"] / max(n["cpu_s_per_gib"], 1e-9)))
        if a.json:
            with open(a.json, "w") as f:
                json.dump({"size": size, "results": results}, f, indent=2)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)

if __name__ == "__main__":
    sys.exit(main())
