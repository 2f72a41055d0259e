#!/usr/bin/env bash
# qemu_io.sh: qemu-io against shunt serve over TCP and over a unix socket.
# Pattern writes at several offsets must read back with -P (and in the backing
# file itself); reading with a different pattern must fail.
. "$(dirname "$0")/../lib.sh"
need_deps

img=$T/disk.img
truncate -s 64M "$img"

# qio URI COMMANDS...: run qemu-io with one -c per command; output in $T/qio.out.
# Fails when qemu-io fails or reports a failed pattern verification or I/O error.
qio() {
  local uri=$1 c args=(); shift
  for c in "$@"; do args+=(-c "$c"); done
  timeout 60 qemu-io -f raw "${args[@]}" "$uri" >"$T/qio.out" 2>&1 || { cat "$T/qio.out"; return 1; }
  ! grep -Eiq 'verification failed|error|failed' "$T/qio.out" || { cat "$T/qio.out"; return 1; }
}
# qio_must_mismatch URI COMMAND: the read must report a pattern mismatch.
qio_must_mismatch() {
  timeout 60 qemu-io -f raw -c "$2" "$1" >"$T/qio.out" 2>&1
  grep -q 'Pattern verification failed' "$T/qio.out" || { cat "$T/qio.out"; return 1; }
}
# file_has_pattern OFFSET LENGTH BYTE: the backing file holds BYTE repeated there.
file_has_pattern() {
  cmp <(dd if="$img" bs=4096 skip=$(($1 / 4096)) count=$(($2 / 4096)) status=none) \
      <(head -c "$2" /dev/zero | tr '\0' "\\$(printf '%03o' "$3")")
}

# Offsets: start, unaligned to 64k, across 1M boundary, a large write, the last block.
writes=("write -P 0xab 0 64k" "write -P 0xcd 12k 4k" "write -P 0x5a 1020k 8k"
        "write -P 0x11 8M 2M" "write -P 0xe7 $(((64 << 20) - 4096)) 4k")
reads=("read -P 0xab 0 12k" "read -P 0xcd 12k 4k" "read -P 0xab 16k 48k"
       "read -P 0x5a 1020k 8k" "read -P 0x11 8M 2M" "read -P 0xe7 $(((64 << 20) - 4096)) 4k"
       "read -P 0 64k 956k" "read -P 0 16M 1M")

# --- TCP ---
if start_shunt "$(export_arg disk "$img")"; then
  uri="nbd://127.0.0.1:$PORT/disk"
  tap_check "tcp: qemu-io pattern writes at 5 offsets" qio "$uri" "${writes[@]}"
  tap_check "tcp: qemu-io reads back every pattern (-P), zeroes elsewhere" qio "$uri" "${reads[@]}"
  tap_check "tcp: reading 0xab region with pattern 0xcd fails" qio_must_mismatch "$uri" "read -P 0xcd 0 64k"
  tap_check "tcp: reading the zero region with pattern 0x11 fails" qio_must_mismatch "$uri" "read -P 0x11 16M 4k"
  tap_check "tcp: aio writes/reads in flight together (aio_write, aio_read -P)" \
    qio "$uri" "aio_write -P 0x21 32M 256k" "aio_write -P 0x22 33M 256k" "aio_write -P 0x23 34M 4k" "aio_flush" \
               "aio_read -P 0x21 32M 256k" "aio_read -P 0x22 33M 256k" "aio_read -P 0x23 34M 4k" "aio_flush"
  tap_check "tcp: server stops cleanly on SIGTERM" stop_shunt_within
  tap_check "backing file holds 0xab at 0 (12k)" file_has_pattern 0 12288 0xab
  tap_check "backing file holds 0xcd at 12k (4k)" file_has_pattern 12288 4096 0xcd
  tap_check "backing file holds 0x11 at 8M (2M)" file_has_pattern $((8 << 20)) $((2 << 20)) 0x11
  tap_check "backing file holds 0xe7 in the last 4k" file_has_pattern $(((64 << 20) - 4096)) 4096 0xe7
else
  tap_fail "tcp: shunt serve started"
fi

# --- unix socket: same file, a fresh server ---
if start_shunt_unix "$(export_arg disk "$img")"; then
  for style in "nbd+unix:///disk?socket=$SOCK" "json:{\"driver\":\"raw\",\"file\":{\"driver\":\"nbd\",\"server\":{\"type\":\"unix\",\"path\":\"$SOCK\"},\"export\":\"disk\"}}"; do
    tag=${style%%:*}
    tap_check "unix ($tag): earlier patterns read back" qio "$style" "${reads[@]}"
  done
  uri="nbd+unix:///disk?socket=$SOCK"
  tap_check "unix: qemu-io pattern writes" qio "$uri" "write -P 0x77 4M 128k" "write -P 0x78 $(((5 << 20) - 4096)) 8k"
  tap_check "unix: pattern reads back (-P)" qio "$uri" "read -P 0x77 4M 128k" "read -P 0x78 $(((5 << 20) - 4096)) 8k" "read -P 0xab 0 12k"
  tap_check "unix: reading with a wrong pattern fails" qio_must_mismatch "$uri" "read -P 0x78 4M 4k"
  tap_check "unix: server stops cleanly on SIGTERM" stop_shunt_within
  tap_check "backing file holds 0x77 at 4M (128k)" file_has_pattern $((4 << 20)) $((128 << 10)) 0x77
else
  tap_fail "unix: shunt serve --unix started"
fi
tap_finish
