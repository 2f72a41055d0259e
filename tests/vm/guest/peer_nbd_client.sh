# tests/vm/guest/peer_nbd_client.sh: runs inside the guest (see peer_nbd_client.sh).
# Debian's nbd-client attaches the host's nbdkit export; ext4 on top; data survive a
# detach and a re-attach with two connections.
D=/dev/nbd0
attached() { [ "$(cat /sys/block/nbd0/size)" != 0 ] && [ -e /sys/block/nbd0/pid ]; }
g_must "nbd-client attaches $HOST:$PORT to $D" /usr/sbin/nbd-client $HOST $PORT $D -b 4096
g_check "$D has the export's size ($SIZE bytes)" test "$(cat /sys/block/nbd0/size)" = $((SIZE / 512))
g_must "mkfs.ext4 on $D" /usr/sbin/mkfs.ext4 -q -F -b 4096 $D
g_must "mount ext4" mount -t ext4 $D /mnt
mkdir -p /mnt/dir
for i in 1 2 3 4; do
  head -c $((i * 1024 * 1024 + 1234)) /dev/urandom >/mnt/dir/f$i
done
(cd /mnt/dir && md5sum f1 f2 f3 f4) >/tmp/sums
cp /tmp/sums /mnt/SUMS
g_check "sync" sync
g_check "umount" umount /mnt
g_check "e2fsck clean after umount" /usr/sbin/e2fsck -fn $D
g_check "nbd-client -d detaches" /usr/sbin/nbd-client -d $D
sleep 0.5
g_check "$D is detached" sh -c '! [ -e /sys/block/nbd0/pid ]'
g_check "the detached $D has size 0" test "$(cat /sys/block/nbd0/size)" = 0
g_must "re-attach with 2 connections" /usr/sbin/nbd-client $HOST $PORT $D -b 4096 -C 2
g_check "$D attached again" attached
g_must "mount again" mount -t ext4 $D /mnt
g_check "file contents intact after re-attach" sh -c "cd /mnt/dir && md5sum -c /tmp/sums"
g_check "write more through 2 connections" sh -c "head -c 3000000 /dev/urandom >/mnt/dir/f5 && sync"
(cd /mnt/dir && md5sum f5) >>/mnt/SUMS
g_check "umount" umount /mnt
g_check "e2fsck clean" /usr/sbin/e2fsck -fn $D
g_check "detach" /usr/sbin/nbd-client -d $D
