#!/bin/bash
# tls_psk.sh: STARTTLS with pre-shared keys (--tls-psk, identity:hexkey lines as
# nbdkit and qemu use).  nbdinfo and nbdcopy (libnbd's tls-psk-file) work;
# a wrong key, an unknown identity and a plaintext client are refused.
. "$(dirname "$0")/../lib.sh"
. "$(dirname "$0")/tls_lib.sh"
need_tls_tools nbdinfo nbdcopy

make_psk "$T/keys.psk" alice bob
make_psk "$T/wrong.psk" alice
grep '^alice:' "$T/keys.psk" >"$T/alice.psk"
make_psk "$T/eve.psk" eve
head -c 2M /dev/urandom >"$T/src.bin"

start_shunt -v --tls=require --tls-psk "$T/keys.psk" mem=16M,backend=memory \
  || { tap_fail "server starts with --tls-psk"; tap_done; exit 1; }
tap_ok "server starts with --tls=require --tls-psk"
U="nbds://alice@127.0.0.1:$PORT/mem?tls-psk-file=$T/alice.psk"

nbdinfo "$U" >"$T/info" 2>&1
tap_check "nbdinfo over TLS-PSK sees the export" grep -q 'export-size: 16777216' "$T/info"
tap_check "... with TLS" grep -q 'with TLS' "$T/info"
tap_check "the server logs the PSK identity" grep -q 'PSK identity alice' "$T/shunt.log"
tap_check "nbdcopy writes over TLS-PSK" nbdcopy "$T/src.bin" "$U"
tap_check "nbdcopy reads back over TLS-PSK" nbdcopy "$U" "$T/back.bin"
tap_check "bytes read back equal bytes written" cmp -n $((2 << 20)) "$T/src.bin" "$T/back.bin"
# One WRITE of 8 MiB over TLS (its payload is decrypted into the receive buffer
# and charged against the caps a step at a time as it arrives), read back.
tap_check "an 8 MiB write in one request over TLS-PSK reads back" /usr/bin/python3 -c '
import os, sys, nbd
h = nbd.NBD()
h.set_uri_allow_local_file(True)
h.connect_uri(sys.argv[1])
data = os.urandom(8 << 20)
h.pwrite(data, 4096)
assert h.pread(len(data), 4096) == data
h.shutdown()' "$U"
tap_check "a second identity from the same file works" \
  nbdinfo "nbds://bob@127.0.0.1:$PORT/mem?tls-psk-file=$T/keys.psk"

if nbdinfo "nbds://alice@127.0.0.1:$PORT/mem?tls-psk-file=$T/wrong.psk" >"$T/wrong" 2>&1; then
  tap_fail "a wrong key is refused"
else tap_ok "a wrong key is refused"; fi
if nbdinfo "nbds://eve@127.0.0.1:$PORT/mem?tls-psk-file=$T/eve.psk" >"$T/eve" 2>&1; then
  tap_fail "an unknown identity is refused"
else tap_ok "an unknown identity is refused"; fi
tap_check "the server logs the refusal" grep -q 'TLS refused' "$T/shunt.log"
if nbdinfo "nbd://127.0.0.1:$PORT/mem" >"$T/plain" 2>&1; then
  tap_fail "plaintext client is refused"
else tap_ok "plaintext client is refused"; fi
tap_check "still serving after the refusals" nbdinfo "$U"
stop_shunt; st=$?
[ "$st" -eq 0 ] && tap_ok "server exits 0" || tap_fail "server exits $st"

# The same from a config file.
cat >"$T/shunt.conf" <<CONF
tls = require
tls-psk = $T/keys.psk
[export mem]
path = 4M
backend = memory
CONF
start_shunt --config "$T/shunt.conf" || { tap_fail "server starts from a config file"; tap_done; exit 1; }
U="nbds://alice@127.0.0.1:$PORT/mem?tls-psk-file=$T/alice.psk"
nbdinfo "$U" >"$T/info2" 2>&1
tap_check "config file: tls = require, tls-psk" grep -q 'export-size: 4194304' "$T/info2"
if nbdinfo "nbd://127.0.0.1:$PORT/mem" >/dev/null 2>&1; then
  tap_fail "config file: plaintext refused"
else tap_ok "config file: plaintext refused"; fi
stop_shunt
if "$SHUNT" serve --listen 127.0.0.1:1 --tls=require --tls-psk "$T/missing.psk" m=1M,backend=memory >"$T/cfg" 2>&1; then
  tap_fail "a missing keys file is refused at start"
else tap_ok "a missing keys file is refused at start"; fi
tap_done
