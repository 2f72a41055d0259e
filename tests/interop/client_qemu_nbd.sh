#!/usr/bin/env bash
# client_qemu_nbd.sh: libshunt against qemu-nbd (structured replies that split
# sparse reads into data and hole chunks) and nbd-server (simple replies only).
. "$(dirname "$0")/client_lib.sh"

if command -v qemu-nbd >/dev/null; then
  truncate -s 32M "$T/q.img"
  start_qemu_nbd "$T/q.img" --discard=unmap
  run_check "qemu-nbd" "nbd://127.0.0.1:$PORT/disk"
  # A read across data and a hole arrives as several chunks: check they land right.
  tap_check "qemu-nbd: shunt info --map shows data then a hole" \
    bash -c "'$SHUNT' info --map 'nbd://127.0.0.1:$PORT/disk' | awk '\$4==\"data\"{d=1} \$4 ~ /^hole/{h=1} END{exit !(d&&h)}'"
  if "$SHUNT" info "nbd://127.0.0.1:$PORT/nope" >/dev/null 2>"$T/err"; then
    tap_fail "qemu-nbd: unknown export fails"
  else
    tap_check "qemu-nbd: unknown export fails with a message naming it" grep -q "export 'nope'" "$T/err"
  fi
  stop_pid "$QEMU_PID"

  # Meta contexts other than base:allocation, by name: qemu's allocation
  # depth and a persistent dirty bitmap of a qcow2 image; and NBD_CMD_CACHE,
  # which qemu-nbd offers.
  qemu-img create -q -f qcow2 "$T/b.qcow2" 32M && qemu-img bitmap --add "$T/b.qcow2" b0
  start_qemu_nbd "$T/b.qcow2" -f qcow2 -A -B b0
  run_check "qemu-nbd contexts" --context qemu:allocation-depth --context qemu:dirty-bitmap:b0 \
    --expect-cache "nbd://127.0.0.1:$PORT/disk"
  stop_pid "$QEMU_PID"
else
  tap_skip "qemu-nbd" "qemu-nbd not installed"
fi

if command -v nbd-server >/dev/null; then
  truncate -s 16M "$T/n.img"
  start_nbd_server "$T/n.img"
  run_check "nbd-server" "nbd://127.0.0.1:$PORT/disk"
  stop_pid "$NBDSRV_PID"
  start_nbd_server "$T/n.img"
  tap_check "nbd-server: shunt info --list names the export" \
    bash -c "'$SHUNT' info --list 'nbd://127.0.0.1:$PORT/' | grep -qx disk"
  stop_pid "$NBDSRV_PID"
else
  tap_skip "nbd-server" "nbd-server not installed"
fi
tap_done
