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

FS_MB=40 PAT_MB=40 DISC_MB=48 ZERO_MB=56 REGION_MB=8
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
  vm_boot blk "$VM_DIR/guest/vhost_blk.sh" DISKS="$disks" FS_MB=$FS_MB PAT_MB=$PAT_MB \
  DISC_MB=$DISC_MB ZERO_MB=$ZERO_MB REGION_MB=$REGION_MB
vm_report blk
tap_check "host: the backend lived through the guest" kill -0 "$VHOST_PID"
tap_check "host: the backend exits with status 0 on SIGTERM" vm_vhost_stop

# hole IMG MB: the range [MB, +REGION_MB) of IMG holds no data (punched).
hole() {
  python3 - "$1" $(($2 << 20)) $((REGION_MB << 20)) <<'PY'
import errno, os, sys
fd = os.open(sys.argv[1], os.O_RDONLY)
off, n = int(sys.argv[2]), int(sys.argv[3])
try:
    d = os.lseek(fd, off, os.SEEK_DATA)
except OSError as e:
    sys.exit(0 if e.errno == errno.ENXIO else 1)
print(f"data at {d}, inside the discarded range [{off}, {off + n})")
sys.exit(0 if d >= off + n else 1)
PY
}

# An independent reader: the image files on the host, after the backend has exited.
for n in vda vdb; do
  img=$T/$n.img
  tap_check "host $n: e2fsck -fn of the image is clean" e2fsck -fn "$img"
  mkdir -p "$T/out-$n"
  debugfs -R "rdump /d $T/out-$n" "$img" >/dev/null 2>&1
  debugfs -R "cat /SUMS" "$img" 2>/dev/null >"$T/SUMS-$n"
  tap_check "host $n: the 40 files have the guest's checksums (debugfs)" \
    sh -c "test \$(wc -l <'$T/SUMS-$n') = 40 && cd '$T/out-$n/d' && md5sum -c --quiet '$T/SUMS-$n'"
  tap_check "host $n: the O_DIRECT pattern is in the image at $PAT_MB MiB" \
    cmp -i $((PAT_MB << 20)):0 -n $((REGION_MB << 20)) "$img" "$T/pat-$n"
  tap_check "host $n: the discarded range at $DISC_MB MiB is a hole" hole "$img" $DISC_MB
  tap_check "host $n: the zeroed range at $ZERO_MB MiB reads as zeroes" \
    cmp -i $((ZERO_MB << 20)):0 -n $((REGION_MB << 20)) "$img" /dev/zero
done
tap_done
