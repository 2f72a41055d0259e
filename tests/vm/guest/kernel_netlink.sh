# tests/vm/guest/kernel_netlink.sh: runs inside the guest (see kernel_netlink.sh).
# tools/nbd-netlink.c against the real kernel driver, through nbd-fixture ($FX): a
# memory disk served over socketpairs handed to the kernel with NBD_CMD_CONNECT.
g_check "STATUS lists nbd0 as free" sh -c "$FX status | grep -qx 'nbd0 free'"

$FX serve 64 -c 2 -t 5 -d 30 -b 4096 >/tmp/fx.log 2>&1 &
FXPID=$!
i=0
while ! grep -q '^device ' /tmp/fx.log && [ $i -lt 100 ]; do sleep 0.1; i=$((i + 1)); done
DEV=$(sed -n 's/^device //p' /tmp/fx.log)
cat /tmp/fx.log
g_must "CONNECT with 2 sockets, any index, gives a device (${DEV:-none})" test -n "$DEV"
N=${DEV#nbd}
B=/sys/block/$DEV
g_check "STATUS reports $DEV connected" sh -c "$FX status | grep -qx '$DEV connected'"
g_check "size is 64 MiB" test "$(cat $B/size)" = $((64 * 2048))
g_check "logical block size 4096" test "$(cat $B/queue/logical_block_size)" = 4096
g_check "backend identifier shunt-fixture" test "$(cat $B/backend)" = shunt-fixture
g_check "FUA advertised (server flags reached the queue)" test "$(cat $B/queue/fua)" = 1
g_check "write-back cache advertised (SEND_FLUSH)" grep -q 'write back' $B/queue/write_cache

head -c $((4 << 20)) /dev/urandom >/tmp/a
g_check "4 MiB written with O_DIRECT|O_DSYNC (FUA)" \
  /usr/bin/dd if=/tmp/a of=/dev/$DEV bs=64k oflag=direct,dsync status=none
g_check "read back equal (O_DIRECT)" \
  sh -c "/usr/bin/dd if=/dev/$DEV bs=64k count=64 iflag=direct status=none | cmp - /tmp/a"
g_check "mkfs.ext4 on $DEV" /usr/sbin/mkfs.ext4 -q -F -E nodiscard /dev/$DEV 32M
g_check "mount, write, umount" sh -c "mount -t ext4 /dev/$DEV /mnt && cp /tmp/a /mnt/a && umount /mnt"
g_check "e2fsck clean" /usr/sbin/e2fsck -fn /dev/$DEV

# Drop both links while 16 MiB of 4 KiB direct writes are in flight: with a dead-connection
# timeout, the kernel holds the I/O and reports LINK_DEAD; the fixture answers with
# NBD_CMD_RECONFIGURE, and the writes complete without an error.
head -c $((16 << 20)) /dev/urandom >/tmp/b
( /usr/bin/dd if=/tmp/b of=/dev/$DEV bs=4k seek=8192 oflag=direct status=none; echo $? >/tmp/dd.rc ) &
DDPID=$!
sleep 0.5
g_check "writes still in flight when the links drop" kill -0 $DDPID
t0=$(cut -d' ' -f1 /proc/uptime)
kill -USR1 $FXPID
wait $DDPID
g_note "writes across the drop finished $(awk -v a=$t0 -v b=$(cut -d' ' -f1 /proc/uptime) 'BEGIN{print b-a}')s after it"
g_check "writes across the dropped links succeeded" test "$(cat /tmp/dd.rc)" = 0
g_check "the fixture got LINK_DEAD for $DEV" grep -q "^link dead $DEV\$" /tmp/fx.log
g_check "the fixture reconfigured $DEV with new sockets" grep -q "^reconfigured $DEV\$" /tmp/fx.log
g_check "data written across the reconnect read back equal" \
  sh -c "/usr/bin/dd if=/dev/$DEV bs=4k skip=8192 count=4096 iflag=direct status=none | cmp - /tmp/b"
g_check "the filesystem is still clean" /usr/sbin/e2fsck -fn /dev/$DEV
g_check "STATUS still reports $DEV connected" sh -c "$FX status | grep -qx '$DEV connected'"

g_check "CONNECT on the busy index is refused: EBUSY" test "$($FX connect-fail 16 -i $N)" = EBUSY
g_check "2 sockets without CAN_MULTI_CONN are refused: EINVAL" \
  test "$($FX connect-fail 16 -c 2 -F 0x0d)" = EINVAL

g_check "DISCONNECT $DEV" $FX disconnect $N
i=0
while kill -0 $FXPID 2>/dev/null && [ $i -lt 100 ]; do sleep 0.1; i=$((i + 1)); done
cat /tmp/fx.log
g_check "the fixture saw NBD_CMD_DISC on every link and ended" grep -q '^done ' /tmp/fx.log
g_check "FUA writes reached the server" grep -qE '^done .* fua=[1-9]' /tmp/fx.log
g_check "flushes reached the server" grep -qE '^done .* flushes=[1-9]' /tmp/fx.log
g_check "STATUS reports $DEV free again" sh -c "$FX status | grep -qx '$DEV free'"
g_check "no I/O error reached the block layer" sh -c "! dmesg | grep -iE 'I/O error|blk_update_request'"
dmesg | grep -i nbd | tail -n 20
