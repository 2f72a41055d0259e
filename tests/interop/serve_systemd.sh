#!/bin/bash
# serve_systemd.sh: what systemd and a packager see: sd_notify READY=1 once
# the server listens and STOPPING=1 at shutdown (a NOTIFY_SOCKET datagram
# socket stands in for systemd), the default config file read when no
# export is given, and `meson install --destdir` laying out the units and
# the example config.
. "$(dirname "$0")/../lib.sh"

command -v nbdinfo >/dev/null || { tap_skip "systemd integration" "nbdinfo not installed"; tap_done; exit; }
truncate -s 4M "$T/disk.img"

# A stand-in for systemd: print each datagram received on $1, one a line,
# until STOPPING=1 (or 30 s pass).
/usr/bin/python3 - "$T/notify.sock" >"$T/notify.out" 2>&1 <<'PY' &
import socket, sys
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
s.bind(sys.argv[1])
s.settimeout(30)
try:
    while True:
        msg = s.recv(4096).decode()
        print(msg, flush=True)
        if "STOPPING=1" in msg:
            break
except socket.timeout:
    print("timeout", flush=True)
PY
NPID=$!
_cleanup_pids+=("$NPID")
wait_unix "$T/notify.sock" 10 || { tap_fail "notify socket ready"; tap_done; exit 1; }

# As systemd does: wait for READY=1, then use the server at once (no wait
# for the socket file); SIGTERM, then STOPPING=1.
NOTIFY_SOCKET=$T/notify.sock "$SHUNT" serve -U "$T/s.sock" "$T/disk.img" 2>"$T/shunt.log" &
SHUNT_PID=$!
_cleanup_pids+=("$SHUNT_PID")
for _ in $(seq 200); do grep -qx 'READY=1' "$T/notify.out" && break; kill -0 "$SHUNT_PID" || break; sleep 0.05; done
tap_check "READY=1 sent" grep -qx 'READY=1' "$T/notify.out"
tap_check "once READY=1 is in, the server answers" nbdinfo --size "nbd+unix:///?socket=$T/s.sock"
stop_shunt_within 20; st=$?
wait "$NPID"
[ "$st" -eq 0 ] && tap_ok "served under NOTIFY_SOCKET, exit status 0" || tap_fail "served under NOTIFY_SOCKET: status $st"
tap_check "STOPPING=1 sent at shutdown" grep -qx 'STOPPING=1' "$T/notify.out"
tap_check "READY=1 came first, once" bash -c "[ \"\$(head -n1 '$T/notify.out')\" = READY=1 ] && [ \$(grep -c READY=1 '$T/notify.out') -eq 1 ]"
NOTIFY_SOCKET=$T/nobody-listens "$SHUNT" serve -U "$T/s2.sock" --run true "$T/disk.img" 2>"$T/nolisten.log"; st=$?
[ "$st" -eq 0 ] && grep -q 'NOTIFY_SOCKET' "$T/nolisten.log" && tap_ok "an unreachable NOTIFY_SOCKET is a warning, not a failure" \
  || tap_fail "an unreachable NOTIFY_SOCKET: status $st"

# The default config file: read when the command line names no export.
P=$(free_port)
cat >"$T/default.conf" <<EOF2
[server]
listen = 127.0.0.1:$P
[export fromconf]
path = $T/disk.img
EOF2
SHUNT_CONFIG=$T/default.conf "$SHUNT" serve --run "nbdinfo --list nbd://127.0.0.1:$P" >"$T/dflt" 2>>"$T/shunt.log"
tap_check "no export given: the default config file is read" grep -q 'export="fromconf"' "$T/dflt"
SHUNT_CONFIG=$T/default.conf "$SHUNT" serve -U "$T/s3.sock" --run 'nbdinfo --list "$uri"' other="$T/disk.img" >"$T/nodflt" 2>>"$T/shunt.log"
tap_check "an export given: the default config file is not read" \
  bash -c "grep -q 'export=\"other\"' '$T/nodflt' && ! grep -q fromconf '$T/nodflt'"
SHUNT_CONFIG=$T/absent.conf "$SHUNT" serve >"$T/none" 2>&1; st=$?
[ "$st" -eq 2 ] && grep -q 'no exports given' "$T/none" && tap_ok "no export and no config file: a usage error" \
  || tap_fail "no export and no config file: status $st"

# The units and the example config, installed into a DESTDIR.
if [ -n "${SHUNT_BUILD:-}" ] && command -v meson >/dev/null; then
  meson install -C "$SHUNT_BUILD" --destdir "$T/dest" --no-rebuild >"$T/install.log" 2>&1 \
    && tap_ok "meson install --destdir" || { tap_fail "meson install --destdir"; tail -n 20 "$T/install.log" | sed 's/^/#   /'; }
  find "$T/dest" -type f | sed "s|^$T/dest||" | sort >"$T/files"
  sed 's/^/# installed: /' "$T/files"
  tap_check "shunt.service installed" grep -q '/lib/systemd/system/shunt.service$' "$T/files"
  tap_check "shunt.socket installed" grep -q '/lib/systemd/system/shunt.socket$' "$T/files"
  tap_check "the example config installed" grep -q '/shunt/shunt.conf.example$' "$T/files"
  svc=$(find "$T/dest" -name shunt.service | head -n1)
  tap_check "shunt.service is Type=notify and runs the installed binary" \
    bash -c "grep -qx 'Type=notify' '$svc' && grep -q '^ExecStart=/.*/bin/shunt serve' '$svc' && ! grep -q @ '$svc'"
  tap_check "shunt.service reloads with SIGHUP (systemctl reload)" grep -qx 'ExecReload=/bin/kill -HUP \$MAINPID' "$svc"
  if command -v systemd-analyze >/dev/null; then
    sock=$(find "$T/dest" -name shunt.socket | head -n1)
    systemd-analyze verify --man=no "$svc" "$sock" >"$T/verify" 2>&1
    tap_check "systemd-analyze verify has no complaint about the units" \
      bash -c "! grep -E 'shunt\.(service|socket)' '$T/verify' | grep -v 'Command .* is not executable'"
  fi
else
  tap_skip "meson install --destdir" "no build directory or meson"
fi
tap_finish
