#!/usr/bin/env bash
# tests/vm/ocfs2_two.sh: a shared-disk cluster filesystem over one export. Two guests
# attach the same `shunt serve` export with the kernel nbd driver (`shunt attach`), form
# a two-node OCFS2 cluster (o2cb stack, local disk heartbeat on the export, o2net over a
# qemu socket network between them), mount it, each writes files and reads the other's
# back, unmount, and fsck.ocfs2 -fn is clean; then both mount again, node 1 is killed
# and node 0 recovers it. At the end the host reads the image itself: fsck.ocfs2 -fn,
# and every file through debugfs.ocfs2 against the guests' checksums.
. "$(dirname "$0")/lib.sh"
vm_require
CLUSTER=shunt
NFILES=12
SIZE=$((128 << 20))

# skip_with WHY: this test cannot run here; say exactly why (never silently).
skip_with() {
  tap_skip "OCFS2 over one export (ocfs2_two.sh)" "$1"
  tap_done
  exit 0
}
"$SHUNT" serve --help >/dev/null 2>&1 || { tap_fail "server: $SHUNT serve exists"; tap_done; exit 1; }
for m in ocfs2 ocfs2_stackglue ocfs2_stack_o2cb ocfs2_nodemanager ocfs2_dlm ocfs2_dlmfs; do
  _vm_mod_paths $m >/dev/null 2>&1 \
    || skip_with "the guest kernel $VM_KVER has no module $m (CONFIG_OCFS2_FS / O2CB off)"
done
O2BINS="/sbin/mount.ocfs2 /sbin/fsck.ocfs2 /sbin/o2cb /sbin/ocfs2_hb_ctl /sbin/debugfs.ocfs2"
for b in $O2BINS /sbin/mkfs.ocfs2; do
  [ -x "$b" ] || skip_with "$b missing: ocfs2-tools not installed (scripts/deps.sh vm installs it as root)"
done

# udp_port: a port free for both TCP (free_port) and UDP on 127.0.0.1.
udp_port() {
  local p
  while :; do
    p=$(free_port)
    ss -Huan "sport = :$p" | grep -q . || { echo "$p"; return; }
  done
}

# The filesystem is made on the host: two slots, the o2cb stack and cluster $CLUSTER.
truncate -s $SIZE "$T/disk.img"
tap_check "host: mkfs.ocfs2 -N 2 --cluster-stack=o2cb --cluster-name=$CLUSTER" \
  /sbin/mkfs.ocfs2 -q -F -N 2 -b 4K -C 4K -J size=4M -L shunt \
    --cluster-stack=o2cb --cluster-name=$CLUSTER "$T/disk.img"

PORT=$(free_port)
"$SHUNT" serve --listen "127.0.0.1:$PORT" "disk=$T/disk.img" >>"$T/server.log" 2>&1 &
SERVER_PID=$!
_cleanup_pids+=("$SERVER_PID")
wait_port "$PORT" 10 || { tap_fail "server starts"; sed 's/^/#   /' "$T/server.log"; tap_done; exit 1; }
URI=nbd://10.0.2.2:$PORT/disk

# eth1 of each guest: a qemu socket netdev over UDP on the host's loopback, one port each,
# sending to the other's.
P0=$(udp_port)
P1=$(udp_port)
while [ "$P1" = "$P0" ]; do P1=$(udp_port); done
net() {  # net ME: the second NIC of guest ME
  local me=$1 mine theirs
  if [ "$me" = 0 ]; then mine=$P0 theirs=$P1; else mine=$P1 theirs=$P0; fi
  echo "-netdev socket,id=n1,udp=127.0.0.1:$theirs,localaddr=127.0.0.1:$mine" \
       "-device virtio-net-pci,netdev=n1,mac=52:54:00:77:00:0$((me + 1))"
}

export VM_EXTRA_BINS="$SHUNT $O2BINS"
export VM_EXTRA_MODULES="configfs ocfs2_nodemanager ocfs2_stackglue ocfs2_dlm ocfs2_stack_o2cb
  ocfs2_dlmfs quota_tree ocfs2"
