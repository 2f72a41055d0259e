#!/usr/bin/env bash
# tests/vm/vhost_blk.sh: a guest's virtio-blk driver on vhost-user-blk disks served by
# `shunt vhost` (SHUNT_VHOST_BACKEND=qsd: qemu-storage-daemon, to check the harness).
# One guest, two vCPUs, four disks of one backend process: vda with 1 queue, vdb with 2,
# vdc read-only, vdd on storage that fails part of its I/O. On vda and vdb: GET_ID,
# O_DIRECT pattern write from every queue and read-back, discard, write zeroes, ext4 with
# 40 files, fstrim, flush, e2fsck; vdc must read back and refuse writes and discards; vdd
# must report its storage's errors to the guest as errors and work on elsewhere. Then the
# host reads the images itself: e2fsck, the files' checksums through debugfs, the pattern
# with cmp, the discarded range as a hole and the zeroed range as zeroes.
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
# vdd: a file of tests/tools/eiofs (FUSE), whose reads and writes of [8 MiB, +64 KiB) fail.
EIOFS=${SHUNT_BUILD:-$(dirname "$SHUNT")}/tests/tools/eiofs
eio_vars=() eio_mnt=
if [ -x "$EIOFS" ] && [ -c /dev/fuse ]; then
  truncate -s $((16 << 20)) "$T/vdd.img"
  head -c $((1 << 20)) /dev/urandom >"$T/pat-eio"
  mkdir -p "$T/eio"
  if "$EIOFS" "$T/vdd.img" $((8 << 20)) 65536 "$T/eio" -s >"$T/eiofs.log" 2>&1; then
    eio_mnt=$T/eio
    trap 'umount -l "$eio_mnt" 2>/dev/null; _cleanup' EXIT
    specs+=("$T/vdd.sock=$T/eio/disk.img,queues=1")
    socks+=" $T/vdd.sock"
    eio_vars=(EIO_DISK=vdd EIO_MB=8)
  else
    tap_fail "eiofs mounts on $T/eio"; sed 's/^/#   /' "$T/eiofs.log"
  fi
else
  tap_fail "storage errors need FUSE: /dev/fuse and $EIOFS (libfuse3-dev at build time)"
fi
vm_vhost_start "${specs[@]}" || { tap_fail "backend serves ${specs[*]}"; tap_done; exit 1; }
tap_ok "backend serves ${specs[*]}"

VM_SMP=2 VM_VHOST_SOCKS=$socks VM_VHOST_QUEUES="1 2 1 1" \
  VM_EXTRA_FILES="$T/pat-vda $T/pat-vdb $T/ro-vdc ${eio_mnt:+$T/pat-eio}" \
  vm_boot blk "$VM_DIR/guest/vhost_blk.sh" DISKS="$disks" RO_DISK=vdc "${eio_vars[@]}" \
  "${VM_VHOST_BLK_LAYOUT[@]}"
vm_report blk
tap_check "host: the backend lived through the guest" kill -0 "$VHOST_PID"
tap_check "host: the backend exits with status 0 on SIGTERM" vm_vhost_stop
vm_vhost_stats

# An independent reader: the image files on the host, after the backend has exited.
for n in vda vdb; do vm_vhost_blk_verify $n "$T/$n.img" "$T/pat-$n"; done
tap_check "host vdc: the read-only image is unchanged" cmp "$T/vdc.img" "$T/ro-vdc"
if [ -n "$eio_mnt" ]; then
  umount "$eio_mnt"
  tap_check "host vdd: the write after the errors is in the image at 2 MiB" \
    cmp -i $((2 << 20)):0 -n $((1 << 20)) "$T/vdd.img" "$T/pat-eio"
  tap_check "host vdd: the failing range was never written" \
    cmp -i $((8 << 20)):0 -n 65536 "$T/vdd.img" /dev/zero
fi
tap_done
