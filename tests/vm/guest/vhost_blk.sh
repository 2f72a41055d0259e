# tests/vm/guest/vhost_blk.sh: runs inside the guest (see vhost_blk.sh).
# For each vhost-user-blk disk of DISKS (NAME:QUEUES:BYTES:SERIAL, e.g. "vda:1:67108864:-";
# SERIAL "-" when the backend sets none), laid out in MiB as the host expects: ext4 on
# [0, FS_MB), the O_DIRECT pattern /data/pat-NAME on [PAT_MB, +REGION_MB), a discarded
# range at DISC_MB and a zeroed one at ZERO_MB. RO_DISK=NAME names a read-only disk whose
# content is /data/ro-NAME. EIO_DISK=NAME names a disk whose storage fails I/O at EIO_MB
# MiB: errors must reach the guest as errors, and the disk work on elsewhere (it gets
# /data/pat-eio at 2 MiB). The host reads the images afterwards; nothing here is trusted
# on its own. With GO=WORD the guest waits for the host's `vm_send NAME WORD` first.
DD=/usr/bin/dd
VIRTIO_BLK_F_FLUSH=9 VIRTIO_BLK_F_CONFIG_WCE=11
R=$((REGION_MB << 20))

# feature FEATURES BIT: true when the virtio feature string (sysfs, bit 0 first) has BIT.
feature() { [ "$(echo "$1" | cut -c$(($2 + 1)))" = 1 ]; }

# irqs DEV QUEUE: interrupts taken so far by request queue QUEUE of disk DEV (all CPUs).
irqs() {
  _v=$(basename "$(readlink -f /sys/block/$1/device)")
  awk -v q="$_v-req.$2" '$NF == q {
    s = 0
    for (i = 2; i <= NF && $i ~ /^[0-9]+$/; i++) s += $i
    print s
  }' /proc/interrupts
}

# write_pattern DEV NAME QUEUES: write the pattern in QUEUES parts, part k from vCPU k
# (so from queue k), O_DIRECT, then fsync.
write_pattern() {
  _part=$((R / $3)) _k=0 _pids=
  while [ $_k -lt $3 ]; do
    taskset $((1 << _k)) $DD if=/data/pat-$2 of=$1 bs=64k status=none conv=notrunc,fsync \
      iflag=skip_bytes,count_bytes oflag=direct,seek_bytes \
      skip=$((_k * _part)) seek=$(((PAT_MB << 20) + _k * _part)) count=$_part &
    _pids="$_pids $!"
    _k=$((_k + 1))
  done
  _rc=0
  for _p in $_pids; do wait $_p || _rc=1; done
  return $_rc
}

# sectors DEV NAME: zero the pattern region's first 4 KiB, then write it back from the
# pattern one 512-byte sector at a time, odd sectors first, O_DIRECT.
sectors() {
  $DD if=/dev/zero of=$1 bs=4k count=1 seek=$((PAT_MB * 256)) oflag=direct conv=notrunc,fsync \
    status=none || return 1
  for _s in 1 3 5 7 0 2 4 6; do
    $DD if=/data/pat-$2 of=$1 bs=512 count=1 skip=$_s seek=$((PAT_MB * 2048 + _s)) oflag=direct \
      conv=notrunc,fsync status=none || return 1
  done
}

# fill DEV MB: overwrite [MB, +REGION_MB) with the byte 0xa5, O_DIRECT.
fill() {
  tr '\000' '\245' </dev/zero | $DD of=$1 bs=1M count=$REGION_MB seek=$2 iflag=fullblock \
    oflag=direct conv=notrunc,fsync status=none
}

