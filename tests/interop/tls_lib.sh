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
