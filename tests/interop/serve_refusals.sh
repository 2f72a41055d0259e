#!/usr/bin/env bash
# serve_refusals.sh: what `shunt serve` must refuse at start rather than destroy,
# expose or hang on, and the signals that must not kill it:
# --unix PATH never deletes what it did not create (a regular file at PATH, a
# live server's socket; a stale socket is replaced, our own socket is removed
# at exit), --config must be a regular file, a NUL byte in the config is named
# as such, --listen '' is refused, a FIFO export is refused without hanging,
# export names must be UTF-8 without control characters, --stats must be
# writable at start and a failed write at exit gives status 1, --listen :0
# logs the bound port, SIGHUP (nothing to reload) and SIGUSR2 leave the
# server serving.
. "$(dirname "$0")/../lib.sh"
need_deps
PY=/usr/bin/python3

img=$T/disk.img
truncate -s 1M "$img"
printf 'precious' | dd of="$img" conv=notrunc status=none
want=$(sha256sum <"$img")

# serve_fails WHAT ARGS...: shunt serve exits non-zero within 10 s (no hang);
# its messages are in $T/err.
serve_fails() {
  local what=$1; shift
  timeout 10 "$SHUNT" serve "$@" >"$T/err" 2>&1
  local rc=$?
  cat "$T/err" >>"$T/all.err"
  if [ "$rc" -ne 0 ] && [ "$rc" -ne 124 ] && ! grep -qE 'Sanitizer|runtime error:' "$T/err"; then
    tap_ok "$what (status $rc)"
  else tap_fail "$what (status $rc: $([ "$rc" -eq 124 ] && echo hung || echo accepted))"; sed 's/^/#   /' "$T/err"; fi
}
# err_says WHAT PATTERN: the last refusal's message matches PATTERN.
err_says() {
  if grep -qE -- "$2" "$T/err"; then tap_ok "$1"; else tap_fail "$1"; sed 's/^/#   /' "$T/err"; fi
}
# nbd_size SOCKET: the size of export d through the unix socket (fails if no server).
nbd_size() { timeout 10 "$SHUNT" info "nbd+unix:///d?socket=$1" 2>&1 | grep -q '1048576'; }

# ---- --unix PATH ----
# victim: a disk image named by mistake as the socket path.
victim=$T/victim.img
cp "$img" "$victim"
serve_fails "--unix on a regular file (a disk image) is refused" --unix "$victim" "d=$victim"
err_says "... with a message that it is not a socket" "not a socket"
tap_check "... and the file survives intact" bash -c "[ \"\$(sha256sum <'$victim')\" = '$want' ]"

sock=$T/live.sock
"$SHUNT" serve --unix "$sock" "d=$img" >>"$T/shunt.log" 2>&1 &
SHUNT_PID=$!
_cleanup_pids+=("$SHUNT_PID")
if wait_unix "$sock" 10; then
  serve_fails "a second server on a live server's socket is refused" --unix "$sock" "d=$img"
  err_says "... with a message that a server listens there" "server is listening"
  tap_check "... and the first server's socket still exists and answers" nbd_size "$sock"
  kill -HUP "$SHUNT_PID"; kill -USR2 "$SHUNT_PID"; sleep 0.5
  tap_check "SIGHUP and SIGUSR2 do not kill the server" shunt_alive
  tap_check "... it still serves afterwards" nbd_size "$sock"
  tap_check "... the log says SIGHUP had nothing to reload (exports on the command line)" \
    grep -q "SIGHUP.*nothing to reload" "$T/shunt.log"
  tap_check "... and SIGTERM then exits 0" stop_shunt_within 20
  tap_check "the server removed its own socket at exit" test ! -e "$sock"
else
  tap_fail "shunt serve --unix $sock started"; cat "$T/shunt.log"
fi

