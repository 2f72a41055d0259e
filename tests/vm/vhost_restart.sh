#!/usr/bin/env bash
# tests/vm/vhost_restart.sh: the backend is SIGKILLed while a guest writes to its
# vhost-user-blk disk (two queues, a writer on each) and started again on the same socket.
# qemu reconnects (reconnect=1) and the backend resubmits the requests left in flight
# (INFLIGHT_SHMFD): the guest's writes complete without an I/O error, e2fsck is clean in
# the guest and on the host, and the host finds every file and the pattern in the image.
# The backend is `shunt vhost`; SHUNT_VHOST_BACKEND=qsd uses qemu-storage-daemon.
. "$(dirname "$0")/lib.sh"
vm_require
vm_vhost_require

FS_MB=40 PAT_MB=40 REGION_MB=8
img=$T/disk.img sock=$T/disk.sock spec=$T/disk.sock=$T/disk.img,queues=2
truncate -s $((48 << 20)) "$img"
head -c $((REGION_MB << 20)) /dev/urandom >"$T/pat"
vm_vhost_start "$spec" || { tap_fail "backend serves $spec"; tap_done; exit 1; }

VM_SMP=2 VM_VHOST_SOCKS=$sock VM_VHOST_QUEUES=2 VM_VHOST_RECONNECT=1 VM_EXTRA_FILES=$T/pat \
  vm_start restart "$VM_DIR/guest/vhost_restart.sh" FS_MB=$FS_MB PAT_MB=$PAT_MB REGION_MB=$REGION_MB
if vm_wait_mark restart io-running "$VM_TIMEOUT"; then
  old=$VHOST_PID
  vm_vhost_kill
  tap_ok "host: backend (pid $old) SIGKILLed while the guest writes"
  if vm_vhost_start "$spec"; then tap_ok "host: backend restarted on the same socket"
  else tap_fail "host: backend restarted on the same socket"; fi
  vm_send restart backend-restarted
fi
vm_wait restart
vm_report restart
echo "# what qemu said about the backend:"
sed 's/^/#   qemu: /' "$T/restart.qemu.log"
tap_check "host: the restarted backend lived through the guest" kill -0 "$VHOST_PID"
tap_check "host: the backend exits with status 0 on SIGTERM" vm_vhost_stop

tap_check "host: e2fsck -fn of the image is clean" e2fsck -fn "$img"
mkdir -p "$T/out"
debugfs -R "rdump /c $T/out" "$img" >/dev/null 2>&1
debugfs -R "cat /SUMS" "$img" 2>/dev/null >"$T/SUMS"
tap_check "host: every file the guest wrote has the guest's checksum ($(wc -l <"$T/SUMS") files)" \
  sh -c "test -s '$T/SUMS' && cd '$T/out/c' && md5sum -c --quiet '$T/SUMS'"
tap_check "host: the pattern is in the image at $PAT_MB MiB" \
  cmp -i $((PAT_MB << 20)):0 -n $((REGION_MB << 20)) "$img" "$T/pat"
if [ "${SHUNT_VM_KEEP_LOG:-}" ] || [ "$_tap_failed" -gt 0 ]; then
  echo "# backend log:"; tail -n 30 "$T/vhost.log" | sed 's/^/#   /'
fi
tap_done
