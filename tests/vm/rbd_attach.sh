#!/usr/bin/env bash
# tests/vm/rbd_attach.sh: a TCG guest attaches a `shunt serve backend=rbd` export on
# the host (the shared Ceph test cluster, tests/ceph/cluster.sh) with `shunt attach`,
# makes ext4 on it, writes files, detaches, re-attaches and reads them back; the host
# then checks the filesystem through Ceph itself (rbd export, e2fsck).
. "$(dirname "$0")/lib.sh"
. "$SHUNT_TOP/tests/interop/rbd_lib.sh"
vm_require
rbd_require

SIZE=$((64 * 1024 * 1024))
img=$(rbd_image vm 64M) || { tap_fail "rbd create"; tap_done; exit 1; }
PORT=$(free_port)
"$SHUNT" serve --listen "127.0.0.1:$PORT" "disk=$img,backend=rbd" >>"$T/server.log" 2>&1 &
_cleanup_pids+=($!)
wait_port "$PORT" 30 || { tap_fail "shunt serve backend=rbd started"; sed 's/^/# /' "$T/server.log"; tap_done; exit 1; }

export VM_EXTRA_BINS=$SHUNT
vm_boot rbd "$VM_DIR/guest/rbd_attach.sh" SHUNT_BIN="$SHUNT" URI="nbd://10.0.2.2:$PORT/disk" SIZE=$SIZE
vm_report rbd
tap_check "host: rbd export of the image, e2fsck clean" \
  bash -c "timeout 120 rbd export --no-progress '$img' '$T/vm.img' >/dev/null 2>&1 && e2fsck -fn '$T/vm.img'"
tap_done
