# tests/vm/guest/vhost_restart.sh: runs inside the guest (see vhost_restart.sh).
# Two writers on /dev/vda, one per vCPU (so one per queue): files with fsync on ext4 in
# [0, FS_MB), and the pattern /data/pat rewritten O_DIRECT at PAT_MB by four writers.
# The host kills the backend, then stops it with SIGTERM, each time while they run, and
# starts it again; the writes must go on without an error.
D=/dev/vda DD=/usr/bin/dd
R=$((REGION_MB << 20))
g_must "mkfs.ext4 on the first $FS_MB MiB of $D" /usr/sbin/mkfs.ext4 -q -F -b 4096 $D $((FS_MB * 256))
g_must "mount" mount -t ext4 $D /mnt
mkdir -p /mnt/c
head -c 300000 /dev/urandom >/tmp/rnd
: >/tmp/sums
( i=0
  while [ ! -e /tmp/stop ]; do
    { echo "chunk $i"; cat /tmp/rnd; } >/tmp/chunk
    (cd /tmp && md5sum chunk) | sed "s| chunk\$| c$i|" >>/tmp/sums
    $DD if=/tmp/chunk of=/mnt/c/c$i bs=64k conv=fsync status=none || exit 1
    i=$((i + 1))
    echo $i >/tmp/files.new && mv /tmp/files.new /tmp/files   # whole, for readers
  done ) &
FW=$!
taskset -p 1 $FW >/dev/null
# A pattern round: four O_DIRECT writers on the region's quarters at once, so that
# several requests are in flight on the queue when the backend dies.
round() {
  _q=$((R / 4)) _k=0 _pids=
  while [ $_k -lt 4 ]; do
    $DD if=/data/pat of=$D bs=64k iflag=skip_bytes,count_bytes oflag=direct,seek_bytes \
      skip=$((_k * _q)) seek=$(((PAT_MB << 20) + _k * _q)) count=$_q conv=notrunc,fsync status=none &
    _pids="$_pids $!"
    _k=$((_k + 1))
  done
  _rc=0
  for _p in $_pids; do wait $_p || _rc=1; done
  return $_rc
}
( i=0
  while [ ! -e /tmp/stop ]; do
    round || exit 1
    i=$((i + 1))
    echo $i >/tmp/raws.new && mv /tmp/raws.new /tmp/raws   # whole, for readers
  done ) &
RW=$!
taskset -p 2 $RW >/dev/null
files() { cat /tmp/files 2>/dev/null || echo 0; }
raws() { cat /tmp/raws 2>/dev/null || echo 0; }
# progress NF NR: wait (bounded) until both writers passed NF files and NR pattern rounds.
progress() {
  _i=0
  while { [ "$(files)" -lt $1 ] || [ "$(raws)" -lt $2 ]; } && [ $_i -lt 900 ]; do
    sleep 0.1; _i=$((_i + 1))
  done
  [ "$(files)" -ge $1 ] && [ "$(raws)" -ge $2 ]
}
g_check "both writers under way" progress 2 1
# Two restarts: after a SIGKILL (round "kill"), then after a SIGTERM (round "term").
for r in kill term; do
  g_note "before the $r: $(files) files, $(raws) pattern rounds"
  g_mark io-running-$r
  g_wait_host backend-restarted-$r 300 || exit 1
  nf=$(files) nr=$(raws)
  if ! g_check "writes go on after the $r and restart (3 more files, 2 more pattern rounds)" \
      progress $((nf + 3)) $((nr + 2)); then
    g_note "writers stuck at $(files) files, $(raws) pattern rounds"
    dmesg | tail -n 30
    exit 1
  fi
done
touch /tmp/stop
wait $FW
g_check "file writer (fsync per file) ended without an error ($(files) files)" test $? = 0
wait $RW
g_check "O_DIRECT pattern writer ended without an error ($(raws) rounds)" test $? = 0
cp /tmp/sums /mnt/SUMS
g_check "flush (sync)" sync
echo 3 >/proc/sys/vm/drop_caches
g_check "every file reads back intact" sh -c "cd /mnt/c && md5sum -c /tmp/sums >/dev/null"
g_check "umount" umount /mnt
g_check "e2fsck -fn clean after the restart" /usr/sbin/e2fsck -fn $D
g_check "the pattern reads back (O_DIRECT)" sh -c \
  "$DD if=$D bs=64k iflag=direct skip=$((PAT_MB * 16)) count=$((REGION_MB * 16)) status=none | /usr/bin/cmp - /data/pat"
g_check "no I/O error reached the block layer" sh -c "! dmesg | grep -iE 'I/O error|blk_update_request|critical'"
dmesg | grep -iE 'virtio|vd[a-z]' | tail -n 10
