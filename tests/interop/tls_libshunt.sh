#!/bin/bash
# tls_libshunt.sh: libshunt and the shunt tools over nbds:// and nbds+unix://:
# shunt info / copy / bench with PSK (tls-psk-file, identity from user@) and
# X.509 (tls-certificates, with client certificates when the server verifies
# them); a wrong key, an untrusted server and a TLS-less server are refused;
# a plaintext nbd:// URI against --tls=require fails with TLS_REQD.
. "$(dirname "$0")/../lib.sh"
. "$(dirname "$0")/tls_lib.sh"
need_tls_tools

make_certs "$T/certs" || { tap_fail "certtool makes certificates"; tap_done; exit 1; }
make_psk "$T/keys.psk" alice
make_psk "$T/wrong.psk" alice
head -c 3M /dev/urandom >"$T/src.bin"

start_shunt -v --unix "$T/sock" --tls=require --tls-certificates "$T/certs/server" --tls-psk "$T/keys.psk" \
  mem=8M,backend=memory || { tap_fail "server starts"; tap_done; exit 1; }
P="nbds://alice@127.0.0.1:$PORT/mem?tls-psk-file=$T/keys.psk"
X="nbds://127.0.0.1:$PORT/mem?tls-certificates=$T/certs/alice"

"$SHUNT" info "$P" >"$T/i1" 2>&1
tap_check "shunt info nbds:// with PSK" grep -q 'size: *8388608' "$T/i1"
tap_check "... the server saw PSK identity alice" grep -q 'PSK identity alice' "$T/shunt.log"
"$SHUNT" info "$X" >"$T/i2" 2>&1
tap_check "shunt info nbds:// with X.509" grep -q 'size: *8388608' "$T/i2"
"$SHUNT" info "nbds+unix:///mem?socket=$T/sock&tls-psk-file=$T/keys.psk&tls-username=alice" >"$T/i3" 2>&1
tap_check "shunt info nbds+unix:// with PSK (identity from tls-username)" grep -q 'size: *8388608' "$T/i3"
"$SHUNT" info --list "$X" >"$T/l" 2>&1
tap_check "shunt info --list over TLS" grep -q 'mem' "$T/l"

tap_check "shunt copy file -> nbds:// (PSK)" "$SHUNT" copy "$T/src.bin" "$P"
tap_check "shunt copy nbds:// (X.509, 4 connections) -> file" "$SHUNT" copy -C 4 "$X" "$T/back.bin"
tap_check "bytes read back equal bytes written" cmp -n $((3 << 20)) "$T/src.bin" "$T/back.bin"
tap_check "shunt bench --verify over TLS (reads and writes, 2 connections)" \
  "$SHUNT" bench --duration 1 -b 64K --queue-depth 8 -C 2 --read-percent 50 --verify "$X"

if "$SHUNT" info "nbds://alice@127.0.0.1:$PORT/mem?tls-psk-file=$T/wrong.psk" >"$T/w" 2>&1; then
  tap_fail "a wrong PSK is refused"
else tap_ok "a wrong PSK is refused"; fi
if "$SHUNT" info "nbds://bob@127.0.0.1:$PORT/mem?tls-psk-file=$T/keys.psk" >"$T/w2" 2>&1; then
  tap_fail "an identity missing from the keys file fails"
else tap_ok "an identity missing from the keys file fails"; fi
tap_check "... saying so" grep -q "no key for identity 'bob'" "$T/w2"
mkdir -p "$T/other" && cp "$T/certs/badca/ca-cert.pem" "$T/other/"
if "$SHUNT" info "nbds://127.0.0.1:$PORT/mem?tls-certificates=$T/other" >"$T/w3" 2>&1; then
  tap_fail "a server certificate from an untrusted CA is refused"
else tap_ok "a server certificate from an untrusted CA is refused"; fi
tap_check "... with a certificate message" grep -qi 'certificate' "$T/w3"
if "$SHUNT" info "nbds://127.0.0.1:$PORT/mem?tls-certificates=$T/certs/alice&tls-hostname=wrong.example" >"$T/w4" 2>&1; then
  tap_fail "a certificate for another host name is refused (tls-hostname)"
