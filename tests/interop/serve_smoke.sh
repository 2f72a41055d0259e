#!/bin/bash
# serve_smoke.sh: the shortest end-to-end check of `shunt serve`: a sparse file
# export and a memory export answer nbdinfo (list, map) and qemu-io pattern
# write/read-back, over TCP and a unix socket, and SIGTERM exits 0.
. "$(dirname "$0")/../lib.sh"

for t in nbdinfo qemu-io; do
  command -v $t >/dev/null || { tap_skip "serve smoke" "$t not installed"; tap_done; exit; }
done

truncate -s 64M "$T/disk.img"
printf 'data' | dd of="$T/disk.img" bs=1 seek=$((4 << 20)) conv=notrunc status=none
start_shunt --unix "$T/sock" disk="$T/disk.img" mem=32M,backend=memory,desc=scratch \
  || { tap_fail "server starts"; tap_done; exit 1; }
tap_ok "server starts and listens on 127.0.0.1:$PORT"
grep -q "listening on 127.0.0.1:$PORT" "$T/shunt.log" && tap_ok "prints the listening address" \
  || tap_fail "prints the listening address"

nbdinfo --list "nbd://127.0.0.1:$PORT" >"$T/list" 2>&1
tap_check "nbdinfo --list names both exports" grep -q 'export="mem"' "$T/list"
tap_check "... and disk" grep -q 'export="disk"' "$T/list"
tap_check "description is sent" grep -q 'description: scratch' "$T/list"
nbdinfo "nbd://127.0.0.1:$PORT/disk" >"$T/info" 2>&1
tap_check "disk export size is 64 MiB" grep -q 'export-size: 67108864' "$T/info"
tap_check "base:allocation offered" grep -q 'base:allocation' "$T/info"

# The map of the sparse file: hole, 4 KiB of data at 4 MiB, hole.
nbdinfo --map "nbd://127.0.0.1:$PORT/disk" >"$T/map" 2>&1
tap_check "map shows the data block at 4 MiB" grep -Eq '^ *4194304 +4096 +0 +data' "$T/map"
tap_check "map shows the leading hole" grep -Eq '^ *0 +4194304 +3 +hole,zero' "$T/map"

qio() { qemu-io -f raw "$@" >"$T/qio" 2>&1 && ! grep -q -i "fail\|error" "$T/qio"; }
tap_check "qemu-io write/read-back on the file export (TCP)" \
  qio -c 'write -P 0x5a 1M 1M' -c 'read -P 0x5a 1M 1M' -c 'write -P 0x11 12345k 4k' "nbd://127.0.0.1:$PORT/disk"
tap_check "pattern reached the file" \
  qio -c 'read -P 0x5a 1M 1M' -c 'read -P 0 0 1M' -c 'read -P 0x11 12345k 4k' "nbd+unix:///disk?socket=$T/sock"
tap_check "qemu-io write/read-back on the memory export (unix socket)" \
  qio -c 'write -P 0xa5 0 2M' -c 'read -P 0xa5 0 2M' -c 'read -P 0 2M 1M' "nbd+unix:///mem?socket=$T/sock"
cmp -s <(dd if="$T/disk.img" bs=1M skip=1 count=1 status=none) <(head -c 1M /dev/zero | tr '\0' 'Z') \
  && tap_ok "file holds the written bytes" || tap_fail "file holds the written bytes"

# A client that hangs up in the middle of a WRITE payload loses only its own connection.
/usr/bin/python3 - "$PORT" <<'PY' >"$T/hangup" 2>&1
import socket, struct, sys
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])))
s.recv(18)
s.sendall(struct.pack(">IQII", 3, 0x49484156454F5054, 1, 3) + b"mem")
s.recv(10)
s.sendall(struct.pack(">IHHQQI", 0x25609513, 0, 1, 1, 0, 1 << 20) + b"x" * 1000)
s.close()
PY
sleep 0.2
tap_check "still serving after a hang-up mid-payload" \
  qio -c 'read -P 0xa5 0 1M' "nbd://127.0.0.1:$PORT/mem"

stop_shunt; st=$?
[ "$st" -eq 0 ] && tap_ok "SIGTERM: exit status 0" || tap_fail "SIGTERM: exit status $st"
grep -q "flushing exports" "$T/shunt.log" && tap_ok "shutdown flushed exports" || tap_fail "shutdown flushed exports"
[ -e "$T/sock" ] && tap_fail "unix socket removed at exit" || tap_ok "unix socket removed at exit"
# The same server from a config file (docs/config.md), on IPv6 loopback when there is one.
P2=$(free_port)
cat >"$T/shunt.conf" <<EOF2
[server]
listen = 127.0.0.1:$P2
log = warning
[export cfgdisk]
path = $T/disk.img
description = from the config, with, commas
ro
EOF2
if [ -e /proc/net/if_inet6 ] && grep -q '^0\{31\}1 ' /proc/net/if_inet6; then
  sed -i "/^listen = 127/a listen = [::1]:$P2" "$T/shunt.conf"
  have_v6=1
else
  have_v6=0
fi
"$SHUNT" serve --config "$T/shunt.conf" >"$T/cfg.log" 2>&1 &
CPID=$!
_cleanup_pids+=("$CPID")
if wait_port "$P2" 10; then
  nbdinfo --list "nbd://127.0.0.1:$P2" >"$T/cfglist" 2>&1
  tap_check "config file: export and description" grep -q 'description: from the config, with, commas' "$T/cfglist"
  tap_check "config file: ro honoured" grep -q 'is_read_only: true' "$T/cfglist"
  if [ "$have_v6" = 1 ]; then
    tap_check "config file: IPv6 listener [::1]" nbdinfo "nbd://[::1]:$P2/cfgdisk"
  else
    tap_skip "config file: IPv6 listener" "no ::1 on this machine"
  fi
else
  tap_fail "server from --config starts"; cat "$T/cfg.log"
fi
kill -TERM "$CPID"; wait "$CPID"; st=$?
[ "$st" -eq 0 ] && tap_ok "config server: SIGTERM exit 0" || tap_fail "config server: SIGTERM exit $st"

# systemd socket activation.
if command -v systemd-socket-activate >/dev/null; then
  P3=$(free_port)
  systemd-socket-activate -l "127.0.0.1:$P3" "$SHUNT" serve act=1M,backend=memory >"$T/act.log" 2>&1 &
  APID=$!
  _cleanup_pids+=("$APID")
  wait_port "$P3" 10
  tap_check "socket activation: serves on the passed socket" nbdinfo "nbd://127.0.0.1:$P3/act"
  kill -TERM "$APID"; wait "$APID"
else
  tap_skip "socket activation" "systemd-socket-activate not installed"
fi
tap_done
