#!/usr/bin/env bash
# listeners.sh: the ways shunt serve accepts clients: repeated
# --listen on IPv4 and IPv6 at once, and systemd socket activation (LISTEN_FDS,
# through libnbd's connect_systemd_socket_activation). --unix and --stdio are
# covered by qemu_io.sh, qemu_img.sh and nbdinfo.sh.
. "$(dirname "$0")/../lib.sh"
need_deps
PY=/usr/bin/python3

img=$T/disk.img
truncate -s 16M "$img"
head -c 64k /dev/urandom | dd of="$img" conv=notrunc status=none
want=$(head -c 64k "$img" | sha256sum)

# One server, the same port on 127.0.0.1 and [::1] (free_port checks all families).
PORT=$(free_port)
"$SHUNT" serve --listen "127.0.0.1:$PORT" --listen "[::1]:$PORT" "$(export_arg disk "$img")" \
  >>"$T/shunt.log" 2>&1 &
SHUNT_PID=$!
_cleanup_pids+=("$SHUNT_PID")
if wait_port "$PORT" 10; then
  tap_check "IPv4 listener answers nbdinfo" timeout 30 nbdinfo --size "nbd://127.0.0.1:$PORT/disk"
  tap_check "IPv6 listener ([::1]) answers nbdinfo" timeout 30 nbdinfo --size "nbd://[::1]:$PORT/disk"
  tap_check "IPv6 listener serves the data" \
    bash -c "[ \"\$(timeout 30 nbdcopy 'nbd://[::1]:$PORT/disk' - | head -c 64k | sha256sum)\" = '$want' ]"
  tap_check "server stops cleanly" stop_shunt_within
else
  tap_fail "shunt serve --listen 127.0.0.1:$PORT --listen [::1]:$PORT started"
fi

# Socket activation: libnbd creates the listening socket and starts the server
# with LISTEN_PID/LISTEN_FDS=1 (how systemd would).
tap_check "systemd socket activation (LISTEN_FDS): libnbd connects and reads the data" \
  timeout 60 "$PY" -c '
import hashlib, nbd, sys
h = nbd.NBD(); h.set_export_name("disk")
h.connect_systemd_socket_activation(sys.argv[1:])
assert h.get_size() == 16 << 20, h.get_size()
data = h.pread(64 << 10, 0)
assert hashlib.sha256(data).hexdigest() + "  -" == "'"$want"'", "data differs"
h.shutdown()' "$SHUNT" serve "$(export_arg disk "$img")"
tap_finish
