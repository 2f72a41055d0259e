#!/bin/bash
# tls_cipher.sh: the cipher the server picks.  By default its own order wins
# over the client's: AES-128-GCM where the CPU has AES instructions (and the
# carry-less multiply of GCM), ChaCha20-Poly1305 where it has not, for
# libnbd's GnuTLS client and Python's OpenSSL client, which both list
# AES-256-GCM first; with PSK as with X.509.  --tls-priority replaces that
# order (config key tls-priority too); a client offering none of its ciphers
# fails the handshake and the server goes on serving; a bad string is
# refused at start.
. "$(dirname "$0")/../lib.sh"
. "$(dirname "$0")/tls_lib.sh"
need_tls_tools nbdinfo python3

make_certs "$T/certs" || { tap_fail "certtool makes a CA and certificates"; tap_done; exit 1; }
make_psk "$T/keys.psk" alice
S=$T/certs/server C=$T/certs/alice

# What GnuTLS accelerates here decides the default order.
flags=$(grep -m1 -E '^(flags|Features)' /proc/cpuinfo)
if grep -qw aes <<<"$flags" && grep -qwE 'pclmulqdq|pmull' <<<"$flags"; then
  WANT=AES-128-GCM WANT_SUITE=TLS_AES_128_GCM_SHA256
else
  WANT=CHACHA20-POLY1305 WANT_SUITE=TLS_CHACHA20_POLY1305_SHA256
fi
echo "# CPU flags say the server should prefer $WANT"

# The suite of the last "TLS established" line in the server's log.
last_cipher() {
  grep -o 'TLS established: ([^,]*' "$T/shunt.log" | tail -n 1 | sed 's/.*-(\([A-Z0-9-]*\))$/\1/'
}

start_shunt -v --tls=require --tls-certificates "$S" --tls-psk "$T/keys.psk" mem=4M,backend=memory \
  || { tap_fail "server starts with X.509 and PSK credentials"; tap_done; exit 1; }
U="nbds://127.0.0.1:$PORT/mem"
tap_check "nbdinfo over TLS (X.509)" nbdinfo "$U?tls-certificates=$C"
got=$(last_cipher)
tap_check "X.509, libnbd's client: the server's choice $WANT (got $got)" test "$got" = "$WANT"
tap_check "nbdinfo over TLS (PSK)" nbdinfo "nbds://alice@127.0.0.1:$PORT/mem?tls-psk-file=$T/keys.psk"
got=$(last_cipher)
tap_check "PSK, libnbd's client: the server's choice $WANT (got $got)" test "$got" = "$WANT"
python3 "$RAW_NBD" cipher "$PORT" "$S/ca-cert.pem" >"$T/py" 2>&1
tap_check "Python's client (AES-256-GCM first) gets $WANT_SUITE" grep -qx "cipher=$WANT_SUITE" "$T/py"
stop_shunt; st=$?
tap_check "server exits 0" test "$st" -eq 0

# One cipher only, from the command line: every client gets it or nothing.
: >"$T/shunt.log"
start_shunt -v --tls=require --tls-certificates "$S" --tls-psk "$T/keys.psk" \
  --tls-priority 'NORMAL:-CIPHER-ALL:+CHACHA20-POLY1305' mem=4M,backend=memory \
  || { tap_fail "server starts with --tls-priority"; tap_done; exit 1; }
tap_ok "server starts with --tls-priority restricted to ChaCha20-Poly1305"
U="nbds://127.0.0.1:$PORT/mem"
tap_check "nbdinfo over TLS (X.509)" nbdinfo "$U?tls-certificates=$C"
got=$(last_cipher)
tap_check "X.509: the operator's cipher CHACHA20-POLY1305 (got $got)" test "$got" = CHACHA20-POLY1305
tap_check "nbdinfo over TLS (PSK): the key exchanges were added" \
  nbdinfo "nbds://alice@127.0.0.1:$PORT/mem?tls-psk-file=$T/keys.psk"
got=$(last_cipher)
tap_check "PSK: the operator's cipher CHACHA20-POLY1305 (got $got)" test "$got" = CHACHA20-POLY1305
python3 "$RAW_NBD" cipher "$PORT" "$S/ca-cert.pem" ECDHE-ECDSA-AES256-GCM-SHA384 >"$T/py2" 2>&1
tap_check "a client offering only AES-256-GCM fails the handshake" grep -qx 'handshake=failed' "$T/py2"
tap_check "... and the server logs the refusal" grep -q 'TLS refused' "$T/shunt.log"
python3 "$RAW_NBD" cipher "$PORT" "$S/ca-cert.pem" ECDHE-ECDSA-CHACHA20-POLY1305 >"$T/py3" 2>&1
tap_check "a TLS 1.2 client offering ChaCha20-Poly1305 gets it" \
  grep -qx 'cipher=ECDHE-ECDSA-CHACHA20-POLY1305' "$T/py3"
tap_check "still serving after the failed handshake" nbdinfo "$U?tls-certificates=$C"
stop_shunt; st=$?
tap_check "server exits 0" test "$st" -eq 0

# The config file's key, the same way.
cat >"$T/shunt.conf" <<CONF
tls = require
tls-certificates = $S
tls-priority = NORMAL:-CIPHER-ALL:+AES-256-GCM
[export mem]
path = 4M
backend = memory
CONF
: >"$T/shunt.log"
start_shunt -v -c "$T/shunt.conf" || { tap_fail "server starts with tls-priority in its config file"; tap_done; exit 1; }
U="nbds://127.0.0.1:$PORT/mem"
tap_check "nbdinfo over TLS (X.509), config file" nbdinfo "$U?tls-certificates=$C"
got=$(last_cipher)
tap_check "config key tls-priority: AES-256-GCM (got $got)" test "$got" = AES-256-GCM
stop_shunt

# A bad string is refused before anything is served.
if "$SHUNT" serve --tls=require --tls-certificates "$S" --tls-priority 'NORMAL:+NO-SUCH-CIPHER' \
     mem=4M,backend=memory >"$T/bad" 2>&1; then
  tap_fail "a bad --tls-priority is refused at start"
else
  tap_ok "a bad --tls-priority is refused at start"
fi
tap_check "... naming the bad part" grep -q "at '+NO-SUCH-CIPHER'" "$T/bad"
printf 'tls-priority = NORMAL:%%NO-SUCH-KEYWORD\n[export mem]\npath = 4M\nbackend = memory\n' >"$T/bad.conf"
if "$SHUNT" serve -c "$T/bad.conf" >"$T/bad2" 2>&1; then
  tap_fail "a bad tls-priority in the config file is refused at start"
else
  tap_ok "a bad tls-priority in the config file is refused at start"
fi
tap_check "... naming the key" grep -q 'tls-priority' "$T/bad2"
tap_done
