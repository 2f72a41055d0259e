#!/usr/bin/python3
# tests/tools/limits_client.py: raw-socket probes of the server's limits
# (tests/interop/faults_limits.sh). Each subcommand prints "ok - x" / "not ok - x".
#   handshake PORT TIMEOUT      silent and trickling clients are closed after TIMEOUT;
#                               an idle client past the handshake is not
#   maxconn PORT N              N connections work, the N+1th gets no export, a freed
#                               slot is usable again
#   pipeline PORT PID LEN N [MiB]  N READs of LEN bytes pipelined without reading
#                               replies: the server's RSS grows less than MiB (512)
#   pipeline_read PORT LEN N    N pipelined READs whose replies are read: all answered
#   bigoption PORT              1 MiB options get NBD_REP_ERR_TOO_BIG (or a close)
import socket
import struct
import sys
import time

import nbdraw as R

results = []


def check(cond, what):
    results.append(bool(cond))
    print("%s - %s" % ("ok" if cond else "not ok", what), flush=True)


def read_works(s, handle=1, length=4096):
    """One READ on an established simple-reply connection; True if it succeeds."""
    try:
        s.settimeout(10)
        s.sendall(R.request(R.NBD_CMD_READ, handle, 0, length))
        err, h = R.read_simple_reply(s)
        if err == 0:
            R.recv_exact(s, length)
        return err == 0 and h == handle
    except (R.Closed, OSError, ValueError):
        return False


def cmd_handshake(port, timeout):
    t = float(timeout)
    slack = max(4.0, t / 2)
    # 1. Connects and sends nothing.
    s = R.connect(port)
    took = R.wait_closed(s, t + slack)
    check(took is not None and took >= t * 0.5,
          "a silent client is closed after the handshake timeout (%s s; timeout %g s)" %
          ("%.1f" % took if took is not None else "still open after %g" % (t + slack), t))
    s.close()
    # 2. Trickles the handshake one byte at a time, never finishing it.
    s = R.connect(port)
    t0 = time.monotonic()
    closed = None
    try:
        R.read_greeting(s)
        R.send_client_flags(s)
        msg = struct.pack(">QII", R.NBD_NEW_VERSION, R.NBD_OPT_GO, 4096)
        s.settimeout(0.5)
        for i in range(int((t + slack) / 0.5)):
            s.send(msg[i % len(msg):i % len(msg) + 1] if i < len(msg) else b"a")
            try:
                if s.recv(1) == b"":
                    closed = time.monotonic() - t0
                    break
            except socket.timeout:
                pass
    except (OSError, R.Closed):
        closed = time.monotonic() - t0
    check(closed is not None and closed <= t + slack,
          "a client trickling its handshake byte by byte is closed too (%s)" %
          ("after %.1f s" % closed if closed is not None else "still open after %g s" % (t + slack)))
    s.close()
    # 3. Finishes the handshake, then idles longer than the timeout: must stay.
    s, size, flags = R.handshake(port, b"disk")
    time.sleep(t + 1)
    check(read_works(s), "a client idle for %g s after its handshake still reads" % (t + 1))
    s.close()


def cmd_maxconn(port, n):
    n = int(n)
    conns = []
    for i in range(n):
        s, _, _ = R.handshake(port, b"disk")
        conns.append(s)
    check(len(conns) == n, "%d connections finish their handshake" % n)
    # The N+1th: refused, closed, or refused an export; never served.
    extra_served = False
    how = "?"
    try:
        s, _, _ = R.handshake(port, b"disk", timeout=5)
        extra_served = read_works(s)
        how = "served a read" if extra_served else "handshake done, then no read"
        s.close()
    except ConnectionRefusedError:
        how = "connection refused"
    except (R.Closed, OSError) as e:
        how = "closed (%s)" % e
    except ValueError as e:
        how = "refused in the handshake (%s)" % e
    check(not extra_served, "connection %d is turned away: %s" % (n + 1, how))
    ok = [read_works(s, 10 + i) for i, s in enumerate(conns)]
    check(all(ok), "the first %d still read (%d of %d)" % (n, sum(ok), n))
    conns.pop().close()
    again = False
    deadline = time.monotonic() + 15
    while not again and time.monotonic() < deadline:
        time.sleep(0.1)
        try:
            s, _, _ = R.handshake(port, b"disk", timeout=3)
        except (R.Closed, OSError, ValueError):
            continue
        again = read_works(s)
        s.close()
    check(again, "after one leaves, a new connection is served")
    for s in conns:
        s.close()


