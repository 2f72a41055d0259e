"""procs.py: child processes for bench/compare: bounded foreground runs with their CPU usage
(from wait4's rusage), background processes in their own sessions, and the cleanup stack that
undoes everything the benchmark set up, on normal exit, on error and on Ctrl-C."""
import os
import signal
import subprocess
import sys
import tempfile
import time


class Cleanup:
    """A LIFO stack of undo actions; each runs once, errors are reported and skipped."""

    def __init__(self):
        self._stack = []

    def push(self, what, fn):
        item = (what, fn)
        self._stack.append(item)
        return item

    def pop(self, item, run=True):
        if item in self._stack:
            self._stack.remove(item)
            if run:
                self._call(item)

    def run_all(self):
        # A second Ctrl-C must not leave namespaces or loop devices behind.
        old = signal.signal(signal.SIGINT, signal.SIG_IGN)
        try:
            while self._stack:
                self._call(self._stack.pop())
        finally:
            signal.signal(signal.SIGINT, old)

    @staticmethod
    def _call(item):
        what, fn = item
        try:
            fn()
        except Exception as e:  # keep undoing the rest
            log(f"cleanup: {what}: {e}")


CLEANUP = Cleanup()
_T0 = time.monotonic()


def log(msg):
    print(f"[{time.monotonic() - _T0:6.1f}s] {msg}", file=sys.stderr, flush=True)


def elapsed():
    return time.monotonic() - _T0


class Interrupted(Exception):
    """Raised by SIGTERM/SIGHUP/SIGALRM so that cleanup runs as on Ctrl-C."""


def install_signal_handlers():
    def handler(signum, _frame):
        raise Interrupted(signal.Signals(signum).name)
    for s in (signal.SIGTERM, signal.SIGHUP, signal.SIGALRM):
        signal.signal(s, handler)
    # Ctrl-C too, even when started from a shell that set SIGINT to ignored (background jobs).
    signal.signal(signal.SIGINT, signal.default_int_handler)


class Result:
    """The outcome of run(): exit code, output, the child's CPU seconds and wall time."""

    def __init__(self, rc, out, err, cpu_s, wall_s, timed_out):
        self.rc, self.out, self.err = rc, out, err
        self.cpu_s, self.wall_s, self.timed_out = cpu_s, wall_s, timed_out

    @property
    def ok(self):
        return self.rc == 0 and not self.timed_out


def _kill_group(pid, sig=signal.SIGKILL):
    try:
        os.killpg(pid, sig)
    except ProcessLookupError:
        pass


def run(argv, timeout, env=None):
    """Run argv to completion (killed after `timeout` seconds) in its own process group.
    Returns a Result whose cpu_s counts the child and every descendant it waited for."""
    with tempfile.TemporaryFile() as out_f, tempfile.TemporaryFile() as err_f:
        t0 = time.monotonic()
        p = subprocess.Popen(argv, stdout=out_f, stderr=err_f, stdin=subprocess.DEVNULL,
                             env=env, start_new_session=True)
        timed_out, status, ru = False, 0, None
        try:
            while True:
                pid, status, ru = os.wait4(p.pid, os.WNOHANG)
                if pid:
                    break
                if time.monotonic() - t0 > timeout:
                    timed_out = True
                    _kill_group(p.pid)
                    _, status, ru = os.wait4(p.pid, 0)
                    break
                time.sleep(0.01)
        except BaseException:
            _kill_group(p.pid)
            try:
                os.wait4(p.pid, 0)
            except ChildProcessError:
                pass
            p.returncode = -9
            raise
        _kill_group(p.pid)  # stray grandchildren
        p.returncode = os.waitstatus_to_exitcode(status)
        wall = time.monotonic() - t0
        out_f.seek(0)
        err_f.seek(0)
        return Result(p.returncode, out_f.read().decode(errors="replace"),
                      err_f.read().decode(errors="replace"),
                      ru.ru_utime + ru.ru_stime, wall, timed_out)


def spawn(argv, log_path, env=None):
    """Start argv in the background in its own session; stdout and stderr go to log_path.
    The process is killed by the cleanup stack if nobody stops it first."""
    f = open(log_path, "ab")
    p = subprocess.Popen(argv, stdout=f, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                         env=env, start_new_session=True)
    f.close()
    p._cleanup_item = CLEANUP.push(f"kill {argv[0]} (pid {p.pid})", lambda: stop(p, 2))
    return p


def stop(p, timeout=5):
    """SIGTERM p's process group, SIGKILL after `timeout` seconds; reap it."""
    if p.poll() is None:
        _kill_group(p.pid, signal.SIGTERM)
        try:
            p.wait(timeout)
        except subprocess.TimeoutExpired:
            _kill_group(p.pid)
            p.wait()
    else:
        _kill_group(p.pid)
    item = getattr(p, "_cleanup_item", None)
    if item:
        CLEANUP.pop(item, run=False)
    return p.returncode


def kill_tree(root_pid, sig=signal.SIGTERM):
    """Signal root_pid and every live descendant (for daemons that left our session)."""
    from . import sysstat
    for pid in sysstat.descendants(root_pid):
        try:
            os.kill(pid, sig)
        except ProcessLookupError:
            pass


def check(argv, timeout=30):
    """Run a setup command that must succeed; raise RuntimeError with its stderr otherwise."""
    r = run(argv, timeout)
    if not r.ok:
        raise RuntimeError(f"{' '.join(argv)}: rc={r.rc} {r.err.strip()[-400:]}")
    return r.out