export VM_TIMEOUT=${SHUNT_VM_TIMEOUT:-360}
for me in 0 1; do
  VM_QEMU_ARGS=$(net $me) vm_start node$me "$VM_DIR/guest/ocfs2.sh" \
    SHUNT_BIN="$SHUNT" URI="$URI" ME=$me CLUSTER=$CLUSTER NFILES=$NFILES
done

# kill_guest NAME: SIGKILL the guest's qemu (a node that dies: no unmount, no flush).
kill_guest() {
  local pid q
  eval "pid=\${_vm_pid_$1}"
  q=$(ps -o pid= --ppid "$pid" | tr -d ' ')
  [ -n "$q" ] && kill -KILL $q || return 1
  : >"$T/$1.killed"
  echo "# host: killed $1 (qemu pid $q) while it has the filesystem mounted"
}
# marked MARK NODE...: wait until every NODE reached MARK.
marked() {
  local mark=$1 n; shift
  for n in "$@"; do
    vm_wait_mark "$n" "$mark" "$VM_TIMEOUT" || { echo "# $n never reached '$mark'"; return 1; }
  done
}
# Node 0 mounts first (a failure is then clearly its own), then node 1, which joins node
# 0's heartbeat and DLM domain; they unmount in the reverse order (o2dlm logs lock
# migration errors when both leave the domain at the same instant). Then both mount
# again and node 1 dies: killed after it synced more files; node 0 recovers it.
marked ready node0 node1 && vm_send node0 mount &&
  marked mounted node0 && vm_send node1 mount &&
  marked mounted node1 && vm_send node0 write && vm_send node1 write &&
  marked written node0 node1 && vm_send node0 verify && vm_send node1 verify &&
  marked verified node0 node1 && vm_send node1 umount &&
  marked unmounted node1 && vm_send node0 umount &&
  marked unmounted node0 && vm_send node0 fsck &&
  marked checked node0 && vm_send node0 remount &&
  marked remounted node0 && vm_send node1 remount &&
  marked remounted node1 && vm_send node1 late-write &&
  marked synced node1 && kill_guest node1 && vm_send node0 killed
vm_wait node0
vm_wait node1
vm_report node0
# A guest the host did not kill (the steps stopped before) must have ended by itself.
if [ -e "$T/node1.killed" ]; then VM_REPORT_KILLED=1 vm_report node1; else vm_report node1; fi

kill -TERM "$SERVER_PID" 2>/dev/null
wait "$SERVER_PID" 2>/dev/null

# The host's own reading of the image, without mounting it (the host kernel need not
# have ocfs2): fsck.ocfs2, and each node's files dumped by debugfs.ocfs2 against the
# checksums the node wrote.
tap_check "host: fsck.ocfs2 -fn of the image is clean" /sbin/fsck.ocfs2 -fn "$T/disk.img"
for me in 0 1; do
  rm -rf "$T/out$me"; mkdir -p "$T/out$me"
  /sbin/debugfs.ocfs2 -R "rdump /node$me $T/out$me" "$T/disk.img" >"$T/rdump$me.log" 2>&1
  tap_check "host: node$me's $NFILES files have its checksums (debugfs.ocfs2 rdump)" sh -c \
    "test \$(wc -l <'$T/out$me/node$me/SUMS') = $NFILES && cd '$T/out$me/node$me' && md5sum -c --quiet SUMS"
done
/sbin/debugfs.ocfs2 -R "rdump /late1 $T/out1" "$T/disk.img" >"$T/rdump-late.log" 2>&1
tap_check "host: the files node1 synced before it died have its checksums" sh -c \
  "test \$(wc -l <'$T/out1/late1/SUMS') = 4 && cd '$T/out1/late1' && md5sum -c --quiet SUMS"
/sbin/debugfs.ocfs2 -R "cat /both" "$T/disk.img" >"$T/both" 2>/dev/null
tap_check "host: the file both nodes appended to holds both lines" sh -c \
  "sort '$T/both' | tr '\n' ' ' | grep -qx 'node0 was here node1 was here '"
tap_done