def cmd_pipeline(port, pid, length, nreq, limit=512):
    pid, length, nreq, limit = int(pid), int(length), int(nreq), int(limit)
    try:  # reset VmHWM, so an earlier probe's peak does not count here
        with open("/proc/%d/clear_refs" % pid, "w") as f:
            f.write("5")
    except OSError:
        pass
    rss0 = R.proc_status(pid, "VmRSS")
    s, size, _ = R.handshake(port, b"disk")
    length = min(length, size)
    reqs = b"".join(R.request(R.NBD_CMD_READ, i, (i * length) % (size - length + 1) & ~4095, length)
                    for i in range(nreq))
    # Push requests for up to 3 s without ever reading a reply.
    s.setblocking(False)
    sent = 0
    t0 = time.monotonic()
    while sent < len(reqs) and time.monotonic() - t0 < 3:
        try:
            sent += s.send(reqs[sent:])
        except BlockingIOError:
            time.sleep(0.05)
    claimed = sent // 28 * length
    peak = 0
    for _ in range(30):
        time.sleep(0.1)
        peak = max(peak, R.proc_status(pid, "VmRSS"))
    hwm = R.proc_status(pid, "VmHWM")
    peak = max(peak, hwm)
    grow = (peak - rss0) // 1024
    print("# %d READs of %d KiB sent (%d MiB claimed) in %.1f s; RSS %d MiB -> peak %d MiB" %
          (sent // 28, length >> 10, claimed >> 20, time.monotonic() - t0, rss0 // 1024, peak // 1024))
    check(rss0 > 0 and claimed >= 2 * (limit << 20) and grow < limit,
          "%d KiB READs pipelined, replies never read: server RSS grew %d MiB (limit %d MiB, %d MiB claimed)" %
          (length >> 10, grow, limit, claimed >> 20))
    R.hard_close(s)


def cmd_pipeline_read(port, length, nreq):
    """Pipeline N READs from one thread while another reads every reply: a server that
    caps in-flight bytes must still make progress, even for requests above its cap."""
    import threading
    length, nreq = int(length), int(nreq)
    s, size, _ = R.handshake(port, b"disk")
    length = min(length, size)
    s.settimeout(30)
    errors = []

    def sender():
        try:
            for i in range(nreq):
                s.sendall(R.request(R.NBD_CMD_READ, i, (i * length) % (size - length + 1) & ~4095, length))
        except OSError as e:
            errors.append("send: %s" % e)

    t = threading.Thread(target=sender)
    t0 = time.monotonic()
    t.start()
    got = bad = 0
    try:
        while got < nreq:
            err, h = R.read_simple_reply(s)
            if err == 0:
                R.recv_exact(s, length)
            else:
                bad += 1
            got += 1
    except (R.Closed, OSError, ValueError) as e:
        errors.append("receive after %d replies: %s" % (got, e))
    t.join()
    check(got == nreq and bad == 0 and not errors,
          "%d pipelined %d KiB READs, replies read as they come: %d answered, %d errors, %.1f s %s" %
          (nreq, length >> 10, got, bad, time.monotonic() - t0, "; ".join(errors)))
    s.close()


def big_option(port, opt, payload):
    """Send one option with a large payload; return a description of the outcome."""
    s = R.connect(port)
    try:
        R.read_greeting(s)
        R.send_client_flags(s)
        try:
            R.send_option(s, opt, payload)
        except OSError as e:
            return "closed", "closed while sending (%s)" % e
        _, rtype, _ = R.read_option_reply(s)
        if rtype == R.NBD_REP_ERR_TOO_BIG:
            # The stream must still be in step (or closed): a GO now works or fails cleanly.
            try:
                R.send_option(s, R.NBD_OPT_ABORT)
                R.read_option_reply(s)
            except (R.Closed, OSError):
                pass
            return "too_big", "NBD_REP_ERR_TOO_BIG"
        return "other", "reply 0x%x" % rtype
    except (R.Closed, OSError) as e:
        return "closed", "closed (%s)" % e
    finally:
        s.close()


def cmd_bigoption(port):
    mib = 1 << 20
    name = b"a" * (mib - 6)
    res, how = big_option(port, R.NBD_OPT_GO, R.go_payload(name))
    check(res in ("too_big", "closed"), "NBD_OPT_GO with a 1 MiB payload: %s" % how)
    res, how = big_option(port, R.NBD_OPT_INFO, R.go_payload(name))
    check(res in ("too_big", "closed"), "NBD_OPT_INFO with a 1 MiB payload: %s" % how)
    res, how = big_option(port, 0x4242, b"\0" * mib)
    check(res in ("too_big", "closed") or how == "reply 0x%x" % R.NBD_REP_ERR_UNSUP,
          "an unknown option with a 1 MiB payload: %s" % how)
    s, _, _ = R.handshake(port, b"disk")
    check(read_works(s), "a normal client is served afterwards")
    s.close()


def main():
    cmds = {"handshake": cmd_handshake, "maxconn": cmd_maxconn, "pipeline": cmd_pipeline,
            "pipeline_read": cmd_pipeline_read, "bigoption": cmd_bigoption}
    cmds[sys.argv[1]](int(sys.argv[2]), *sys.argv[3:])
    return 0 if results and all(results) else 1


if __name__ == "__main__":
    sys.exit(main())
