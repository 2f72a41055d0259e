#!/bin/bash
# tls_seal.sh: large READ replies whose records the server seals itself
# (src/server/tls_seal.h: TLS 1.3 with AES-GCM or ChaCha20-Poly1305, TLS 1.2
# with AES-GCM), read by real clients with each protocol and cipher forced
# by --tls-priority, over PSK and X.509: nbdcopy (the whole image), qemu-img
# convert (its own request sizes), libnbd at odd offsets and lengths; every
# byte compared with the image.  The stats say the records were sealed
# (tls_sealed_bytes) where the suite allows it, and not where it does not
# (TLS 1.2 ChaCha20-Poly1305, AES-CBC: GnuTLS makes them all).
. "$(dirname "$0")/../lib.sh"
. "$(dirname "$0")/tls_lib.sh"
need_tls_tools nbdcopy qemu-img python3
PY=/usr/bin/python3
"$PY" -c "import nbd" 2>/dev/null || { tap_skip "TLS sealing" "python3-libnbd not installed"; tap_done; exit 0; }

make_certs "$T/certs" || { tap_fail "certtool makes a CA and certificates"; tap_done; exit 1; }
mkdir -p "$T/psk"
make_psk "$T/psk/keys.psk" alice
S=$T/certs/server C=$T/certs/alice
img=$T/disk.img
head -c 64M /dev/urandom >"$img"
cat "$img" >/dev/null

# one_suite NAME PRIORITY SEALED(yes|no)
one_suite() {
  local name=$1 prio=$2 want=$3 u up sl enc
  : >"$T/shunt.log"
  start_shunt -v --tls=require --tls-certificates "$S" --tls-psk "$T/psk/keys.psk" --tls-priority "$prio" \
    --stats "$T/st.json" disk="$img" \
    || { tap_fail "$name: server starts with --tls-priority '$prio'"; return; }
  u="nbds://127.0.0.1:$PORT/disk?tls-certificates=$C"
  up="nbds://alice@127.0.0.1:$PORT/disk?tls-psk-file=$T/psk/keys.psk"
  dump_stats "$T/a.json"
  rm -f "$T/out.bin" "$T/q.raw"
  nbdcopy "$up" "$T/out.bin" && cmp -s "$img" "$T/out.bin" \
    && tap_ok "$name, PSK: nbdcopy reads the whole image, equal to it" \
    || tap_fail "$name, PSK: nbdcopy's copy differs from the image"
  qemu-img convert -O raw --object "tls-creds-x509,id=t0,endpoint=client,dir=$C" --image-opts \
    "driver=nbd,host=127.0.0.1,port=$PORT,export=disk,tls-creds=t0" "$T/q.raw" >"$T/q.log" 2>&1 \
    && cmp -s "$img" "$T/q.raw" \
    && tap_ok "$name, X.509: qemu-img convert reads the whole image, equal to it" \
    || tap_fail "$name, X.509: qemu-img convert: $(tail -n 2 "$T/q.log")"
  tap_check "$name, X.509: libnbd's reads at odd offsets and lengths equal the image" reads "$u" "$img" odd
  tap_check "$name, X.509: libnbd's 1 MiB reads equal the image" reads "$u" "$img" seq
  dump_stats "$T/b.json"
  read -r sl enc <<<"$(delta "$T/a.json" "$T/b.json" tls_sealed_bytes tls_encrypted_bytes)"
  got=$(grep -o 'TLS established: ([^,]*' "$T/shunt.log" | sort -u | tr '\n' ' ')
  echo "# $name: sealed $sl of $enc bytes encrypted; $got"
  if [ "$want" = yes ]; then
    [ "$sl" -gt $((enc * 3 / 4)) ] && tap_ok "$name: most of the ciphertext sealed by the server ($sl bytes, $enc encrypted)" \
      || tap_fail "$name: sealed $sl bytes of $enc encrypted (want more than 3/4)"
  else
    [ "$sl" -eq 0 ] && [ "$enc" -gt 0 ] && tap_ok "$name: nothing sealed, GnuTLS made every record ($enc bytes)" \
      || tap_fail "$name: sealed $sl bytes of $enc encrypted (want none)"
  fi
  stop_shunt; st=$?
  tap_check "$name: server exits 0" test "$st" -eq 0
}

one_suite "TLS 1.3 AES-128-GCM" 'NORMAL:-VERS-ALL:+VERS-TLS1.3:-CIPHER-ALL:+AES-128-GCM' yes
one_suite "TLS 1.3 ChaCha20-Poly1305" 'NORMAL:-VERS-ALL:+VERS-TLS1.3:-CIPHER-ALL:+CHACHA20-POLY1305' yes
one_suite "TLS 1.2 AES-128-GCM" 'NORMAL:-VERS-ALL:+VERS-TLS1.2:-CIPHER-ALL:+AES-128-GCM' yes
one_suite "TLS 1.2 AES-256-GCM" 'NORMAL:-VERS-ALL:+VERS-TLS1.2:-CIPHER-ALL:+AES-256-GCM' yes
one_suite "TLS 1.2 ChaCha20-Poly1305" 'NORMAL:-VERS-ALL:+VERS-TLS1.2:-CIPHER-ALL:+CHACHA20-POLY1305' no
one_suite "TLS 1.2 AES-128-CBC" 'NORMAL:-VERS-ALL:+VERS-TLS1.2:-CIPHER-ALL:+AES-128-CBC' no
tap_done
