#!/usr/bin/env bash
# tests/vm/vhost_restart.sh: the backend is SIGKILLed while a guest writes to its
# vhost-user-blk disk (two queues, a writer on each) and started again on the same socket,
# then stopped with SIGTERM under the same writes and started again.
# qemu reconnects (reconnect=1) and the backend resubmits the requests left in flight
# (INFLIGHT_SHMFD): the guest's writes complete without an I/O error, e2fsck is clean in
# the guest and on the host, and the host finds every file and the pattern in the image.
# So that requests are surely in flight at the kill, the image is a file of
# tests/tools/lossyfs (FUSE) and the host stops that daemon (SIGSTOP) until the backend has
# requests waiting on it (fusectl's count), then kills the backend and lets the daemon go
# on. lossyfs keeps only what was synced: the host's checks read what the flushes saved.
# The backend is `shunt vhost`; SHUNT_VHOST_BACKEND=qsd uses qemu-storage-daemon.
. "$(dirname "$0")/lib.sh"
vm_require
vm_vhost_require
FS_MB=40 PAT_MB=40 REGION_MB=8
backing=$T/backing.img mnt=$T/lossy sock=$T/disk.sock
img=$mnt/disk.img spec=$T/disk.sock=$T/lossy/disk.img,queues=2
truncate -s $((48 << 20)) "$backing"
head -c $((REGION_MB << 20)) /dev/urandom >"$T/pat"
trap 'lossyfs_cleanup "${VHOST_PID:-}"; _cleanup' EXIT
lossyfs_mount "$backing" "$mnt" || { tap_done; exit 1; }
lossy_pid=$LOSSY_PID conn=$LOSSY_CONN
vm_vhost_start "$spec" || { tap_fail "backend serves $spec"; tap_done; exit 1; }
# backend_blocked: the backend's threads in D state, as "NAME:WCHAN" words.
backend_blocked() {
  local t
  for t in /proc/"$VHOST_PID"/task/*; do
    [ "$(awk '{ print $3 }' "$t/stat" 2>/dev/null)" = D ] && printf ' %s:%s' "$(cat "$t/comm")" "$(cat "$t/wchan")"
  done 2>/dev/null
}

VM_SMP=2 VM_VHOST_SOCKS=$sock VM_VHOST_QUEUES=2 VM_VHOST_RECONNECT=1 VM_EXTRA_FILES=$T/pat \
  vm_start restart "$VM_DIR/guest/vhost_restart.sh" FS_MB=$FS_MB PAT_MB=$PAT_MB REGION_MB=$REGION_MB
if vm_wait_mark restart io-running-kill "$VM_TIMEOUT"; then
  # The storage stalls; the guest goes on writing, so the backend soon waits on it: fusectl
  # counts its requests, or a thread of it (an io_uring worker too) stays in D state (seen
  # on two polls in a row: a short D sleep of something else does not count).
  kill -STOP "$lossy_pid"
  prev=
  for ((i = 0; i < 600; i++)); do
    waiting=$(cat "$conn/waiting") blocked=$(backend_blocked)
    [ "${waiting:-0}" -gt 0 ] && break
    [ -n "$blocked" ] && [ -n "$prev" ] && break
    prev=$blocked blocked=
    sleep 0.1
  done
  old=$VHOST_PID
  kill -KILL "$VHOST_PID"
  kill -CONT "$lossy_pid"
  wait "$VHOST_PID" 2>/dev/null
  if [ "${waiting:-0}" -gt 0 ] || [ -n "$blocked" ]; then
    tap_ok "host: backend (pid $old) SIGKILLed while it waited on the stalled storage" \
      "(fusectl: $waiting requests; blocked:${blocked:- none})"
  else
    tap_fail "host: the backend had requests waiting on the stalled storage when killed"
  fi
  if vm_vhost_start "$spec"; then tap_ok "host: backend restarted on the same socket"
  else tap_fail "host: backend restarted on the same socket"; fi
  vm_send restart backend-restarted-kill
fi
# An orderly restart: SIGTERM finishes what is in flight and exits 0; qemu reconnects.
if vm_wait_mark restart io-running-term "$VM_TIMEOUT"; then
  tap_check "host: backend stopped with SIGTERM under the guest's writes, status 0" vm_vhost_stop
  if vm_vhost_start "$spec"; then tap_ok "host: backend started again on the same socket"
  else tap_fail "host: backend started again on the same socket"; fi
  vm_send restart backend-restarted-term
fi
vm_wait restart
vm_report restart
echo "# what qemu said about the backend:"
sed 's/^/#   qemu: /' "$T/restart.qemu.log"
tap_check "host: the restarted backend lived through the guest" kill -0 "$VHOST_PID"
tap_check "host: the backend exits with status 0 on SIGTERM" vm_vhost_stop
vm_vhost_stats
# What lossyfs got no sync for is gone with it: the checks below read what was flushed.
umount "$mnt" && wait "$lossy_pid"
tap_check "host: lossyfs unmounted and exited" sh -c "! mountpoint -q '$mnt'"
img=$backing

tap_check "host: e2fsck -fn of the image is clean" e2fsck -fn "$img"
mkdir -p "$T/out"
debugfs -R "rdump /c $T/out" "$img" >/dev/null 2>&1
debugfs -R "cat /SUMS" "$img" 2>/dev/null >"$T/SUMS"
tap_check "host: every file the guest wrote has the guest's checksum ($(wc -l <"$T/SUMS") files)" \
  sh -c "test -s '$T/SUMS' && cd '$T/out/c' && md5sum -c --quiet '$T/SUMS'"
tap_check "host: the pattern is in the image at $PAT_MB MiB" \
  cmp -i $((PAT_MB << 20)):0 -n $((REGION_MB << 20)) "$img" "$T/pat"
# What the restarted backend found in the in-flight region.
grep -iE 'in.?flight' "$T/vhost.log" | sed 's/^/# backend: /'
if [ "$_tap_failed" -gt 0 ]; then
  echo "# backend log:"; tail -n 30 "$T/vhost.log" | sed 's/^/#   /'
fi
tap_done
