#!/usr/bin/env bash
# extended_headers.sh: NBD extended headers on the wire with the raw test client
# (tests/raw/ext_headers.py): 64-bit requests, extended replies, BLOCK_STATUS_EXT
# with effect lengths above 4 GiB, the option-ordering rules, compact requests refused.
# No packaged client speaks extended headers (libnbd 1.14, qemu 7.2), hence the raw client.
. "$(dirname "$0")/../lib.sh"
need_deps
top=$(cd "$(dirname "$0")/../.." && pwd)

big=$T/big.img
truncate -s 8G "$big"
head -c 64k /dev/urandom | dd of="$big" conv=notrunc status=none
head -c 64k /dev/urandom | dd of="$big" bs=64k seek=$(((6 << 30) >> 16)) conv=notrunc status=none

if ! start_shunt "$(export_arg big "$big")"; then
  tap_fail "shunt serve started"; tap_finish; exit 1
fi
tap_relay timeout 180 /usr/bin/python3 "$top/tests/raw/ext_headers.py" "$PORT" big "$big"
tap_check "a well-behaved client (nbdinfo) still works" timeout 30 nbdinfo "nbd://127.0.0.1:$PORT/big"
tap_check "server still alive" shunt_alive
tap_check "server stops cleanly" stop_shunt_within
tap_finish
