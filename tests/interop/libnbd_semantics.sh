#!/usr/bin/env bash
# libnbd_semantics.sh: NBD command semantics checked with python3-libnbd
# (libnbd_semantics.py): structured/simple reads, block status, trim, zeroes,
# fast zero, FUA/flush, read-only refusals, EINVAL cases, oversize, multi-conn.
. "$(dirname "$0")/../lib.sh"
need_deps
here=$(cd "$(dirname "$0")" && pwd)

img=$T/disk.img ro=$T/ro.img
truncate -s 64M "$img"
layout="0:64 1024:256 3072:1024 20480:4 32768:2048"   # data runs, offset:length in KiB
for spec in $layout; do
  head -c $((${spec#*:} << 10)) /dev/urandom |
    dd of="$img" bs=4k seek=$((${spec%%:*} / 4)) conv=notrunc status=none
done
truncate -s 16M "$ro"
head -c 1M /dev/urandom | dd of="$ro" conv=notrunc status=none
ro_sum=$(sha256sum <"$ro")

if ! start_shunt "$(export_arg disk "$img")" "$(export_arg rodisk "$ro" ro)" \
                 "$(export_arg mem 32M backend=memory)"; then
  tap_fail "shunt serve started"; tap_finish; exit 1
fi
base="nbd://127.0.0.1:$PORT"
tap_relay timeout 240 /usr/bin/python3 "$here/libnbd_semantics.py" \
  "$base/disk" "$img" "$layout" "$base/rodisk" "$base/mem"
tap_check "read-only export's file is unchanged" test "$(sha256sum <"$ro")" = "$ro_sum"
tap_check "server still alive" shunt_alive
tap_check "server stops cleanly" stop_shunt_within
tap_finish