[ -n "${GO:-}" ] && { g_wait_host "$GO" 300 || exit 1; }
for d in $DISKS; do
  set -- $(echo "$d" | tr : ' ')
  N=$1 Q=$2 BYTES=$3 SERIAL=$4 D=/dev/$1
  g_must "$N: the disk exists" test -b $D
  g_check "$N: size $BYTES bytes" test "$(cat /sys/block/$N/size)" = $((BYTES / 512))
  g_check "$N: GET_ID answered (serial '$(cat /sys/block/$N/serial 2>&1)')" cat /sys/block/$N/serial
  [ "$SERIAL" != - ] && g_check "$N: serial is $SERIAL" test "$(cat /sys/block/$N/serial)" = "$SERIAL"
  g_check "$N: writable" test "$(cat /sys/block/$N/ro)" = 0
  g_check "$N: $Q hardware queue(s)" test "$(ls /sys/block/$N/mq | wc -l)" = $Q
  F=$(cat /sys/block/$N/device/features)
  g_note "$N: virtio features $F, cache $(cat /sys/block/$N/queue/write_cache)"
  g_check "$N: FLUSH offered" feature $F $VIRTIO_BLK_F_FLUSH
  # With CONFIG_WCE the device may start write-through; the guest then sends no flush.
  if grep -q 'write through' /sys/block/$N/queue/write_cache && feature $F $VIRTIO_BLK_F_CONFIG_WCE; then
    g_check "$N: write back set through the config space (CONFIG_WCE)" \
      sh -c "echo 'write back' >/sys/block/$N/cache_type"
  fi
  g_check "$N: write back cache (the guest sends flushes)" grep -q 'write back' /sys/block/$N/queue/write_cache
  g_check "$N: discard offered" test "$(cat /sys/block/$N/queue/discard_max_bytes)" -gt 0
  g_check "$N: write zeroes offered" test "$(cat /sys/block/$N/queue/write_zeroes_max_bytes)" -gt 0

  # O_DIRECT pattern, written from every queue, read back O_DIRECT.
  k=0 before=
  while [ $k -lt $Q ]; do before="$before $(irqs $N $k)"; k=$((k + 1)); done
  g_check "$N: O_DIRECT pattern write of $REGION_MB MiB from $Q queue(s)" write_pattern $D $N $Q
  k=0
  for b in $before; do
    a=$(irqs $N $k)
    g_check "$N: queue $k completed requests (interrupts $b -> $a)" test "${a:-0}" -gt "${b:-0}"
    k=$((k + 1))
  done
  g_check "$N: O_DIRECT read-back equals the pattern" sh -c \
    "$DD if=$D bs=64k iflag=direct skip=$((PAT_MB * 16)) count=$((REGION_MB * 16)) status=none | /usr/bin/cmp - /data/pat-$N"
  g_check "$N: 512-byte O_DIRECT writes, one sector each" sectors $D $N
  g_check "$N: 512-byte O_DIRECT reads equal the pattern" sh -c \
    "$DD if=$D bs=512 iflag=direct skip=$((PAT_MB * 2048)) count=16 status=none | /usr/bin/cmp -n 8192 - /data/pat-$N"
  g_note "$N: max_segments $(cat /sys/block/$N/queue/max_segments)," \
    "max_sectors_kb $(cat /sys/block/$N/queue/max_sectors_kb)"
  g_check "$N: O_DIRECT 4 MiB reads (requests of many segments) equal the pattern" sh -c \
    "$DD if=$D bs=4M iflag=direct skip=$((PAT_MB / 4)) count=$((REGION_MB / 4)) status=none | /usr/bin/cmp - /data/pat-$N"
  g_check "$N: 33 O_DIRECT 4 KiB reads at +28 KiB equal the pattern" sh -c \
    "$DD if=$D bs=4k iflag=direct,skip_bytes skip=$(((PAT_MB << 20) + 4096 * 7)) count=33 status=none |
     /usr/bin/cmp -i 0:$((4096 * 7)) -n $((33 * 4096)) - /data/pat-$N"

  # Discard and write zeroes on raw ranges (filled first, so the host sees them change).
  g_check "$N: fill the discard range, O_DIRECT" fill $D $DISC_MB
  g_check "$N: fill the zero range, O_DIRECT" fill $D $ZERO_MB
  g_check "$N: blkdiscard $REGION_MB MiB at $DISC_MB MiB" /usr/sbin/blkdiscard -o $((DISC_MB << 20)) -l $R $D
  g_check "$N: blkdiscard -z (write zeroes) $REGION_MB MiB at $ZERO_MB MiB" \
    /usr/sbin/blkdiscard -z -o $((ZERO_MB << 20)) -l $R $D
  g_check "$N: the zeroed range reads back as zeroes (O_DIRECT)" sh -c \
    "$DD if=$D bs=1M iflag=direct skip=$ZERO_MB count=$REGION_MB status=none | /usr/bin/cmp -n $R - /dev/zero"

  # ext4 on [0, FS_MB): 40 files, checksums kept in the filesystem for the host.
  g_must "$N: mkfs.ext4 on the first $FS_MB MiB" /usr/sbin/mkfs.ext4 -q -F -b 4096 $D $((FS_MB * 256))
  g_must "$N: mount" mount -t ext4 $D /mnt
  mkdir -p /mnt/d
  g_check "$N: write 40 files" sh -c '
    i=1
    while [ $i -le 40 ]; do
      head -c $(( (i * 7919) % 400000 + i * 1000 + 13 )) /dev/urandom >/mnt/d/f$i || exit 1
      i=$((i + 1))
    done'
  (cd /mnt/d && md5sum f*) >/tmp/sums-$N
  cp /tmp/sums-$N /mnt/SUMS
  g_check "$N: scratch file for fstrim, deleted" \
    sh -c "head -c 6000000 /dev/urandom >/mnt/scratch && sync && rm /mnt/scratch"
  g_check "$N: flush (sync)" sync
  g_check "$N: fstrim on the mount (discard through ext4)" fstrim /mnt
  g_check "$N: umount" umount /mnt
  g_check "$N: e2fsck -fn clean" /usr/sbin/e2fsck -fn $D
  echo 3 >/proc/sys/vm/drop_caches
  g_must "$N: mount again" mount -t ext4 -o ro $D /mnt
  g_check "$N: the 40 files read back with their checksums" \
    sh -c "cd /mnt/d && md5sum -c /tmp/sums-$N >/dev/null"
  g_check "$N: umount" umount /mnt
