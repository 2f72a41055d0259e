#!/bin/bash
# tls_x509.sh: STARTTLS with X.509 certificates made here by certtool.
# --tls=require: nbdinfo, nbdcopy and qemu-img/qemu-io (tls-creds-x509) work
# over TLS; a plaintext nbdinfo fails; a raw client gets NBD_REP_ERR_TLS_REQD
# for every option but STARTTLS/ABORT and never sees an export name; STARTTLS
# with data or twice gets NBD_REP_ERR_INVALID.  --tls=on: both work.
. "$(dirname "$0")/../lib.sh"
. "$(dirname "$0")/tls_lib.sh"
need_tls_tools nbdinfo nbdcopy qemu-img qemu-io python3

make_certs "$T/certs" || { tap_fail "certtool makes a CA and certificates"; tap_done; exit 1; }
tap_ok "certtool makes a CA, a server and client certificates"
S=$T/certs/server C=$T/certs/alice
head -c 3M /dev/urandom >"$T/src.bin"
truncate -s 8M "$T/disk.img"

start_shunt --tls=require --tls-certificates "$S" disk="$T/disk.img" hidden=1M,backend=memory \
  || { tap_fail "server starts with --tls=require"; tap_done; exit 1; }
tap_ok "server starts with --tls=require"
U="nbds://127.0.0.1:$PORT"

nbdinfo "$U/disk?tls-certificates=$C" >"$T/info" 2>&1
tap_check "nbdinfo over TLS (X.509) sees the export" grep -q 'export-size: 8388608' "$T/info"
tap_check "... and reports TLS" grep -q 'with TLS' "$T/info"
nbdinfo --list "$U?tls-certificates=$C" >"$T/list" 2>&1
tap_check "nbdinfo --list over TLS names the exports" grep -q 'export="hidden"' "$T/list"

tap_check "nbdcopy writes over TLS" nbdcopy "$T/src.bin" "$U/disk?tls-certificates=$C"
tap_check "nbdcopy reads back over TLS" nbdcopy "$U/disk?tls-certificates=$C" "$T/back.bin"
tap_check "bytes read back equal bytes written" cmp -n $((3 << 20)) "$T/src.bin" "$T/back.bin"
tap_check "... and reached the file" cmp -n $((3 << 20)) "$T/src.bin" "$T/disk.img"

QOBJ="tls-creds-x509,id=tls0,endpoint=client,dir=$C"
QOPTS="driver=nbd,host=127.0.0.1,port=$PORT,export=disk,tls-creds=tls0"
qemu-img info --object "$QOBJ" --image-opts "$QOPTS" >"$T/qinfo" 2>&1
tap_check "qemu-img info over TLS" grep -q 'virtual size: 8 MiB' "$T/qinfo"
qemu-io --object "$QOBJ" --image-opts "$QOPTS" -c 'write -P 0x6b 4M 1M' -c 'read -P 0x6b 4M 1M' \
  >"$T/qio" 2>&1
tap_check "qemu-io write/read-back over TLS" bash -c "! grep -qi 'fail\|error' '$T/qio' && grep -q 'read 1048576' '$T/qio'"

# A client that trusts another CA refuses the server.
mkdir -p "$T/other" && cp "$T/certs/badca/ca-cert.pem" "$T/other/"
if nbdinfo "$U/disk?tls-certificates=$T/other" >"$T/bad" 2>&1; then
  tap_fail "a client trusting another CA refuses the server"
else tap_ok "a client trusting another CA refuses the server"; fi

# Plaintext against require.
if nbdinfo "nbd://127.0.0.1:$PORT/disk" >"$T/plain" 2>&1; then
  tap_fail "plaintext nbdinfo is refused"; cat "$T/plain" | sed 's/^/#   /'
else tap_ok "plaintext nbdinfo is refused"; fi
if nbdinfo --list "nbd://127.0.0.1:$PORT" >"$T/plainlist" 2>&1 && grep -q 'export=' "$T/plainlist"; then
  tap_fail "plaintext nbdinfo --list learns no export"
