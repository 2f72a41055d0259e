#!/usr/bin/env bash
# tests/interop/limits_handshake.sh: the handshake limits against raw clients:
# - a client that floods NBD_OPT_LIST without reading replies leaves the server's
#   memory bounded (replies are capped at 64 KiB unsent, then reading stops) and is
#   cut off by --handshake-timeout, with a log line;
# - --max-connections: the connection over the limit is closed at once and logged;
# - other clients are served throughout, and SIGTERM still exits 0.
. "$(dirname "$0")/../lib.sh"
need_deps

img=$T/disk.img
truncate -s 16M "$img"
desc=$(head -c 4000 /dev/zero | tr '\0' d)   # each LIST reply carries ~4 KiB

cat >"$T/flood.py" <<'PY'
import socket, struct, sys, time
port, secs = int(sys.argv[1]), float(sys.argv[2])
s = socket.create_connection(("127.0.0.1", port))
s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
assert s.recv(18, socket.MSG_WAITALL)[:8] == b"NBDMAGIC"
s.sendall(struct.pack(">I", 3))
msg = struct.pack(">QII", 0x49484156454F5054, 3, 0) * 4096
s.setblocking(False)
sent, t0, closed = 0, time.monotonic(), None
while time.monotonic() - t0 < secs:
    try:
        sent += s.send(msg)
    except BlockingIOError:
        time.sleep(0.05)
    except OSError:
        closed = time.monotonic() - t0
        break
print("sent %d LIST options (%d MiB of replies asked for)%s" %
      (sent // 16, sent // 16 * 4100 >> 20, "; closed after %.1f s" % closed if closed else ""))
PY

rss() { awk '$1 == "VmRSS:" { print $2 }' "/proc/$1/status"; }

start_shunt --handshake-timeout 3 --max-connections 3 "disk=$img,desc=$desc" || { tap_fail "server starts"; tap_done; exit 1; }
rss0=$(rss "$SHUNT_PID")
python3 "$T/flood.py" "$PORT" 5 >"$T/flood.out" 2>&1 &
fpid=$!
sleep 1
rss1=$(rss "$SHUNT_PID")
sed 's/^/# /' "$T/flood.out"
grow=$(( (rss1 - rss0) / 1024 ))
if [ "$grow" -lt 32 ]; then tap_ok "LIST flood without reading replies: server RSS grew $grow MiB (< 32)"
else tap_fail "LIST flood without reading replies: server RSS grew $grow MiB"; fi
tap_check "another client lists exports during the flood" nbdinfo --list "nbd://127.0.0.1:$PORT"
wait "$fpid"
sleep 1
if grep -q "handshake not finished within 3 s: disconnecting" "$T/shunt.log"; then
  tap_ok "the flooding client is cut off by the handshake timeout (logged)"
else tap_fail "no handshake-timeout log line"; tail -n 5 "$T/shunt.log" | sed 's/^/#   /'; fi

# Three connections idle in the handshake fill --max-connections 3; the fourth is closed.
exec 4<>"/dev/tcp/127.0.0.1/$PORT" 5<>"/dev/tcp/127.0.0.1/$PORT" 6<>"/dev/tcp/127.0.0.1/$PORT"
sleep 0.3
if nbdinfo "nbd://127.0.0.1:$PORT/disk" >"$T/over.out" 2>&1; then
  tap_fail "a fourth connection over --max-connections 3 is served"
else tap_ok "a fourth connection over --max-connections 3 is turned away"; fi
if grep -q "connection refused: 3 connections already open (--max-connections)" "$T/shunt.log"; then
  tap_ok "the refusal is logged"
else tap_fail "no max-connections log line"; fi
exec 4>&- 5>&- 6>&-
sleep 0.5
tap_check "after they leave, a client is served again" nbdinfo "nbd://127.0.0.1:$PORT/disk"
tap_check "SIGTERM: exit status 0" stop_shunt
if grep -nE 'AddressSanitizer|LeakSanitizer|runtime error:' "$T/shunt.log"; then tap_fail "sanitizer report in the log"
else tap_ok "no sanitizer report in the server log"; fi
tap_done
