#!/usr/bin/env bash
# client_copy.sh: `shunt copy` between files and NBD exports of nbdkit and
# qemu-nbd: a 1 GiB sparse image goes file -> NBD -> file with identical
# checksums and its holes preserved; zero blocks become holes/WRITE_ZEROES;
# errors give a non-zero exit.
. "$(dirname "$0")/client_lib.sh"
command -v nbdkit >/dev/null || { tap_skip "copy" "nbdkit not installed"; tap_done; exit; }

alloc_kib() { echo $(( $(stat -c '%b * %B' "$1") / 1024 )); }
json_field() { python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))[sys.argv[2]])' "$1" "$2"; }

# The source: 1 GiB, 5 random 2 MiB regions, some small ones, and 4 MiB of
# zeroes that are allocated (written as data) which the copy should not write.
SRC=$T/src.img
truncate -s 1G "$SRC"
for mib in 0 97 300 511 1020; do
  dd if=/dev/urandom of="$SRC" bs=1M count=2 seek=$mib conv=notrunc status=none
done
for k in 7 1001 70000; do
  dd if=/dev/urandom of="$SRC" bs=4k count=1 seek=$k conv=notrunc status=none
done
dd if=/dev/zero of="$SRC" bs=1M count=4 seek=600 conv=notrunc status=none
sync "$SRC"
SUM=$(md5sum <"$SRC")
echo "# source allocates $(alloc_kib "$SRC") KiB"

start_nbdkit memory 1G
URI=nbd://127.0.0.1:$PORT/
tap_check "file -> nbdkit memory" "$SHUNT" copy --json --flush "$SRC" "$URI"
"$SHUNT" copy --json "$SRC" "$URI" >"$T/up.json" 2>&1
tap_check "upload sent only the data (10+ MiB data, no zero bytes as data)" \
  python3 -c 'import json,sys; j=json.load(open(sys.argv[1])); sys.exit(not (10<<20 <= j["data_bytes"] <= 12<<20 and j["zero_bytes"] >= 1000<<20))' "$T/up.json"
tap_check "nbdkit memory -> file" "$SHUNT" copy "$URI" "$T/dst.img"
tap_check "checksums identical" test "$SUM" = "$(md5sum <"$T/dst.img")"
tap_check "size identical" test "$(stat -c %s "$T/dst.img")" = 1073741824
a=$(alloc_kib "$T/dst.img")
tap_check "holes preserved: destination allocates $a KiB (source $(alloc_kib "$SRC") KiB)" \
  test "$a" -le $(( $(alloc_kib "$SRC") + 64 ))
tap_check "zeroes written as data in the source are a hole in the copy" \
  bash -c "test $a -lt $(( $(alloc_kib "$SRC") - 3000 ))"

# NBD -> NBD (multi-conn on both sides), then back to a file.
start_nbdkit memory 1G
URI2=nbd://127.0.0.1:$PORT/
tap_check "nbdkit -> nbdkit, 4 connections each, progress bar" \
  bash -c "'$SHUNT' copy -C 4 --progress '$URI' '$URI2' 2>'$T/progress' && grep -q '100.0%' '$T/progress'"
tap_check "nbdkit -> file after NBD -> NBD" "$SHUNT" copy "$URI2" "$T/dst2.img"
tap_check "checksums identical after NBD -> NBD" test "$SUM" = "$(md5sum <"$T/dst2.img")"

# nbdkit file plugin as destination.
truncate -s 1G "$T/backing.img"
start_nbdkit file "$T/backing.img"
tap_check "file -> nbdkit file" "$SHUNT" copy --flush "$SRC" "nbd://127.0.0.1:$PORT/"
stop_pid "$NBDKIT_PID"
tap_check "nbdkit file backing has the source's checksum" test "$SUM" = "$(md5sum <"$T/backing.img")"

# qemu-nbd as source (read-only), split sparse reads and base:allocation.
if command -v qemu-nbd >/dev/null; then
  start_qemu_nbd "$SRC" -r
  tap_check "qemu-nbd -> file" "$SHUNT" copy --json "nbd://127.0.0.1:$PORT/disk" "$T/dst3.img"
  tap_check "checksums identical from qemu-nbd" test "$SUM" = "$(md5sum <"$T/dst3.img")"
  a=$(alloc_kib "$T/dst3.img")
  tap_check "holes preserved from qemu-nbd ($a KiB allocated)" test "$a" -le $(( $(alloc_kib "$SRC") + 64 ))
  tap_check "copy to a read-only export fails" bash -c "! '$SHUNT' copy '$T/dst3.img' 'nbd://127.0.0.1:$PORT/disk' 2>/dev/null"
  stop_pid "$QEMU_PID"
else
  tap_skip "qemu-nbd copy" "qemu-nbd not installed"
fi

# Block devices (a loop device over a file pre-filled with 0xff): the zero
# ranges of the source must be zeroed on the device, not skipped.
if [ "$(id -u)" = 0 ] && command -v losetup >/dev/null; then
  SMALL=$T/small.img
  truncate -s 64M "$SMALL"
  dd if=/dev/urandom of="$SMALL" bs=1M count=3 seek=10 conv=notrunc status=none
  python3 -c 'import sys; sys.stdout.buffer.write(b"\xff" * (64 << 20))' >"$T/loop.img"
  if LOOP=$(losetup -f --show "$T/loop.img" 2>/dev/null); then
    start_nbdkit memory 64M
    "$SHUNT" copy "$SMALL" "nbd://127.0.0.1:$PORT/" 2>/dev/null
    tap_check "NBD -> block device $LOOP" "$SHUNT" copy --flush "nbd://127.0.0.1:$PORT/" "$LOOP"
    tap_check "block device -> file" "$SHUNT" copy "$LOOP" "$T/fromloop.img"
    tap_check "block device copy has the source's checksum (zero ranges zeroed)" \
      test "$(md5sum <"$SMALL")" = "$(md5sum <"$T/fromloop.img")"
    losetup -d "$LOOP"
    stop_pid "$NBDKIT_PID"
  else
    tap_skip "block device copy" "no free loop device"
  fi
else
  tap_skip "block device copy" "needs root and losetup for a loop device"
fi

# Errors: a failing source gives a non-zero exit and a message naming it.
start_nbdkit --filter=error memory 64M error-pread=EIO error-pread-rate=100% error-extents-rate=0
"$SHUNT" copy --no-sparse "nbd://127.0.0.1:$PORT/" "$T/err.img" 2>"$T/err.txt"
rc=$?
tap_check "read errors: exit status $rc is 1" test "$rc" = 1
tap_check "read errors: message names the server and request" \
  grep -q "nbd://127.0.0.1:$PORT/: READ .* bytes at offset .*: Input/output error" "$T/err.txt"
tap_check "a destination too small is refused" bash -c "! '$SHUNT' copy '$SRC' 'nbd://127.0.0.1:$PORT/' 2>/dev/null"
tap_check "copy --help" bash -c "'$SHUNT' copy --help | grep -q 'usage: shunt copy'"
tap_done
