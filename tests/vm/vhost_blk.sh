#!/usr/bin/env bash
# tests/vm/vhost_blk.sh: a guest's virtio-blk driver on vhost-user-blk disks served by
# `shunt vhost` (SHUNT_VHOST_BACKEND=qsd: qemu-storage-daemon, to check the harness).
# One guest, two vCPUs, three disks of one backend process: vda with 1 queue, vdb with 2,
# vdc read-only. On vda and vdb: GET_ID, O_DIRECT pattern write from every queue and
# read-back, discard, write zeroes, ext4 with 40 files, fstrim, flush, e2fsck; vdc must
# read back and refuse writes and discards. Then the host reads the images itself:
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
  serial=-
  spec="$T/$n.sock=$T/$n.img,queues=${QUEUES[$n]}"
  [ "$VM_VHOST_BACKEND" = shunt ] && serial=disk-$n spec+=",serial=$serial"
  specs+=("$spec")
  socks+=" $T/$n.sock" disks+=" $n:${QUEUES[$n]}:${BYTES[$n]}:$serial"
done
# vdc: read-only, with a content of its own that must stay as it is.
head -c $((4 << 20)) /dev/urandom >"$T/ro-vdc"
cp "$T/ro-vdc" "$T/vdc.img"
specs+=("$T/vdc.sock=$T/vdc.img,queues=1,ro")
socks+=" $T/vdc.sock"
vm_vhost_start "${specs[@]}" || { tap_fail "backend serves ${specs[*]}"; tap_done; exit 1; }
tap_ok "backend serves ${specs[*]}"

VM_SMP=2 VM_VHOST_SOCKS=$socks VM_VHOST_QUEUES="1 2 1" \
  VM_EXTRA_FILES="$T/pat-vda $T/pat-vdb $T/ro-vdc" \
  vm_boot blk "$VM_DIR/guest/vhost_blk.sh" DISKS="$disks" RO_DISK=vdc "${VM_VHOST_BLK_LAYOUT[@]}"
vm_report blk
tap_check "host: the backend lived through the guest" kill -0 "$VHOST_PID"
tap_check "host: the backend exits with status 0 on SIGTERM" vm_vhost_stop
vm_vhost_stats

# An independent reader: the image files on the host, after the backend has exited.
for n in vda vdb; do vm_vhost_blk_verify $n "$T/$n.img" "$T/pat-$n"; done
tap_check "host vdc: the read-only image is unchanged" cmp "$T/vdc.img" "$T/ro-vdc"
tap_done
