# tests/vm/guest/kernel_attach_shared.sh: one of two guests attaching the same export
# (see kernel_attach.sh). Guest $ME writes 4 MiB region $ME with FUA and flushes; once
# both are done, each reads the other's region back.
S=$SHUNT_BIN
OTHER=$((1 - ME))
DEV=$($S attach -C 2 "$URI" 2>/tmp/attach.err)
sed 's/^/guest:   /' /tmp/attach.err
g_must "shunt attach $URI (${DEV:-none})" test -n "$DEV"
g_check "FUA advertised on $DEV" test "$(cat /sys/block/${DEV#/dev/}/queue/fua)" = 1
g_check "region $ME written with O_DIRECT|O_DSYNC (FUA)" \
  /usr/bin/dd if=/data/pat$ME of=$DEV bs=64k seek=$((ME * 64)) oflag=direct,dsync status=none
g_check "flush (fsync of $DEV)" /usr/bin/dd if=/dev/null of=$DEV conv=fsync,notrunc status=none
g_mark written
g_wait_host verify 120
g_check "the other guest's region $OTHER reads back as it wrote it" sh -c \
  "/usr/bin/dd if=$DEV bs=64k skip=$((OTHER * 64)) count=64 iflag=direct status=none | cmp - /data/pat$OTHER"
g_check "own region $ME still intact" sh -c \
  "/usr/bin/dd if=$DEV bs=64k skip=$((ME * 64)) count=64 iflag=direct status=none | cmp - /data/pat$ME"
g_check "detach" $S detach $DEV
