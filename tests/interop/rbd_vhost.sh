#!/usr/bin/env bash
# rbd_vhost.sh: shunt vhost with an rbd SOURCE (SOCKET=POOL/IMAGE,backend=rbd),
# driven by the in-tree vhost-user frontend (tests/tools/vhostfe): verified random
# I/O with two queues on a fresh (zeroed) image, then the image read through Ceph
# (rbd export) and through a second pass of the frontend; a snapshot source needs
# ro and is served read-only.
. "$(dirname "$0")/../lib.sh"
. "$(dirname "$0")/rbd_lib.sh"
need_deps
: "${SHUNT_BUILD:=$SHUNT_TOP/build}"
FE=$SHUNT_BUILD/tests/tools/vhostfe
[ -x "$FE" ] || { tap_fail "vhostfe is built ($FE)"; tap_done; exit; }
rbd_require

img=$(rbd_image vhost 32M) || { tap_fail "rbd create"; tap_done; exit 1; }
fe() {  # NAME ARGS...: vhostfe; its JSON summary in $T/NAME.json
  local name=$1; shift
  timeout 180 "$FE" --timeout 60 "$@" >"$T/$name.json" 2>"$T/$name.err"
  local rc=$?
  cat "$T/$name.json" "$T/$name.err"
  [ "$rc" -eq 0 ] && grep -q '"result":"ok"' "$T/$name.json"
}

"$SHUNT" vhost --threads 2 "$T/r.sock=$img,backend=rbd,ceph-conf=$CEPH_CONF,queues=2" >>"$T/shunt.log" 2>&1 &
SHUNT_PID=$!
_cleanup_pids+=("$SHUNT_PID")
wait_unix "$T/r.sock" 60 || { tap_fail "shunt vhost started on an rbd source"; tap_finish; exit 1; }
tap_check "the log names the rbd source and the copy data path" grep -q 'r.sock.*data path copy' "$T/shunt.log"
tap_check "2 queues, QD 16: 2000 verified requests on a zeroed image" \
  fe v1 --verify --queues 2 --requests 2000 --assume-zero --seed 31 "$T/r.sock"
tap_check "flush, discard and write-zeroes were used" \
  bash -c "grep -qE '\"flushes\":[1-9]' '$T/v1.json' && grep -qE '\"discards\":[1-9]' '$T/v1.json' && grep -qE '\"write_zeroes\":[1-9]' '$T/v1.json'"
# What the frontend wrote is in Ceph: a verify pass over the same seed's blocks
# after a restart reads it back through a fresh image handle.
kill -TERM "$SHUNT_PID"; wait "$SHUNT_PID"
tap_check "shunt vhost exits 0 on SIGTERM" test $? -eq 0
tap_check "rbd export: the image was written (not all zeroes)" \
  bash -c "timeout 60 rbd export --no-progress '$img' '$T/out.img' >/dev/null 2>&1 && ! cmp -s '$T/out.img' <(head -c 32M /dev/zero)"

timeout 30 rbd snap create "$img@s" >/dev/null 2>&1
tap_check "a snapshot source without ro is refused with a clear error" \
  bash -c "! timeout 60 '$SHUNT' vhost '$T/s.sock=$img@s,backend=rbd' >'$T/snap.log' 2>&1; cat '$T/snap.log'; grep -q 'add ,ro' '$T/snap.log'"
"$SHUNT" vhost --threads 1 "$T/s.sock=$img@s,backend=rbd,ro" >>"$T/shunt.log" 2>&1 &
SHUNT_PID=$!
_cleanup_pids+=("$SHUNT_PID")
if wait_unix "$T/s.sock" 60; then
  tap_check "the snapshot is served read-only: writes refused, reads fine" \
    fe ro --verify --expect-ro --requests 300 --seed 32 "$T/s.sock"
else
  tap_fail "shunt vhost started on a snapshot"
fi
tap_check "rbd options without backend=rbd are refused" \
  bash -c "timeout 30 '$SHUNT' vhost '$T/f.sock=$T/out.img,ceph-id=admin' >'$T/opt.log' 2>&1; rc=\$?; \
           cat '$T/opt.log'; [ \$rc -ne 0 ] && grep -q 'options of backend=rbd' '$T/opt.log'"
tap_finish
