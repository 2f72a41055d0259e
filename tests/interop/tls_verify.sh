#!/bin/bash
# tls_verify.sh: client certificates.  --tls-verify-peer accepts a certificate
# from the server's CA and refuses no certificate or one from another CA;
# --tls-allow-dn admits only matching DNs; qemu-img presents a client cert.
. "$(dirname "$0")/../lib.sh"
. "$(dirname "$0")/tls_lib.sh"
need_tls_tools nbdinfo qemu-img

make_certs "$T/certs" || { tap_fail "certtool makes certificates"; tap_done; exit 1; }
S=$T/certs/server
start_shunt -v --tls=require --tls-certificates "$S" --tls-verify-peer mem=8M,backend=memory \
  || { tap_fail "server starts with --tls-verify-peer"; tap_done; exit 1; }
U="nbds://127.0.0.1:$PORT/mem"
nbdinfo "$U?tls-certificates=$T/certs/alice" >"$T/good" 2>&1
tap_check "verify-peer: a client certificate from the CA is accepted" grep -q 'export-size: 8388608' "$T/good"
tap_check "verify-peer: the server logs the client DN" grep -q 'client CN=alice,O=Shunt Test' "$T/shunt.log"
if nbdinfo "$U?tls-certificates=$T/certs/nocert" >"$T/none" 2>&1; then
  tap_fail "verify-peer: a client without a certificate is refused"
else tap_ok "verify-peer: a client without a certificate is refused"; fi
if nbdinfo "$U?tls-certificates=$T/certs/mallory" >"$T/mal" 2>&1; then
  tap_fail "verify-peer: a certificate from another CA is refused"
else tap_ok "verify-peer: a certificate from another CA is refused"; fi
tap_check "verify-peer: the refusal is logged" grep -q 'TLS refused' "$T/shunt.log"
qemu-img info --object "tls-creds-x509,id=t0,endpoint=client,dir=$T/certs/alice" --image-opts \
  "driver=nbd,host=127.0.0.1,port=$PORT,export=mem,tls-creds=t0" >"$T/q" 2>&1
tap_check "verify-peer: qemu-img with a client certificate" grep -q 'virtual size: 8 MiB' "$T/q"
stop_shunt

start_shunt --tls=require --tls-certificates "$S" --tls-allow-dn 'CN=alice,*' mem=8M,backend=memory \
  || { tap_fail "server starts with --tls-allow-dn"; tap_done; exit 1; }
U="nbds://127.0.0.1:$PORT/mem"
nbdinfo "$U?tls-certificates=$T/certs/alice" >"$T/a" 2>&1
tap_check "allow-dn: CN=alice is admitted" grep -q 'export-size: 8388608' "$T/a"
if nbdinfo "$U?tls-certificates=$T/certs/bob" >"$T/b" 2>&1; then
  tap_fail "allow-dn: CN=bob is refused"
else tap_ok "allow-dn: CN=bob is refused"; fi
tap_check "allow-dn: the refusal names the DN" grep -q "DN 'CN=bob,O=Shunt Test' is not in the allowed list" "$T/shunt.log"
if nbdinfo "$U?tls-certificates=$T/certs/mallory" >"$T/m" 2>&1; then
  tap_fail "allow-dn: CN=alice from another CA is refused"
else tap_ok "allow-dn: CN=alice from another CA is refused"; fi
stop_shunt

# The same from a config file, where a DN pattern may contain commas.
cat >"$T/v.conf" <<CONF
tls = require
tls-certificates = $S
tls-verify-peer = yes
tls-allow-dn = CN=bob,O=Shunt Test
[export mem]
path = 8M
backend = memory
CONF
start_shunt --config "$T/v.conf" || { tap_fail "server starts from a config file"; tap_done; exit 1; }
U="nbds://127.0.0.1:$PORT/mem"
tap_check "config file: tls-allow-dn with commas admits CN=bob,O=Shunt Test" \
  nbdinfo "$U?tls-certificates=$T/certs/bob"
if nbdinfo "$U?tls-certificates=$T/certs/alice" >/dev/null 2>&1; then
  tap_fail "config file: CN=alice refused"
else tap_ok "config file: CN=alice refused"; fi
stop_shunt
tap_done
