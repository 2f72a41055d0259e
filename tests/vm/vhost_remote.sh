#!/usr/bin/env bash
# tests/vm/vhost_remote.sh: a guest's vhost-user-blk disks whose source is remote: the
# backend reaches its storage over NBD. One guest, two vCPUs, two disks of one backend
# process, each with 2 queues: vda from `shunt serve`, vdb from nbdkit (a server nobody
# here wrote). The guest runs guest/vhost_blk.sh on both (O_DIRECT from every queue,
# discard, write zeroes, ext4 with 40 files, flush); then the servers stop and the host
# reads their images itself.
# The backend is `shunt vhost`; SHUNT_VHOST_BACKEND=qsd uses qemu-storage-daemon's nbd
# driver under its vhost-user-blk export.
. "$(dirname "$0")/lib.sh"
vm_require
vm_vhost_require
command -v nbdkit >/dev/null || { tap_fail "nbdkit is installed"; tap_done; exit 1; }

declare "${VM_VHOST_BLK_LAYOUT[@]}"
BYTES=$((64 << 20))
for n in vda vdb; do
  truncate -s $BYTES "$T/$n.img"
  head -c $((REGION_MB << 20)) /dev/urandom >"$T/pat-$n"
done
# vda: shunt serve; vdb: nbdkit's file plugin. Both export "disk" on loopback.
start_shunt "disk=$T/vda.img" || { tap_fail "shunt serve starts"; tap_done; exit 1; }
PORT_A=$PORT
PORT_B=$(free_port)
nbdkit -f -i 127.0.0.1 -p "$PORT_B" -e disk file "$T/vdb.img" >"$T/nbdkit.log" 2>&1 &
NBDKIT_PID=$!
_cleanup_pids+=("$NBDKIT_PID")
wait_port "$PORT_B" 10 || { tap_fail "nbdkit listens on 127.0.0.1:$PORT_B"; cat "$T/nbdkit.log"; tap_done; exit 1; }

specs=() disks=''
for n in vda vdb; do
  port=$PORT_A; [ $n = vdb ] && port=$PORT_B
  serial=-
  spec="$T/$n.sock=nbd://127.0.0.1:$port/disk,queues=2"
  [ "$VM_VHOST_BACKEND" = shunt ] && serial=remote-$n spec+=",serial=$serial"
  specs+=("$spec")
  disks+=" $n:2:$BYTES:$serial"
done
vm_vhost_start "${specs[@]}" || { tap_fail "backend serves ${specs[*]}"; tap_done; exit 1; }
tap_ok "backend serves ${specs[*]}"

VM_SMP=2 VM_VHOST_SOCKS="$T/vda.sock $T/vdb.sock" VM_VHOST_QUEUES=2 \
  VM_EXTRA_FILES="$T/pat-vda $T/pat-vdb" \
  vm_boot remote "$VM_DIR/guest/vhost_blk.sh" DISKS="$disks" "${VM_VHOST_BLK_LAYOUT[@]}"
vm_report remote
tap_check "host: the backend lived through the guest" kill -0 "$VHOST_PID"
tap_check "host: the backend exits with status 0 on SIGTERM" vm_vhost_stop
vm_vhost_stats
tap_check "host: shunt serve exits with status 0 on SIGTERM" stop_shunt_within
kill -TERM "$NBDKIT_PID"; wait "$NBDKIT_PID" 2>/dev/null

# The servers' images, read on the host after everyone stopped.
for n in vda vdb; do vm_vhost_blk_verify $n "$T/$n.img" "$T/pat-$n"; done
if [ "$_tap_failed" -gt 0 ]; then
  echo "# backend log:"; tail -n 30 "$T/vhost.log" | sed 's/^/#   /'
fi
tap_finish