# A stale socket (its server gone, no one listening) is replaced.
stale=$T/stale.sock
"$PY" -c 'import socket, sys; socket.socket(socket.AF_UNIX).bind(sys.argv[1])' "$stale"
"$SHUNT" serve --unix "$stale" "d=$img" >>"$T/shunt.log" 2>&1 &
SHUNT_PID=$!
_cleanup_pids+=("$SHUNT_PID")
served=no
for ((i = 0; i < 100; i++)); do nbd_size "$stale" && { served=yes; break; }; sleep 0.1; done
if [ "$served" = yes ]; then tap_ok "a stale socket is replaced and served on"
else tap_fail "a stale socket is replaced and served on"; fi
tap_check "... SIGTERM exits 0" stop_shunt_within 20

# Startup fails before the socket is bound (a malformed --listen): what is at
# the --unix path stays.
other=$T/other.sock
"$PY" -c 'import socket, sys; socket.socket(socket.AF_UNIX).bind(sys.argv[1])' "$other"
serve_fails "a failing start (malformed --listen) is refused" --listen '[::1' --unix "$other" "d=$img"
tap_check "... and does not remove the socket file at the path" test -S "$other"
# ... and a second --unix that fails removes neither path.
cp "$img" "$victim"
serve_fails "a start whose second --unix is refused fails" --unix "$T/first.sock" --unix "$victim" "d=$img"
tap_check "... the image named by the second --unix survives" bash -c "[ \"\$(sha256sum <'$victim')\" = '$want' ]"
tap_check "... and the first socket (ours) is removed at that exit" test ! -e "$T/first.sock"

# ---- --config, --listen, exports, --stats ----
serve_fails "--config on a directory is refused" --config "$T" --unix "$T/c.sock" "d=$img"
err_says "... as not a regular file" "not a regular file"
printf 'threads = 1\nlisten = 127.0.0.1:1\0000\n' >"$T/nul.conf"
serve_fails "a config line with a NUL byte is refused" --config "$T/nul.conf" "d=$img"
err_says "... and reported as a NUL byte at line 2" "nul.conf:2: NUL byte"
# Socket activation handing over something that cannot accept (here a regular
# file as fd 3): refused at start, instead of an accept failing for ever.
timeout 10 bash -c 'export LISTEN_PID=$$ LISTEN_FDS=1; exec 3<"$1"; exec "$2" serve "d=$1"' \
  _ "$img" "$SHUNT" >"$T/err" 2>&1
rc=$?
cat "$T/err" >>"$T/all.err"
if [ "$rc" -ne 0 ] && [ "$rc" -ne 124 ]; then tap_ok "socket activation with a non-socket fd is refused (status $rc)"
else tap_fail "socket activation with a non-socket fd is refused (status $rc)"; sed 's/^/#   /' "$T/err"; fi
err_says "... naming the fd" "fd 3 is not a listening socket"
serve_fails "--listen '' is refused" --listen '' "d=$img"
err_says "... with a message about the empty address" "empty address"
mkfifo "$T/fifo"
serve_fails "a read-only export on a FIFO is refused without hanging" --unix "$T/f.sock" "d=$T/fifo,ro"
err_says "... naming the FIFO" "FIFO"
serve_fails "a read-write export on a FIFO is refused" --unix "$T/f.sock" "d=$T/fifo"
serve_fails "an export name with a newline is refused" --unix "$T/n.sock" $'bad\nshunt: error: forged'"=$img"
err_says "... with a message" "not valid UTF-8 or holds control characters"
serve_fails "an export name with invalid UTF-8 is refused" --unix "$T/n.sock" $'bad\xff'"=$img"
printf '[export bad\033[31m]\npath = %s\n' "$img" >"$T/name.conf"
serve_fails "an export name with an escape character in the config file is refused" --config "$T/name.conf"
err_says "... at its line" "name.conf:1: export name"
serve_fails "--stats into a missing directory is refused at start" --stats "$T/nodir/stats.json" --unix "$T/s.sock" "d=$img"
err_says "... naming the stats file" "nodir/stats.json"
serve_fails "--stats naming a directory is refused at start" --stats "$T" --unix "$T/s.sock" "d=$img"

