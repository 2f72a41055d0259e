# tests/vm/guest/kernel_attach.sh: runs inside the guest (see kernel_attach.sh).
# `shunt attach` against the host's server at $URI: ext4, detach, re-attach with two
# connections, then --persist across a server kill and restart under I/O, then
# --persist with a --failover gateway ($URIB) when the first one ($URIA) dies.
S=$SHUNT_BIN
show() { sed 's/^/guest:   /' "$@"; }

DEV=$($S attach "$URI" 2>/tmp/attach.err)
show /tmp/attach.err
g_must "shunt attach $URI prints a device (${DEV:-none})" test -n "$DEV"
N=${DEV#/dev/}
$S list >/tmp/list
show /tmp/list
g_check "shunt list: $DEV, $SIZE bytes, $URI" grep -qx "$(printf '%s\t%s\t%s' $DEV $SIZE "$URI")" /tmp/list
g_check "FUA and flush reach the device (queue/fua, write back)" \
  sh -c "test \$(cat /sys/block/$N/queue/fua) = 1 && grep -q 'write back' /sys/block/$N/queue/write_cache"
g_must "mkfs.ext4 on $DEV" /usr/sbin/mkfs.ext4 -q -F $DEV
g_must "mount" mount -t ext4 $DEV /mnt
mkdir -p /mnt/d
for i in 1 2 3; do head -c $((i * 1000000 + 17)) /dev/urandom >/mnt/d/f$i; done
(cd /mnt/d && md5sum f1 f2 f3) >/tmp/sums
g_check "write files, sync, umount" sh -c "sync && umount /mnt"
g_check "e2fsck clean" /usr/sbin/e2fsck -fn $DEV
g_check "shunt detach $DEV" $S detach $DEV
g_check "shunt list no longer shows $DEV" sh -c "$S list | awk -v d=$DEV '\$1 == d { f = 1 } END { exit f }'"
g_check "$DEV has size 0" test "$(cat /sys/block/$N/size)" = 0
g_check "shunt detach of a free device fails" sh -c "! $S detach $DEV"

DEV2=$($S attach -C 2 "$URI" $DEV 2>/tmp/attach.err)
show /tmp/attach.err
g_must "re-attach with --connections 2 on $DEV" test "$DEV2" = "$DEV"
g_check "two connections in use (not refused for multi-conn)" sh -c "! grep -q 'of 2 connections' /tmp/attach.err"
g_must "mount again" mount -t ext4 $DEV /mnt
g_check "files intact after re-attach" sh -c "cd /mnt/d && md5sum -c /tmp/sums"
g_check "umount" umount /mnt
g_check "attach to a busy device is refused" sh -c "! $S attach '$URI' $DEV"
g_check "detach" $S detach $DEV

# --persist: kill the server during I/O, restart it; the monitor reconnects and
# no error reaches the filesystem.
$S attach --persist -C 2 "$URI" /dev/nbd1 >/tmp/persist.out 2>/tmp/persist.err &
MON=$!
i=0
while ! grep -q /dev/nbd1 /tmp/persist.out && [ $i -lt 100 ]; do sleep 0.1; i=$((i + 1)); done
g_must "shunt attach --persist on /dev/nbd1" grep -qx /dev/nbd1 /tmp/persist.out
g_must "mount /dev/nbd1" mount -t ext4 /dev/nbd1 /mnt
mkdir -p /mnt/p
head -c 1000000 /dev/urandom >/tmp/rnd
: >/tmp/psums
( i=0
  while [ ! -e /tmp/stop ]; do
    { echo "chunk $i"; cat /tmp/rnd; } >/tmp/chunk
    md5sum </tmp/chunk | sed "s|-\$|/mnt/p/c$i|" >>/tmp/psums
    /usr/bin/dd if=/tmp/chunk of=/mnt/p/c$i bs=64k conv=fsync status=none || exit 1
    i=$((i + 1))
    echo $i >/tmp/count
  done ) &
W=$!
count() { cat /tmp/count 2>/dev/null || echo 0; }
i=0
while [ "$(count)" -lt 2 ] && [ $i -lt 300 ]; do sleep 0.1; i=$((i + 1)); done
g_mark io-running
g_wait_host server-restarted 120
n=$(count)
i=0
while [ "$(count)" -lt $((n + 3)) ] && [ $i -lt 600 ]; do sleep 0.1; i=$((i + 1)); done
touch /tmp/stop
wait $W
g_check "writes with fsync went on across the restart without an error ($(count) chunks)" test $? = 0
g_check "the monitor reconnected" grep -q 'reconnected' /tmp/persist.err
while read -r l; do g_note "monitor: $l"; done </tmp/persist.err
sync
echo 3 >/proc/sys/vm/drop_caches
g_check "every chunk reads back intact" md5sum -c /tmp/psums
g_check "umount" umount /mnt
g_check "e2fsck clean after the restart" /usr/sbin/e2fsck -fn /dev/nbd1
g_check "no I/O error reached the block layer" sh -c "! dmesg | grep -iE 'I/O error|blk_update_request'"
g_check "shunt detach /dev/nbd1" $S detach /dev/nbd1
i=0
while kill -0 $MON 2>/dev/null && [ $i -lt 100 ]; do sleep 0.1; i=$((i + 1)); done
wait $MON
g_check "the --persist monitor ended after detach, status 0" test $? = 0
g_mark fs-done
g_wait_host fs-checked 120

# --persist --failover: two gateways of one image; the host kills A for good under
# I/O and the monitor gives the kernel sockets to B: no error reaches the filesystem.
$S attach --persist -C 2 --failover "$URIB" "$URIA" /dev/nbd3 >/tmp/fo.out 2>/tmp/fo.err &
MON=$!
i=0
while ! grep -q /dev/nbd3 /tmp/fo.out && [ $i -lt 100 ]; do sleep 0.1; i=$((i + 1)); done
g_must "shunt attach --persist --failover on /dev/nbd3" grep -qx /dev/nbd3 /tmp/fo.out
g_must "mkfs.ext4 on /dev/nbd3" /usr/sbin/mkfs.ext4 -q -F /dev/nbd3
g_must "mount /dev/nbd3" mount -t ext4 /dev/nbd3 /mnt
mkdir -p /mnt/q
: >/tmp/qsums
rm -f /tmp/count /tmp/stop
( i=0
  while [ ! -e /tmp/stop ]; do
    { echo "chunk $i"; cat /tmp/rnd; } >/tmp/chunk
    md5sum </tmp/chunk | sed "s|-\$|/mnt/q/c$i|" >>/tmp/qsums
    /usr/bin/dd if=/tmp/chunk of=/mnt/q/c$i bs=64k conv=fsync status=none || exit 1
    i=$((i + 1))
    echo $i >/tmp/count
  done ) &
W=$!
i=0
while [ "$(count)" -lt 2 ] && [ $i -lt 300 ]; do sleep 0.1; i=$((i + 1)); done
g_mark io-running2
g_wait_host gateway-killed 120
n=$(count)
i=0
while [ "$(count)" -lt $((n + 3)) ] && [ $i -lt 600 ]; do sleep 0.1; i=$((i + 1)); done
touch /tmp/stop
wait $W
g_check "writes with fsync went on after gateway A died ($(count) chunks)" test $? = 0
g_check "the monitor reconnected to gateway B" grep -q "reconnected to $URIB" /tmp/fo.err
while read -r l; do g_note "monitor: $l"; done </tmp/fo.err
sync
echo 3 >/proc/sys/vm/drop_caches
g_check "every chunk reads back intact through gateway B" md5sum -c /tmp/qsums
g_check "umount" umount /mnt
g_check "e2fsck clean after the failover" /usr/sbin/e2fsck -fn /dev/nbd3
g_check "no I/O error reached the block layer" sh -c "! dmesg | grep -iE 'I/O error|blk_update_request'"
g_check "shunt detach /dev/nbd3" $S detach /dev/nbd3
i=0
while kill -0 $MON 2>/dev/null && [ $i -lt 100 ]; do sleep 0.1; i=$((i + 1)); done
wait $MON
g_check "the --persist --failover monitor ended after detach, status 0" test $? = 0
g_mark failover-done

# Without --persist, a server that stops answering (its connections stay open) must end in
# an error, not in processes stuck in D state (NetworkBlockDevice/nbd #92, #93): --timeout
# bounds the wait. (A server that is killed closes its sockets; the kernel sees that.)
DEV3=$($S attach -q --timeout 3 "$URI" /dev/nbd2 2>/tmp/attach.err)
g_must "attach /dev/nbd2 with --timeout 3" test "$DEV3" = /dev/nbd2
head -c $((1 << 20)) /dev/urandom >/tmp/mb
( while /usr/bin/dd if=/tmp/mb of=/dev/nbd2 bs=64k oflag=direct status=none; do :; done ) &
W=$!
sleep 1
g_mark stop-server
g_wait_host server-stopped 120 || { kill $W; exit 1; }
t0=$(cut -d' ' -f1 /proc/uptime)
i=0
while kill -0 $W 2>/dev/null && [ $i -lt 400 ]; do sleep 0.1; i=$((i + 1)); done
t=$(awk -v a=$t0 -v b=$(cut -d' ' -f1 /proc/uptime) 'BEGIN { print int(b - a) }')
g_check "writes to the silent server failed within 40 s instead of hanging (${t}s)" sh -c "! kill -0 $W 2>/dev/null"
g_check "shunt detach /dev/nbd2 after the server went silent" $S detach /dev/nbd2
dmesg | grep -i nbd | tail -n 20