else tap_ok "a certificate for another host name is refused (tls-hostname)"; fi
tap_check "tls-verify-peer=0 accepts an untrusted server" \
  "$SHUNT" info "nbds://127.0.0.1:$PORT/mem?tls-certificates=$T/other&tls-verify-peer=0"
if "$SHUNT" info "nbd://127.0.0.1:$PORT/mem" >"$T/w5" 2>&1; then
  tap_fail "plaintext nbd:// against --tls=require fails"
else tap_ok "plaintext nbd:// against --tls=require fails"; fi
tap_check "... with TLS_REQD" grep -q 'TLS_REQD' "$T/w5"
stop_shunt

start_shunt mem=8M,backend=memory || { tap_fail "plaintext server starts"; tap_done; exit 1; }
if "$SHUNT" info "nbds://alice@127.0.0.1:$PORT/mem?tls-psk-file=$T/keys.psk" >"$T/w6" 2>&1; then
  tap_fail "nbds:// against a server without TLS fails"
else tap_ok "nbds:// against a server without TLS fails"; fi
tap_check "... saying STARTTLS was refused" grep -q 'refused STARTTLS' "$T/w6"
stop_shunt

# libshunt against other servers' TLS: nbdkit (PSK) and qemu-nbd (X.509).
if command -v nbdkit >/dev/null; then
  NP=$(free_port)
  nbdkit -f -p "$NP" -i 127.0.0.1 --tls=require --tls-psk="$T/keys.psk" memory 4M >"$T/nbdkit.log" 2>&1 &
  _cleanup_pids+=($!); NK=$!
  wait_port "$NP" 10
  tap_check "libshunt -> nbdkit --tls=require --tls-psk: shunt copy writes" \
    "$SHUNT" copy "$T/src.bin" "nbds://alice@127.0.0.1:$NP/?tls-psk-file=$T/keys.psk"
  "$SHUNT" copy "nbds://alice@127.0.0.1:$NP/?tls-psk-file=$T/keys.psk" "$T/nk.bin" >/dev/null 2>&1
  tap_check "libshunt -> nbdkit TLS-PSK: read back equal" cmp -n $((3 << 20)) "$T/src.bin" "$T/nk.bin"
  kill "$NK"; wait "$NK" 2>/dev/null
else
  tap_skip "libshunt -> nbdkit over TLS" "nbdkit not installed"
fi
if command -v qemu-nbd >/dev/null; then
  QP=$(free_port)
  qemu-nbd --fork --pid-file "$T/qnbd.pid" -b 127.0.0.1 -p "$QP" -x q -f raw --persistent \
    --object "tls-creds-x509,id=tls0,endpoint=server,dir=$T/certs/server,verify-peer=no" \
    --tls-creds tls0 "$T/src.bin" >"$T/qnbd.log" 2>&1
  [ -f "$T/qnbd.pid" ] && _cleanup_pids+=("$(cat "$T/qnbd.pid")")
  wait_port "$QP" 10
  "$SHUNT" info "nbds://127.0.0.1:$QP/q?tls-certificates=$T/certs/alice" >"$T/qi" 2>&1
  tap_check "libshunt -> qemu-nbd --tls-creds (X.509): shunt info" grep -q "size: *$((3 << 20))" "$T/qi"
  "$SHUNT" copy "nbds://127.0.0.1:$QP/q?tls-certificates=$T/certs/alice" "$T/q.bin" >/dev/null 2>&1
  tap_check "libshunt -> qemu-nbd over TLS: shunt copy reads the image" cmp "$T/src.bin" "$T/q.bin"
  [ -f "$T/qnbd.pid" ] && kill "$(cat "$T/qnbd.pid")" 2>/dev/null
else
  tap_skip "libshunt -> qemu-nbd over TLS" "qemu-nbd not installed"
fi
tap_done
