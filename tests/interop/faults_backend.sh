#!/usr/bin/env bash
# tests/interop/faults_backend.sh: backend errors reach the client with the right errno
# and the server keeps running.
# - EIO: the export sits on a device-mapper device whose middle is an `error` target
#   (linear + error + linear over a loop device). Where the kernel has no device-mapper,
#   the same layout comes from tests/tools/eiofs, a FUSE file failing I/O in that range.
# - ENOSPC: a sparse 64 MiB export on an 8 MiB loop-mounted ext4; writes run until the
#   filesystem is full and the client must see ENOSPC, not EIO or a dropped connection.
. "$(dirname "$0")/../lib.sh"
. "$SHUNT_TOP/tests/tools/trust-lib.sh"
need_deps

SIZE=$((32 << 20))
BAD_OFF=$((12 << 20)) BAD_LEN=$((4 << 20))
dm_name= loopdev= fuse_mnt= fs_mnt=
backend_cleanup() {
  [ -n "${SHUNT_PID:-}" ] && kill -KILL "$SHUNT_PID" 2>/dev/null && wait "$SHUNT_PID" 2>/dev/null
  [ -n "$dm_name" ] && dmsetup remove "$dm_name" 2>/dev/null
  [ -n "$loopdev" ] && losetup -d "$loopdev" 2>/dev/null
  [ -n "$fuse_mnt" ] && { fusermount3 -u "$fuse_mnt" 2>/dev/null || umount -l "$fuse_mnt"; }
  [ -n "$fs_mnt" ] && { umount "$fs_mnt" 2>/dev/null || umount -l "$fs_mnt"; }
  _cleanup
}
trap backend_cleanup EXIT

# server_checks WHAT: the server survived; SIGTERM ends it with status 0.
server_checks() {
  if server_alive; then tap_ok "$1: server still running"; else tap_fail "$1: server died"; fi
  tap_check "$1: nbdinfo still answers" nbdinfo "$(nbd_uri)"
  stop_shunt_bounded 20
  local rc=$?
  if [ $rc -eq 0 ]; then tap_ok "$1: SIGTERM exit status 0"
  else tap_fail "$1: SIGTERM exit status $rc"; tail -n 20 "$T/shunt.log" | sed 's/^/#   /'; fi
  SHUNT_PID=
}

# --- EIO ---------------------------------------------------------------------------
truncate -s $SIZE "$T/back.img"
eio_path=
if dmsetup targets 2>/dev/null | grep -q '^error'; then
  loopdev=$(losetup -f --show "$T/back.img") || { tap_fail "losetup"; tap_done; exit 1; }
  dm_name=shunt-eio-$$
  s0=$((BAD_OFF / 512)) s1=$((BAD_LEN / 512)) s2=$(((SIZE - BAD_OFF - BAD_LEN) / 512))
  printf '0 %d linear %s 0\n%d %d error\n%d %d linear %s %d\n' \
    $s0 "$loopdev" $s0 $s1 $((s0 + s1)) $s2 "$loopdev" $((s0 + s1)) |
    dmsetup create "$dm_name" || { tap_fail "dmsetup create"; tap_done; exit 1; }
  udevadm settle 2>/dev/null
  eio_path=/dev/mapper/$dm_name
  echo "# EIO from device-mapper: $eio_path (error target at $BAD_OFF+$BAD_LEN)"
elif [ -x "$SHUNT_BUILD/tests/tools/eiofs" ] && [ -c /dev/fuse ]; then
  fuse_mnt=$T/fuse
  mkdir -p "$fuse_mnt"
  ASAN_OPTIONS=detect_leaks=0 "$SHUNT_BUILD/tests/tools/eiofs" "$T/back.img" $BAD_OFF $BAD_LEN \
    "$fuse_mnt" -s >"$T/eiofs.log" 2>&1 || { tap_fail "eiofs mount"; cat "$T/eiofs.log"; fuse_mnt=; }
  eio_path=$fuse_mnt/disk.img
  echo "# device-mapper unavailable (dmsetup targets failed); EIO from FUSE: tests/tools/eiofs"
else
  tap_fail "no way to inject EIO: device-mapper is unavailable in this kernel ('dmsetup targets' failed) and FUSE (/dev/fuse + \$SHUNT_BUILD/tests/tools/eiofs) too"
fi

if [ -n "$eio_path" ] && [ -e "$eio_path" ]; then
  if start_shunt_retry "$(export_arg disk "$eio_path")"; then
    tap_relay $PY "$TOOLS/backend_client.py" eio "$(nbd_uri)" $BAD_OFF $BAD_LEN
    qemu-io -f raw -c "read $((BAD_OFF + 65536)) 64k" "$(nbd_uri)" >"$T/qio.out" 2>&1
    if grep -q 'read failed: Input/output error' "$T/qio.out"; then
      tap_ok "qemu-io read of the failing range reports an I/O error"
    else tap_fail "qemu-io read of the failing range reports an I/O error"; sed 's/^/#   /' "$T/qio.out"; fi
    tap_check "qemu-io reads outside the failing range" \
      qemu-io -f raw -c "read 0 1M" -c "read $((BAD_OFF + BAD_LEN)) 1M" "$(nbd_uri)"
    server_checks "EIO"
  else
    tap_fail "server starts on $eio_path"
  fi
fi

# --- ENOSPC ------------------------------------------------------------------------
truncate -s 8M "$T/fs.img"
mkfs.ext4 -q -F -m 0 "$T/fs.img" || { tap_fail "mkfs.ext4"; tap_done; exit 1; }
fs_mnt=$T/fs
mkdir -p "$fs_mnt"
if mount -o loop "$T/fs.img" "$fs_mnt"; then
  truncate -s 64M "$fs_mnt/disk.img"
  if start_shunt_retry "$(export_arg disk "$fs_mnt/disk.img")"; then
    tap_relay $PY "$TOOLS/backend_client.py" enospc "$(nbd_uri)"
    server_checks "ENOSPC"
  else
    tap_fail "server starts on a full filesystem"
  fi
else
  tap_fail "loop-mount an 8 MiB ext4 (mount -o loop)"; fs_mnt=
fi

tap_check "server log has no sanitizer report" sanitizer_clean "$T/shunt.log"
tap_done
