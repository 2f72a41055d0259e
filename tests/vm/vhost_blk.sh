#!/usr/bin/env bash
# tests/vm/vhost_blk.sh: a guest's virtio-blk driver on vhost-user-blk disks served by
# `shunt vhost` (SHUNT_VHOST_BACKEND=qsd: qemu-storage-daemon, to check the harness).
# One guest, two vCPUs, two disks of one backend process: vda with 1 queue, vdb with 2.
# On each: O_DIRECT pattern write from every queue and read-back, discard, write zeroes,
# ext4 with 40 files, fstrim, flush, e2fsck. Then the host reads the images itself:
# e2fsck, the files' checksums through debugfs, the pattern with cmp, the discarded
# range as a hole and the zeroed range as zeroes.
. "$(dirname "$0")/lib.sh"
vm_require
vm_vhost_require

declare "${VM_VHOST_BLK_LAYOUT[@]}"
declare -A QUEUES=([vda]=1 [vdb]=2) BYTES=([vda]=$((64 << 20)) [vdb]=$((72 << 20)))
specs=() socks='' disks=''
for n in vda vdb; do
  truncate -s "${BYTES[$n]}" "$T/$n.img"
  head -c $((REGION_MB << 20)) /dev/urandom >"$T/pat-$n"
  specs+=("$T/$n.sock=$T/$n.img,queues=${QUEUES[$n]}")
  socks+=" $T/$n.sock" disks+=" $n:${QUEUES[$n]}:${BYTES[$n]}"
done
vm_vhost_start "${specs[@]}" || { tap_fail "backend serves ${specs[*]}"; tap_done; exit 1; }
tap_ok "backend serves ${specs[*]}"

VM_SMP=2 VM_VHOST_SOCKS=$socks VM_VHOST_QUEUES="1 2" VM_EXTRA_FILES="$T/pat-vda $T/pat-vdb" \
  vm_boot blk "$VM_DIR/guest/vhost_blk.sh" DISKS="$disks" "${VM_VHOST_BLK_LAYOUT[@]}"
vm_report blk
tap_check "host: the backend lived through the guest" kill -0 "$VHOST_PID"
tap_check "host: the backend exits with status 0 on SIGTERM" vm_vhost_stop

# An independent reader: the image files on the host, after the backend has exited.
for n in vda vdb; do vm_vhost_blk_verify $n "$T/$n.img" "$T/pat-$n"; done
tap_done
