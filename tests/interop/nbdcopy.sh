#!/usr/bin/env bash
# nbdcopy.sh: nbdcopy --connections=4 round trip through shunt serve: a sparse
# image with random data goes into a file export, from there into a memory export
# (NBD to NBD), and back out to a local file; every sha256 must equal the source's.
. "$(dirname "$0")/../lib.sh"
need_deps

size=$((128 << 20))
src=$T/src.img dst=$T/dst.img out=$T/out.img
truncate -s "$size" "$src"
for spec in 0:512 2048:8192 40960:16 65536:16384 131068:4; do   # offset:length in KiB
  head -c $((${spec#*:} << 10)) /dev/urandom |
    dd of="$src" bs=4k seek=$((${spec%%:*} / 4)) conv=notrunc status=none
done
# Garbage where the source has holes: the copy must zero them.
truncate -s "$size" "$dst"
for mib in 1 30 100; do
  head -c $((3 << 20)) /dev/zero | tr '\0' '\252' | dd of="$dst" bs=1M seek="$mib" conv=notrunc status=none
done
sum() { sha256sum "$1" | cut -d' ' -f1; }
want=$(sum "$src")

if ! start_shunt "$(export_arg disk "$dst")" "$(export_arg mem "$size" backend=memory)"; then
  tap_fail "shunt serve started"; tap_finish; exit 1
fi
base="nbd://127.0.0.1:$PORT"
copy() { timeout 180 nbdcopy --connections=4 --flush "$@"; }

tap_check "nbdcopy --connections=4 file -> shunt file export" copy "$src" "$base/disk"
tap_check "nbdcopy --connections=4 shunt file export -> shunt memory export" copy "$base/disk" "$base/mem"
truncate -s "$size" "$out"
tap_check "nbdcopy --connections=4 shunt memory export -> file" copy "$base/mem" "$out"
tap_check "backing file sha256 equals the source's" test "$(sum "$dst")" = "$want"
tap_check "copied-out file sha256 equals the source's" test "$(sum "$out")" = "$want"
tap_check "nbdcopy --connections=4 of the file export to stdout equals the source (cmp)" \
  bash -c "timeout 120 nbdcopy --connections=4 '$base/disk' - | cmp - '$src'"
tap_check "server still alive" shunt_alive
tap_check "server stops cleanly" stop_shunt_within
tap_finish
