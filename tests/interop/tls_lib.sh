# tests/interop/tls_lib.sh: sourced by the TLS and access tests (not a test:
# not executable).  make_certs DIR makes, with certtool (gnutls-bin):
#   DIR/server/{ca-cert,server-cert,server-key}.pem   the server's --tls-certificates
#   DIR/alice/{ca-cert,client-cert,client-key}.pem    client cert CN=alice, same CA
#   DIR/bob/...                                       client cert CN=bob, same CA
#   DIR/mallory/...                                   client cert from another CA
#   DIR/nocert/ca-cert.pem                            only the CA (no client cert)
# make_psk FILE IDENTITY...: a keys file with a random key per identity.
# Keys are ECDSA P-256: quick to make.

_certtool() { certtool "$@" >/dev/null 2>&1; }

_make_ca() {   # DIR CN
  printf 'cn = %s\nca\ncert_signing_key\nexpiration_days = 2\n' "$2" >"$1/ca.info"
  _certtool --generate-privkey --key-type=ecdsa --outfile "$1/ca-key.pem" &&
  _certtool --generate-self-signed --load-privkey "$1/ca-key.pem" --template "$1/ca.info" \
    --outfile "$1/ca-cert.pem"
}

_make_client() {   # CADIR OUTDIR CN
  mkdir -p "$2"
  printf 'organization = Shunt Test\ncn = %s\ntls_www_client\nsigning_key\nencryption_key\nexpiration_days = 2\n' \
    "$3" >"$2/client.info"
  _certtool --generate-privkey --key-type=ecdsa --outfile "$2/client-key.pem" &&
  _certtool --generate-certificate --load-ca-certificate "$1/ca-cert.pem" \
    --load-ca-privkey "$1/ca-key.pem" --load-privkey "$2/client-key.pem" \
    --template "$2/client.info" --outfile "$2/client-cert.pem" || return 1
  # The client trusts the server's CA (which is the good CA in every case).
  cp "$CERTS/ca/ca-cert.pem" "$2/ca-cert.pem"
}

make_certs() {
  CERTS=$1
  mkdir -p "$CERTS/ca" "$CERTS/badca" "$CERTS/server" "$CERTS/nocert"
  _make_ca "$CERTS/ca" "Shunt Test CA" || return 1
  _make_ca "$CERTS/badca" "Some Other CA" || return 1
  printf 'organization = Shunt Test\ncn = localhost\ndns_name = localhost\nip_address = 127.0.0.1\nip_address = ::1\ntls_www_server\nsigning_key\nencryption_key\nexpiration_days = 2\n' \
    >"$CERTS/server/server.info"
  _certtool --generate-privkey --key-type=ecdsa --outfile "$CERTS/server/server-key.pem" &&
  _certtool --generate-certificate --load-ca-certificate "$CERTS/ca/ca-cert.pem" \
    --load-ca-privkey "$CERTS/ca/ca-key.pem" --load-privkey "$CERTS/server/server-key.pem" \
    --template "$CERTS/server/server.info" --outfile "$CERTS/server/server-cert.pem" || return 1
  cp "$CERTS/ca/ca-cert.pem" "$CERTS/server/ca-cert.pem"
  cp "$CERTS/ca/ca-cert.pem" "$CERTS/nocert/ca-cert.pem"
  _make_client "$CERTS/ca" "$CERTS/alice" alice &&
  _make_client "$CERTS/ca" "$CERTS/bob" bob &&
  _make_client "$CERTS/badca" "$CERTS/mallory" alice
}

make_psk() {   # FILE IDENTITY...
  local f=$1 id; shift
  : >"$f"
  for id in "$@"; do echo "$id:$(head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n')" >>"$f"; done
  chmod 600 "$f"
}

need_tls_tools() {
  local t
  for t in certtool "$@"; do
    command -v "$t" >/dev/null || { tap_skip "TLS tests" "$t not installed"; tap_done; exit 0; }
  done
}

# The raw NBD client's handshake probes, for checks libnbd cannot make (see
# probe_main in tests/tools/nbdraw.py).
RAW_NBD="$(dirname "${BASH_SOURCE[0]}")/../tools/nbdraw.py"

# ---- Stats and reads over TLS (need $PY with python3-libnbd, $T, $SHUNT_PID, --stats "$T/st.json") ----
# delta BEFORE AFTER KEY...: differences of numbers of export $EXPORT (disk).
delta() {
  EXPORT=${EXPORT:-disk} "${PY:-python3}" -c 'import json,os,sys
a,b=(next(e for e in json.load(open(f))["exports"] if e["name"] == os.environ["EXPORT"]) for f in sys.argv[1:3])
g=lambda e,k: e["bytes_by_path"][k] if k in e["bytes_by_path"] else e[k]
print(*(g(b,k)-g(a,k) for k in sys.argv[3:]))' "$@"
}
# dump_stats COPY: SIGUSR1, wait for the stats file to be rewritten, copy it to COPY.
dump_stats() {
  rm -f "$T/st.json"; kill -USR1 "$SHUNT_PID"
  for _ in $(seq 50); do [ -s "$T/st.json" ] && cp "$T/st.json" "$1" && return 0; sleep 0.1; done
  return 1
}
# reads URI IMG SPEC: read (offset, length) pairs over TLS, up to 8 in
# flight, and compare each with the file; SPEC: "seq" (1 MiB reads of the
# whole image), "odd" (odd offsets and lengths), "small" (64 x 4 KiB).
reads() {
  "${PY:-python3}" - "$@" <<'PY'
import os, random, sys, nbd
uri, img, spec = sys.argv[1:4]
size = os.path.getsize(img)
if spec == "seq":
    rq = [(o, 1 << 20) for o in range(0, size, 1 << 20)]
elif spec == "odd":
    rq = [(0, 1), (12345, 4097), ((7 << 20) + 1, (1 << 20) + 3), ((33 << 20) - 5, 65535),
          ((20 << 20) + 511, 3 << 20), (size - 77, 77), (4096 * 3 + 1, 16383), ((50 << 20) + 9, 16385)]
else:
    random.seed(7)
    rq = [(random.randrange(size // 4096) * 4096, 4096) for _ in range(64)]
h = nbd.NBD()
h.set_uri_allow_local_file(True)
h.set_request_block_size(False)   # unaligned requests allowed
h.set_strict_mode(0)
h.connect_uri(uri)
bad = 0
with open(img, "rb") as f:
    for i in range(0, len(rq), 8):
        batch = rq[i:i + 8]
        bufs = [nbd.Buffer(n) for _, n in batch]
        pending = {h.aio_pread(b, o) for b, (o, _) in zip(bufs, batch)}
        while pending:
            pending = {c for c in pending if not h.aio_command_completed(c)}
            if pending:
                h.poll(-1)
        for b, (o, n) in zip(bufs, batch):
            f.seek(o)
            if b.to_bytearray() != f.read(n):
                bad += 1
h.shutdown()
print("%d reads, %d bytes, %d differ" % (len(rq), sum(n for _, n in rq), bad))
sys.exit(1 if bad else 0)
PY
}
