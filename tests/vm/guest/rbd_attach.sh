# tests/vm/guest/rbd_attach.sh: runs inside the guest (see rbd_attach.sh).
# `shunt attach` of the host's backend=rbd export at $URI: ext4, files written and
# read back after a re-attach, detach.
S=$SHUNT_BIN
show() { sed 's/^/guest:   /' "$@"; }

DEV=$($S attach -C 2 "$URI" 2>/tmp/attach.err)
show /tmp/attach.err
g_must "shunt attach -C 2 $URI prints a device (${DEV:-none})" test -n "$DEV"
N=${DEV#/dev/}
g_check "the device has the image's size ($SIZE bytes)" test "$(($(cat /sys/block/$N/size) * 512))" = "$SIZE"
g_must "mkfs.ext4 on $DEV" /usr/sbin/mkfs.ext4 -q -F $DEV
g_must "mount" mount -t ext4 $DEV /mnt
mkdir -p /mnt/d
for i in 1 2 3; do head -c $((i * 1000000 + 17)) /dev/urandom >/mnt/d/f$i; done
(cd /mnt/d && md5sum f1 f2 f3) >/tmp/sums
g_check "write files, sync, umount" sh -c "sync && umount /mnt"
g_check "e2fsck clean" /usr/sbin/e2fsck -fn $DEV
g_check "shunt detach $DEV" $S detach $DEV
DEV2=$($S attach "$URI" $DEV 2>/tmp/attach.err)
show /tmp/attach.err
g_must "re-attach on $DEV" test "$DEV2" = "$DEV"
g_must "mount again" mount -t ext4 $DEV /mnt
g_check "files intact after re-attach" sh -c "cd /mnt/d && md5sum -c /tmp/sums"
g_check "umount" umount /mnt
g_check "detach" $S detach $DEV