else tap_ok "plaintext nbdinfo --list learns no export"; fi

python3 "$RAW_NBD" require "$PORT" disk >"$T/raw" 2>&1
for o in LIST INFO GO STRUCTURED_REPLY LIST_META_CONTEXT SET_META_CONTEXT EXTENDED_HEADERS UNKNOWN LIST_BIG; do
  tap_check "require: $o before TLS gets NBD_REP_ERR_TLS_REQD" grep -qx "$o=ERR_TLS_REQD" "$T/raw"
done
tap_check "require: ABORT before TLS is acknowledged" grep -qx 'ABORT=ACK' "$T/raw"
tap_check "require: no export name in any plaintext reply" grep -qx 'leak=no' "$T/raw"
python3 "$RAW_NBD" exportname "$PORT" disk >"$T/raw2" 2>&1
tap_check "require: EXPORT_NAME before TLS closes the connection without a reply" \
  grep -qx 'exportname=closed' "$T/raw2"
tap_check "require: ... and nothing leaked" grep -qx 'leak=no' "$T/raw2"
python3 "$RAW_NBD" starttls "$PORT" "$S/ca-cert.pem" >"$T/raw3" 2>&1
tap_check "STARTTLS with data gets NBD_REP_ERR_INVALID" grep -qx 'starttls_with_data=ERR_INVALID' "$T/raw3"
tap_check "STARTTLS gets ACK and TLS starts" grep -qx 'starttls=ACK' "$T/raw3"
tap_check "STARTTLS again under TLS gets NBD_REP_ERR_INVALID" grep -qx 'starttls_again=ERR_INVALID' "$T/raw3"
tap_check "LIST over TLS names both exports" grep -qx 'names=disk,hidden' "$T/raw3"
python3 "$RAW_NBD" junk "$PORT" >"$T/raw4" 2>&1
tap_check "garbage instead of a ClientHello: the server closes that connection" grep -qx 'junk=closed' "$T/raw4"
python3 "$RAW_NBD" hangup "$PORT" >"$T/raw5" 2>&1
tap_check "a hang-up right after STARTTLS is survived" grep -qx 'hangup=done' "$T/raw5"
sleep 0.2
tap_check "still serving TLS clients after both" nbdinfo "$U/disk?tls-certificates=$C"
stop_shunt; st=$?
[ "$st" -eq 0 ] && tap_ok "require server exits 0 (no sanitizer report)" || tap_fail "require server exits $st"

# --tls=on: TLS offered, plaintext allowed too.
start_shunt --tls=on --tls-certificates "$S" disk="$T/disk.img" || { tap_fail "server starts with --tls=on"; tap_done; exit 1; }
nbdinfo "nbds://127.0.0.1:$PORT/disk?tls-certificates=$C" >"$T/on1" 2>&1
tap_check "--tls=on: TLS client works" grep -q 'with TLS' "$T/on1"
nbdinfo "nbd://127.0.0.1:$PORT/disk" >"$T/on2" 2>&1
tap_check "--tls=on: plaintext client works" grep -q 'export-size: 8388608' "$T/on2"
python3 "$RAW_NBD" list "$PORT" >"$T/on3" 2>&1
tap_check "--tls=on: plaintext LIST answers" grep -qx 'names=disk' "$T/on3"
stop_shunt

# --tls=off: STARTTLS is refused with NBD_REP_ERR_POLICY; nbds:// fails.
start_shunt disk="$T/disk.img" || { tap_fail "server starts"; tap_done; exit 1; }
if nbdinfo "nbds://127.0.0.1:$PORT/disk?tls-certificates=$C" >"$T/off" 2>&1; then
  tap_fail "--tls=off: nbds:// client fails"
else tap_ok "--tls=off: nbds:// client fails"; fi
stop_shunt

# Bad configuration is refused at start.
if "$SHUNT" serve --listen 127.0.0.1:1 --tls=require disk="$T/disk.img" >"$T/cfg" 2>&1; then
  tap_fail "--tls=require without credentials is refused"
else tap_ok "--tls=require without credentials is refused"; fi
tap_done
