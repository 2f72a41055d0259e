#!/usr/bin/env bash
# tests/vm/peer_nbd_client.sh: proves the VM harness and the kernel nbd path with peer
# tools: Debian's nbd-client in the guest against nbdkit (file plugin) on the host's
# loopback. The host then checks the image itself: e2fsck and the files' checksums.
. "$(dirname "$0")/lib.sh"
vm_require

SIZE=$((64 * 1024 * 1024))
img=$T/disk.img
truncate -s $SIZE "$img"
PORT=$(free_port)
nbdkit -f -i 127.0.0.1 -p "$PORT" file "$img" >"$T/nbdkit.log" 2>&1 &
_cleanup_pids+=("$!")
wait_port "$PORT" 10 || { tap_fail "nbdkit listens on 127.0.0.1:$PORT"; cat "$T/nbdkit.log"; tap_done; exit 1; }

vm_boot peer "$VM_DIR/guest/peer_nbd_client.sh" PORT="$PORT" SIZE="$SIZE"
vm_report peer

# A second path to the same bytes: the image file, read on the host.
tap_check "host: e2fsck of the image is clean" e2fsck -fn "$img"
mkdir -p "$T/out"
for f in f1 f2 f3 f4 f5; do debugfs -R "dump /dir/$f $T/out/$f" "$img" >/dev/null 2>&1; done
debugfs -R "cat /SUMS" "$img" 2>/dev/null >"$T/SUMS"
tap_check "host: the guest's files have the guest's checksums" \
  sh -c "test \$(wc -l <'$T/SUMS') = 5 && cd '$T/out' && md5sum -c '$T/SUMS'"
tap_done
