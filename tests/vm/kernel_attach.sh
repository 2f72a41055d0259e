#!/usr/bin/env bash
# tests/vm/kernel_attach.sh: `shunt attach` in guests against a server on the host.
#  1. one guest: attach, ext4, detach, re-attach with 2 connections, verify; then
#     --persist while the host kills and restarts the server under I/O; --persist
#     with a --failover gateway while the host kills the first one for good; without
#     --persist, a server that stops answering ends in an error within --timeout, not a hang;
#  2. two guests attach one export at once, each writes its own region with FUA,
#     flushes, and verifies the other's data.
# The server is `shunt serve` ($SHUNT); SHUNT_VM_SERVER=nbdkit uses nbdkit instead.
. "$(dirname "$0")/lib.sh"
vm_require
SERVER=${SHUNT_VM_SERVER:-shunt}
case $SERVER in
  shunt) "$SHUNT" serve --help >/dev/null 2>&1 \
           || { tap_fail "server: $SHUNT serve exists"; tap_done; exit 1; } ;;
  nbdkit) echo "# server: nbdkit (SHUNT_VM_SERVER=nbdkit)" ;;
  *) tap_fail "SHUNT_VM_SERVER=$SERVER is neither shunt nor nbdkit"; tap_done; exit 1 ;;
esac

# start_server IMG PORT: serve IMG as export "disk" on 127.0.0.1:PORT; sets SERVER_PID.
start_server() {
  case $SERVER in
    shunt) "$SHUNT" serve --listen "127.0.0.1:$2" "disk=$1" >>"$T/server.log" 2>&1 & ;;
    nbdkit) nbdkit -f -i 127.0.0.1 -p "$2" file "$1" >>"$T/server.log" 2>&1 & ;;
  esac
  SERVER_PID=$!
  _cleanup_pids+=("$SERVER_PID")
  wait_port "$2" 10 || { echo "# server did not start:"; sed 's/^/#   /' "$T/server.log"; return 1; }
}

export VM_EXTRA_BINS=$SHUNT
SIZE=$((64 * 1024 * 1024))
# Two gateways of one image, for --persist --failover.
truncate -s $SIZE "$T/fo.img"
PA=$(free_port)
start_server "$T/fo.img" "$PA" || { tap_fail "gateway A starts"; tap_done; exit 1; }
GA=$SERVER_PID
PB=$(free_port)
start_server "$T/fo.img" "$PB" || { tap_fail "gateway B starts"; tap_done; exit 1; }
truncate -s $SIZE "$T/disk.img"
PORT=$(free_port)
start_server "$T/disk.img" "$PORT" || { tap_fail "server starts"; tap_done; exit 1; }
URI=nbd://10.0.2.2:$PORT/disk

vm_start attach "$VM_DIR/guest/kernel_attach.sh" SHUNT_BIN="$SHUNT" URI="$URI" SIZE=$SIZE \
  URIA="nbd://10.0.2.2:$PA/disk" URIB="nbd://10.0.2.2:$PB/disk"
if vm_wait_mark attach io-running "$VM_TIMEOUT"; then
  kill -KILL "$SERVER_PID"; wait "$SERVER_PID" 2>/dev/null
  sleep 2
  if start_server "$T/disk.img" "$PORT"; then tap_ok "host: server killed under I/O and restarted"
  else tap_fail "host: server restarted on port $PORT"; fi
  vm_send attach server-restarted
fi
# The guest is done with the filesystem (and overwrites it next): check it here.
if vm_wait_mark attach fs-done "$VM_TIMEOUT"; then
  tap_check "host: e2fsck of the served image is clean" e2fsck -fn "$T/disk.img"
  vm_send attach fs-checked
fi
# --persist --failover: gateway A dies for good under I/O; B serves the same image.
if vm_wait_mark attach io-running2 "$VM_TIMEOUT"; then
  kill -KILL "$GA"; wait "$GA" 2>/dev/null
  tap_ok "host: gateway A killed under I/O (not restarted)"
  vm_send attach gateway-killed
fi
if vm_wait_mark attach failover-done "$VM_TIMEOUT"; then
  tap_check "host: e2fsck of the image behind both gateways is clean" e2fsck -fn "$T/fo.img"
fi
# A server that stops answering but keeps its connections open (a hung or partitioned
# host): only the request timeout can end the guest's wait.
if vm_wait_mark attach stop-server "$VM_TIMEOUT"; then
  kill -STOP "$SERVER_PID"
  vm_send attach server-stopped
fi
vm_wait attach
kill -CONT "$SERVER_PID" 2>/dev/null
vm_report attach

# Two guests, one export.
truncate -s $((16 * 1024 * 1024)) "$T/shared.img"
head -c $((4 << 20)) /dev/urandom >"$T/pat0"
head -c $((4 << 20)) /dev/urandom >"$T/pat1"
PORT=$(free_port)
start_server "$T/shared.img" "$PORT" || { tap_fail "server starts"; tap_done; exit 1; }
URI=nbd://10.0.2.2:$PORT/disk
export VM_EXTRA_FILES="$T/pat0 $T/pat1"
vm_start left "$VM_DIR/guest/kernel_attach_shared.sh" SHUNT_BIN="$SHUNT" URI="$URI" ME=0
vm_start right "$VM_DIR/guest/kernel_attach_shared.sh" SHUNT_BIN="$SHUNT" URI="$URI" ME=1
if vm_wait_mark left written "$VM_TIMEOUT" && vm_wait_mark right written "$VM_TIMEOUT"; then
  vm_send left verify
  vm_send right verify
fi
vm_wait left
vm_wait right
vm_report left
vm_report right
tap_check "host: the image holds both guests' regions" sh -c \
  "cmp -n $((4 << 20)) '$T/shared.img' '$T/pat0' &&
   cmp -i $((4 << 20)):0 -n $((4 << 20)) '$T/shared.img' '$T/pat1'"
tap_done
