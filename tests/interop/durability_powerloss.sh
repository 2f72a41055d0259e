#!/usr/bin/env bash
# tests/interop/durability_powerloss.sh: acknowledged-durable writes survive a power cut.
# The export lives on tests/tools/lossyfs, a FUSE file that keeps writes in memory until
# fsync/fdatasync (the kernel sends one for RWF_DSYNC/O_DSYNC writes too). A "power cut"
# SIGKILLs lossyfs and then the server: every write not synced is lost, as it would be
# from a volatile disk cache. Same journal and checks as durability_crash.sh, so this
# fails if the server answers FLUSH without fdatasync, or FUA without RWF_DSYNC (or an
# fdatasync) of the data. A last round stops the server with SIGTERM and then cuts the
# power: every acknowledged write must have been flushed.
# What it does not model: reordering or tearing inside the disk, or fs metadata loss.
# The export is built with export_arg (durability-lib.sh), so the runner
# repeats this test on every data path of --datapaths.
. "$(dirname "$0")/../lib.sh"
. "$SHUNT_TOP/tests/tools/trust-lib.sh"
. "$SHUNT_TOP/tests/tools/durability-lib.sh"
need_deps

LOSSYFS=$SHUNT_BUILD/tests/tools/lossyfs
if [ ! -x "$LOSSYFS" ] || [ ! -c /dev/fuse ]; then
  tap_fail "power-cut emulation needs FUSE: /dev/fuse and $LOSSYFS (libfuse3-dev at build time)"
  tap_done; exit 1
fi
IMG=$T/backing.img
MNT=$T/lossy
EXPORT_PATH=$MNT/disk.img
mkdir -p "$MNT"
lossy_pid=
storage_up() {
  ASAN_OPTIONS=detect_leaks=0 "$LOSSYFS" "$IMG" "$MNT" -f -s 2>>"$T/lossyfs.log" &
  lossy_pid=$!
  local k
  for ((k = 0; k < 100; k++)); do
    [ -e "$EXPORT_PATH" ] && return 0
    kill -0 $lossy_pid 2>/dev/null || break
    sleep 0.05
  done
  cat "$T/lossyfs.log"; return 1
}
power_off() {
  kill -KILL $lossy_pid 2>/dev/null; wait $lossy_pid 2>/dev/null
  umount -l "$MNT" 2>/dev/null
  lossy_pid=
}
crash() {
  power_off
  kill -KILL "$SHUNT_PID" 2>/dev/null; wait "$SHUNT_PID" 2>/dev/null
}
clean_cut() { power_off; }
powerloss_cleanup() {
  [ -n "${SHUNT_PID:-}" ] && kill -KILL "$SHUNT_PID" 2>/dev/null
  [ -n "$lossy_pid" ] && power_off
  _cleanup
}
trap powerloss_cleanup EXIT

run_durability "power cut" "a power cut"
power_off
syncs=$(grep -c '^lossyfs: sync' "$T/lossyfs.log")
echo "# lossyfs served syncs: $(grep '^lossyfs: sync' "$T/lossyfs.log" | tail -n 1)"
tap_done
