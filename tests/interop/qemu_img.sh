#!/usr/bin/env bash
# qemu_img.sh: qemu-img against shunt serve: `qemu-img convert` of a 256 MiB image
# (random data and holes) into shunt over TCP and back out over a unix socket, with
# identical sha256 checksums; `qemu-img info` sees the right size.
. "$(dirname "$0")/../lib.sh"
need_deps

src=$T/src.img dst=$T/dst.img out=$T/out.img
size=$((256 << 20))
truncate -s "$size" "$src"
# Random data at offsets in MiB:length in KiB; the rest stays a hole.
for spec in 0:1024 3:5120 40:16384 100:64 128:32768 255:1024; do
  head -c $((${spec#*:} << 10)) /dev/urandom |
    dd of="$src" bs=64k seek=$((${spec%%:*} << 4)) conv=notrunc status=none
done
# The target starts with garbage where the source has holes, so zeroes must be written.
truncate -s "$size" "$dst"
for mib in 1 60 200; do
  head -c $((2 << 20)) /dev/zero | tr '\0' '\377' |
    dd of="$dst" bs=1M seek="$mib" conv=notrunc status=none
done
sum() { sha256sum "$1" | cut -d' ' -f1; }
want=$(sum "$src")

if start_shunt "$(export_arg disk "$dst")"; then
  uri="nbd://127.0.0.1:$PORT/disk"
  tap_check "qemu-img info reports 256 MiB over TCP" \
    bash -c "timeout 30 qemu-img info --output=json '$uri' | grep -q '\"virtual-size\": $size'"
  tap_check "qemu-img convert into shunt (TCP, -m 4 -W)" \
    timeout 180 qemu-img convert -n -f raw -O raw -m 4 -W "$src" "$uri"
  tap_check "qemu-img compare source vs export" timeout 120 qemu-img compare -f raw -F raw "$src" "$uri"
  tap_check "server stops cleanly" stop_shunt_within
  got=$(sum "$dst")
  tap_check "backing file sha256 equals the source's" test "$got" = "$want"
else
  tap_fail "shunt serve started (TCP)"
fi

if start_shunt_unix "$(export_arg disk "$dst" ro)"; then
  uri="nbd+unix:///disk?socket=$SOCK"
  tap_check "qemu-img convert out of shunt (unix socket)" \
    timeout 180 qemu-img convert -f raw -O raw "$uri" "$out"
  got=$(sum "$out")
  tap_check "copied-out image sha256 equals the source's" test "$got" = "$want"
  tap_check "qemu-img info over the unix socket reports 256 MiB" \
    bash -c "timeout 30 qemu-img info --output=json '$uri' | grep -q '\"virtual-size\": $size'"
  stop_shunt_within >/dev/null
else
  tap_fail "shunt serve started (unix)"
fi
tap_finish
