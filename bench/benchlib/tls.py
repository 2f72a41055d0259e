"""tls.py: the TLS experiment. shunt with its default options and nbdkit's file plugin, both
with --tls=require and the same X.509 server certificate, serve the same image; fio's nbd engine
reads it hot over nbds:// (libnbd's TLS), each TLS workload once per round, the servers in an
order rotated each round. Records of kind "tls", one per server, workload and round, then the
medians.

X.509 rather than a pre-shared key: libnbd refuses a URI's tls-psk-file (local file access)
unless the program allows it, and fio's nbd engine does not; with no file named, libnbd takes
the CA certificate from $HOME/.pki/libnbd, so the client runs with HOME pointing at one. After
the handshake both kinds of session encrypt the data alike (the same ciphers in GnuTLS)."""
import os
import subprocess

from . import rounds, servers, workloads

WORKLOADS = ["seqread", "randread"]
VARIANT = "tls-x509"


def _certtool(*args):
    subprocess.run(["certtool", *args], check=True, capture_output=True, timeout=60)


def make_certs(workdir):
    """(server certificate dir for --tls-certificates, a HOME whose .pki/libnbd trusts it)."""
    ca, srv = os.path.join(workdir, "tls-ca"), os.path.join(workdir, "tls-server")
    home = os.path.join(workdir, "tls-home")
    cli = os.path.join(home, ".pki", "libnbd")
    for d in (ca, srv, cli):
        os.makedirs(d, exist_ok=True)
    with open(os.path.join(ca, "ca.info"), "w") as f:
        f.write("cn = bench CA\nca\ncert_signing_key\nexpiration_days = 2\n")
    with open(os.path.join(srv, "server.info"), "w") as f:
        f.write("cn = localhost\ndns_name = localhost\nip_address = 127.0.0.1\n"
                "tls_www_server\nsigning_key\nencryption_key\nexpiration_days = 2\n")
    _certtool("--generate-privkey", "--key-type=ecdsa", "--outfile", f"{ca}/ca-key.pem")
    _certtool("--generate-self-signed", "--load-privkey", f"{ca}/ca-key.pem",
              "--template", f"{ca}/ca.info", "--outfile", f"{ca}/ca-cert.pem")
    _certtool("--generate-privkey", "--key-type=ecdsa", "--outfile", f"{srv}/server-key.pem")
    _certtool("--generate-certificate", "--load-ca-certificate", f"{ca}/ca-cert.pem",
              "--load-ca-privkey", f"{ca}/ca-key.pem", "--load-privkey", f"{srv}/server-key.pem",
              "--template", f"{srv}/server.info", "--outfile", f"{srv}/server-cert.pem")
    for d in (srv, cli):
        with open(f"{ca}/ca-cert.pem") as src, open(f"{d}/ca-cert.pem", "w") as dst:
            dst.write(src.read())
    return srv, home


def specs(shunt_path, certs, with_shunt):
    """nbdkit (file plugin) and shunt (default data path), both requiring TLS with the
    certificates in certs."""
    def nbdkit(port, image, _wd):
        return (["nbdkit", "-f", "-i", "127.0.0.1", "-p", str(port), "--tls=require",
                 f"--tls-certificates={certs}", "file", image], "", None)

    def shunt(port, image, wd):
        argv, export, pidfile = servers.shunt_default_spec(shunt_path).argv(port, image, wd)
        return (argv[:2] + ["--tls=require", "--tls-certificates", certs] + argv[2:], export,
                pidfile)
    out = [servers.Spec("nbdkit", VARIANT, nbdkit)]
    if with_shunt:
        out.insert(0, servers.Spec("shunt", VARIANT, shunt))
    return out


def tls_uri(running):
    """running's URI in libnbd's TLS form."""
    return "nbds://" + running.uri.split("://", 1)[1]


def measure(run, cfg, start, shunt_ok, log, summary):
    """Every TLS workload on every TLS server, cfg.repeat rounds, then the median records.
    start(spec) returns a servers.Running or None (the caller records why)."""
    certs, home = make_certs(cfg.workdir)
    entries = specs(cfg.shunt, certs, shunt_ok)
    old_home = os.environ.get("HOME")
    os.environ["HOME"] = home   # fio's libnbd finds the CA in $HOME/.pki/libnbd
    try:
        _rounds(run, cfg, start, entries, log, summary)
    finally:
        if old_home is None:
            del os.environ["HOME"]
        else:
            os.environ["HOME"] = old_home
    _medians(run, cfg, entries)


def _rounds(run, cfg, start, entries, log, summary):
    for i in range(cfg.repeat):
        rnd = i + 1
        for spec in rounds.order(entries, i):
            ids = dict(server=spec.server, variant=spec.variant, round=rnd)
            running = start(spec)
            if not running:
                for w in WORKLOADS:
                    run.add("tls", workload=w, status="error", reason="server did not start",
                            **ids)
                continue
            running.uri = tls_uri(running)
            try:
                workloads.prewarm(cfg.image)
                for w in WORKLOADS:
                    try:
                        rec = workloads.hot(cfg, running, w)
                    except (RuntimeError, OSError, ValueError, KeyError) as e:
                        log(f"{spec.key} TLS {w} (round {rnd}): ERROR {e}")
                        run.add("tls", workload=w, status="error", reason=str(e), **ids)
                        continue
                    run.add("tls", workload=w, status="ok", **ids, **rec)
                    log(f"{spec.key} TLS {w} (round {rnd}): {summary(w, rec)}")
            finally:
                running.stop()


def _medians(run, cfg, entries):
    raw = [r for r in run.records if r["kind"] == "tls" and rounds.is_round(r)]
    for spec in entries:
        for w in WORKLOADS:
            recs = [r for r in raw if r.get("server") == spec.server
                    and r.get("variant") == spec.variant and r.get("workload") == w]
            m = rounds.median_record(recs, cfg.repeat) if recs else None
            ids = dict(server=spec.server, variant=spec.variant, workload=w)
            if m:
                run.add("tls", **{**m, **ids, "status": "ok", "round": "median"})
            else:
                run.add("tls", status="error", round="median",
                        reason=f"no round of {cfg.repeat} succeeded", **ids)
