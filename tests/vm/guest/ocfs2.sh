# tests/vm/guest/ocfs2.sh: node $ME (0 or 1) of the two-node OCFS2 cluster of
# ocfs2_two.sh. Attaches the export $URI with `shunt attach`, puts eth1 (the qemu socket
# network between the two guests) on 10.77.0.$((ME + 1)), registers cluster $CLUSTER with
# the o2cb tool from /etc/ocfs2/cluster.conf, and then follows the host step by step:
# mount, write $NFILES files under /mnt/o2/node$ME, read the other node's files back by
# their checksums (while both are mounted: through the DLM, nothing synced), unmount
# (node 1 first), and (node 0) fsck.ocfs2 -fn of the device; then node 1 dies while
# mounted and node 0 recovers it (below).
S=$SHUNT_BIN
OTHER=$((1 - ME))
MY_IP=10.77.0.$((ME + 1))
OTHER_IP=10.77.0.$((OTHER + 1))
hostname node$ME
# o2net and o2hb report joins, connections and timeouts at KERN_NOTICE: on the console.
echo 6 >/proc/sys/kernel/printk

g_must "eth1 up with $MY_IP/24 (the network between the guests)" sh -c \
  "ip link set eth1 up && ip addr add $MY_IP/24 dev eth1"
DEV=$($S attach "$URI" 2>/tmp/attach.err)
sed 's/^/guest:   /' /tmp/attach.err
g_must "shunt attach $URI (${DEV:-none})" test -n "$DEV"

g_must "configfs on /sys/kernel/config, ocfs2_dlmfs on /dlm" sh -c \
  "mount -t configfs none /sys/kernel/config && mkdir -p /dlm && mount -t ocfs2_dlmfs none /dlm"
g_note "cluster stack: $(cat /sys/fs/ocfs2/cluster_stack 2>&1)"
mkdir -p /etc/ocfs2
{
  printf 'cluster:\n\tname = %s\n\theartbeat_mode = local\n\tnode_count = 2\n\n' "$CLUSTER"
  for n in 0 1; do
    printf 'node:\n\tcluster = %s\n\tnumber = %s\n\tip_port = 7777\n' "$CLUSTER" $n
    printf '\tip_address = 10.77.0.%s\n\tname = node%s\n\n' $((n + 1)) $n
  done
} >/etc/ocfs2/cluster.conf
g_must "o2cb register-cluster $CLUSTER (node$ME local)" /sbin/o2cb register-cluster "$CLUSTER"
g_check "configfs: node$ME is the local node" \
  test "$(cat /sys/kernel/config/cluster/$CLUSTER/node/node$ME/local)" = 1
# The other guest may still be booting: bounded wait for it on the private network.
i=0
while ! ping -c 1 -W 1 $OTHER_IP >/dev/null 2>&1 && [ $i -lt 90 ]; do i=$((i + 1)); done
g_must "node$OTHER ($OTHER_IP) answers on eth1" ping -c 1 -W 2 $OTHER_IP
g_mark ready

g_wait_host mount 240 || exit 1
mkdir -p /mnt/o2
g_must "mount.ocfs2 $DEV (o2cb stack, local heartbeat on the export)" \
  /sbin/mount.ocfs2 "$DEV" /mnt/o2
g_note "heartbeat region(s) on the export: $(cd /sys/kernel/config/cluster/$CLUSTER/heartbeat && ls -d */ | tr -d / | tr '\n' ' ')"
g_mark mounted

g_wait_host write 240 || exit 1
mkdir -p /mnt/o2/node$ME
# Sizes cover inline data (small files), one extent and many: 1 KiB .. 2 MiB.
i=0
while [ $i -lt $NFILES ]; do
  kb=$(( (i * i * 37) % 2048 + 1 ))
  /usr/bin/dd if=/dev/urandom of=/mnt/o2/node$ME/f$i bs=1k count=$kb status=none || break
  i=$((i + 1))
done
g_check "$NFILES files written under /mnt/o2/node$ME" test $i = $NFILES
(cd /mnt/o2/node$ME && md5sum f*) >/tmp/SUMS
g_check "their checksums stored as node$ME/SUMS" cp /tmp/SUMS /mnt/o2/node$ME/SUMS
echo "node$ME was here" >>/mnt/o2/both
g_mark written

g_wait_host verify 240 || exit 1
# The lower-numbered node accepts the connection, the other makes it.
g_check "o2net connected to node$OTHER (kernel log)" sh -c \
  "dmesg | grep -qE 'o2net: (Connected to|Accepted connection from) node node$OTHER '"
g_check "node$OTHER's $NFILES files read back with its checksums (cluster-coherent, unsynced)" \
  sh -c "test \$(wc -l </mnt/o2/node$OTHER/SUMS) = $NFILES && cd /mnt/o2/node$OTHER && md5sum -c -s SUMS"
g_check "own files still read back" sh -c "cd /mnt/o2/node$ME && md5sum -c -s SUMS"
g_check "the shared file holds both nodes' lines" sh -c \
  "grep -qx 'node0 was here' /mnt/o2/both && grep -qx 'node1 was here' /mnt/o2/both"
g_mark verified

g_wait_host umount 240 || exit 1
g_check "umount /mnt/o2" umount /mnt/o2
g_check "no ERROR from ocfs2, o2dlm, o2net or o2hb in the kernel log" sh -c "! dmesg | grep -w ERROR"
g_mark unmounted

# Then a node dies while mounted: both mount again, node 1 writes and syncs more files,
# the host kills node 1's qemu; node 0, the lower node number, survives (o2quo), sees
# node 1 dead after the heartbeat's dead threshold, replays its journal and goes on.
if [ "$ME" = 0 ]; then
  g_wait_host fsck 240 || exit 1
  g_check "fsck.ocfs2 -fn $DEV is clean (both nodes unmounted)" /sbin/fsck.ocfs2 -fn "$DEV"
  g_mark checked
fi
g_wait_host remount 240 || exit 1
g_must "mount.ocfs2 $DEV again" /sbin/mount.ocfs2 "$DEV" /mnt/o2
g_mark remounted
if [ "$ME" = 1 ]; then
  g_wait_host late-write 240 || exit 1
  mkdir -p /mnt/o2/late1
  for i in 0 1 2 3; do
    /usr/bin/dd if=/dev/urandom of=/mnt/o2/late1/f$i bs=64k count=$((i + 1)) status=none
  done
  (cd /mnt/o2/late1 && md5sum f*) >/tmp/LATE
  cp /tmp/LATE /mnt/o2/late1/SUMS
  g_check "4 more files written under /mnt/o2/late1 and synced" sync
  g_mark synced
  # The host kills this guest here.
  g_wait_host never 300
  exit 1
fi
g_wait_host killed 240 || exit 1
g_check "a write after node1's death completes (its locks recovered; within 240 s)" \
  timeout 240 sh -c "echo after >/mnt/o2/after-death && sync"
g_check "node1's journal was replayed here (kernel log)" sh -c \
  "dmesg | grep -q 'replay journal (node 1, slot 1)'"
g_check "node1's synced files read back with its checksums" sh -c \
  "test \$(wc -l </mnt/o2/late1/SUMS) = 4 && cd /mnt/o2/late1 && md5sum -c -s SUMS"
g_check "umount /mnt/o2 (the survivor)" umount /mnt/o2
g_check "fsck.ocfs2 -fn $DEV is clean after the recovery" /sbin/fsck.ocfs2 -fn "$DEV"
g_check "detach $DEV" $S detach "$DEV"