done
if [ -n "${RO_DISK:-}" ]; then
  N=$RO_DISK D=/dev/$RO_DISK
  g_must "$N: the read-only disk exists" test -b $D
  g_check "$N: read-only (VIRTIO_BLK_F_RO)" test "$(cat /sys/block/$N/ro)" = 1
  g_check "$N: reads back its content (O_DIRECT)" \
    sh -c "$DD if=$D bs=64k iflag=direct status=none | /usr/bin/cmp - /data/ro-$N"
  g_check "$N: an O_DIRECT write is refused" \
    sh -c "! $DD if=/data/ro-$N of=$D bs=64k count=1 oflag=direct conv=notrunc status=none"
  g_check "$N: blkdiscard is refused" sh -c "! /usr/sbin/blkdiscard $D"
fi
if [ -n "${EIO_DISK:-}" ]; then
  N=$EIO_DISK D=/dev/$EIO_DISK B=$((EIO_MB * 256))
  g_must "$N: the disk on failing storage exists" test -b $D
  g_check "$N: O_DIRECT read before the failing range" \
    $DD if=$D of=/dev/null bs=64k count=16 iflag=direct status=none
  g_check "$N: O_DIRECT read of the failing range ends in an error" \
    sh -c "! $DD if=$D of=/dev/null bs=4k count=1 skip=$B iflag=direct status=none"
  g_check "$N: O_DIRECT write into the failing range ends in an error" \
    sh -c "! $DD if=/data/pat-eio of=$D bs=4k count=1 seek=$((B + 1)) oflag=direct conv=notrunc status=none"
  g_check "$N: the kernel logged I/O errors for $N" sh -c "dmesg | grep -q 'I/O error, dev $N,'"
  g_check "$N: after the errors, an O_DIRECT write of 1 MiB at 2 MiB" \
    $DD if=/data/pat-eio of=$D bs=64k count=16 seek=32 oflag=direct conv=notrunc,fsync status=none
  g_check "$N: and its O_DIRECT read-back" \
    sh -c "$DD if=$D bs=64k count=16 skip=32 iflag=direct status=none | /usr/bin/cmp - /data/pat-eio"
fi
g_check "no I/O error in the kernel log${EIO_DISK:+ but $EIO_DISK's}" sh -c \
  "! dmesg | grep -iE 'I/O error|blk_update_request|critical' | grep -v 'dev ${EIO_DISK:-none},'"
g_check "flush at the end (sync)" sync