# A stats file that cannot be written at exit: status 1 and an error line.
mkdir "$T/statsdir"
"$SHUNT" serve --stats "$T/statsdir/stats.json" --unix "$T/st.sock" "d=$img" >"$T/st.log" 2>&1 &
SHUNT_PID=$!
_cleanup_pids+=("$SHUNT_PID")
if wait_unix "$T/st.sock" 10; then
  rm -rf "$T/statsdir"
  stop_shunt_within 20; rc=$?
  if [ "$rc" -eq 1 ] && grep -q "error: --stats" "$T/st.log"; then
    tap_ok "a stats write failing at exit gives status 1 and an error line"
  else
    tap_fail "a stats write failing at exit gives status 1 and an error line (status $rc)"; sed 's/^/#   /' "$T/st.log"
  fi
else
  tap_fail "shunt serve --stats started"; cat "$T/st.log"
fi

# ---- --listen 127.0.0.1:0 logs the bound port ----
"$SHUNT" serve --listen 127.0.0.1:0 "d=$img" >"$T/zero.log" 2>&1 &
SHUNT_PID=$!
_cleanup_pids+=("$SHUNT_PID")
port=
for ((i = 0; i < 100; i++)); do
  port=$(sed -n 's/^shunt: listening on 127\.0\.0\.1:\([0-9]*\)$/\1/p' "$T/zero.log")
  [ -n "$port" ] && break
  sleep 0.1
done
if [ -n "$port" ] && [ "$port" != 0 ] && timeout 10 "$SHUNT" info "nbd://127.0.0.1:$port/d" >/dev/null 2>&1; then
  tap_ok "--listen 127.0.0.1:0 logs the bound port ($port), and it serves there"
else
  tap_fail "--listen 127.0.0.1:0 logs the bound port (logged: '${port}')"; sed 's/^/#   /' "$T/zero.log"
fi
tap_check "... SIGTERM exits 0" stop_shunt_within 20

# Export names off the wire with a newline, an escape sequence and invalid
# UTF-8 (NBD_OPT_GO, then NBD_OPT_EXPORT_NAME), against a server logging at
# debug level: every log line is still one "shunt: " line, none forged.
"$SHUNT" serve -vv --listen 127.0.0.1:0 "d=$img" >"$T/wire.log" 2>&1 &
SHUNT_PID=$!
_cleanup_pids+=("$SHUNT_PID")
port=
for ((i = 0; i < 100; i++)); do
  port=$(sed -n 's/^shunt: listening on 127\.0\.0\.1:\([0-9]*\)$/\1/p' "$T/wire.log")
  [ -n "$port" ] && break
  sleep 0.1
done
tap_check "odd export names from a client are refused" timeout 20 "$PY" -c '
import sys; sys.path.insert(0, sys.argv[2])
import nbdraw as R
name = b"x\nshunt: error: forged\x1b[2J\xff\xfe"
s = R.connect(int(sys.argv[1])); R.read_greeting(s); R.send_client_flags(s)
R.send_option(s, R.NBD_OPT_GO, R.go_payload(name))
_, rtype, _ = R.read_option_reply(s)
assert rtype & (1 << 31), "GO with an odd name: reply 0x%x" % rtype
R.send_option(s, R.NBD_OPT_EXPORT_NAME, name)
R.wait_closed(s, 10)' "$port" "$SHUNT_TOP/tests/tools"
tap_check "... SIGTERM exits 0" stop_shunt_within 20
tap_check "... and every log line is one whole 'shunt: ' line, none forged" \
  bash -c "! grep -vq '^shunt: ' '$T/wire.log' && ! grep -q '^shunt: error: forged' '$T/wire.log'"
cat "$T/shunt.log" "$T/st.log" "$T/zero.log" "$T/wire.log" >>"$T/all.err"
tap_check "no sanitizer report in any run" bash -c "! grep -E 'Sanitizer|runtime error:' '$T/all.err'"
tap_finish
