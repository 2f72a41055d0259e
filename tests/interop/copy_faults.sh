#!/bin/bash
# copy_faults.sh: the copy path and TLS connections reuse their payload
# buffers: in steady state the server takes far fewer minor page faults than
# it serves requests (copy_faults.py counts them from /proc/PID/stat), on the
# copy path in plaintext and over TLS (PSK), and over TLS on the default data
# path (reads from the mapping of the file, on their own half of it).  Not a timing: a count (shown, not asserted, on an ASan build).
. "$(dirname "$0")/../lib.sh"
. "$(dirname "$0")/tls_lib.sh"
need_tls_tools
here=$(cd "$(dirname "$0")" && pwd)
PY=/usr/bin/python3
"$PY" -c 'import nbd' 2>/dev/null || { tap_skip "page faults" "python3-libnbd not installed"; tap_done; exit 0; }

# An ASan build's allocator quarantines freed memory: faults are counted, not asserted.
grep -qa __asan_init "$SHUNT" && export SANITIZED=1

img=$T/disk.img
head -c 64M /dev/urandom >"$img"

# pool_hits FILE: the buffers the export's requests got back from a pool.
pool_hits() { "$PY" -c 'import json,sys; print(json.load(open(sys.argv[1]))["exports"][0]["pool_hits"])' "$1"; }

# faults_case LABEL URI SERVE_ARGS...: serve, run copy_faults.py against URI
# (its @PORT@ replaced by the port; $SPLIT passed on), stop; the server must
# start and exit 0.
faults_case() {
  local label=$1 uri=$2; shift 2
  if ! start_shunt "$@"; then tap_fail "$label: server starts"; return 1; fi
  tap_relay "$PY" "$here/copy_faults.py" "${uri//@PORT@/$PORT}" "$SHUNT_PID" "$label" ${SPLIT:-}
  stop_shunt; local st=$?
  [ "$st" -eq 0 ] && tap_ok "$label: server exits 0" || tap_fail "$label: server exits $st"
}

if faults_case copy "nbd://127.0.0.1:@PORT@/disk" --stats "$T/copy.json" "disk=$img,datapath=copy"; then
  # At least the measured READs and 1 MiB WRITEs (4 KiB WRITEs run in place
  # in the receive buffer).
  n=$(pool_hits "$T/copy.json" 2>/dev/null)
  [ "${n:-0}" -ge 3000 ] && tap_ok "copy: stats count $n buffers reused from the pool" \
    || tap_fail "copy: stats count ${n:-no} buffers reused from the pool"
fi

make_psk "$T/keys.psk" alice
tls_uri="nbds://alice@127.0.0.1:@PORT@/disk?tls-psk-file=$T/keys.psk"
faults_case TLS "$tls_uri" --tls=require --tls-psk "$T/keys.psk" "disk=$img,datapath=copy"
# The default data path (auto): over TLS, where the file takes O_DIRECT,
# cached READs are encrypted from the export's mapping, uncached ones go into
# pooled buffers, and WRITEs come from the arena.  An O_DIRECT write drops the
# cached pages it overwrites, and the next read of them maps them in again
# (a fault per page or so, not per request, and cheaper than the copy it
# replaces): READs and WRITEs go to separate halves of the image here.
SPLIT=split faults_case "TLS, default data path" "$tls_uri" --tls=require --tls-psk "$T/keys.psk" "disk=$img"
tap_finish
