#!/usr/bin/env bash
# malformed.sh: hostile and malformed input (tests/raw/malformed.py): wrong magics,
# truncated handshakes, lying lengths (4 GiB options and writes), unknown options and
# commands, STARTTLS without TLS, oversize payloads, hang-ups mid-payload. After each
# case the server must be alive, serve nbdinfo, and keep its peak RSS bounded.
. "$(dirname "$0")/../lib.sh"
need_deps
top=$(cd "$(dirname "$0")/../.." && pwd)

img=$T/disk.img
truncate -s 64M "$img"
head -c 1M /dev/urandom | dd of="$img" bs=1M seek=32 conv=notrunc status=none

# Under ASan, freed memory sits in a quarantine (256 MB by default) that would mask
# or fake RSS growth; keep it small so the peak RSS checks measure the server.
export ASAN_OPTIONS="${ASAN_OPTIONS:+$ASAN_OPTIONS:}quarantine_size_mb=16"
if ! start_shunt "$(export_arg disk "$img")"; then
  tap_fail "shunt serve started"; tap_finish; exit 1
fi
tap_relay timeout 400 /usr/bin/python3 "$top/tests/raw/malformed.py" "$PORT" disk "$SHUNT_PID"
tap_check "server still alive at the end" shunt_alive
tap_check "server stops cleanly on SIGTERM" stop_shunt_within
tap_finish
