#!/usr/bin/env bash
# client_refusals.sh: the client commands refuse rather than destroy or wait:
# `shunt copy` of a file onto itself (the same path, a symlink, a hard link)
# or of an NBD export onto itself (the same export named by two URIs) fails
# with the content intact; `shunt info` against a peer that is not an NBD
# server (an HTTP server that waits for a request, a peer that sends a few
# non-NBD bytes and waits) fails within seconds, saying so.
. "$(dirname "$0")/../lib.sh"
need_deps
PY=/usr/bin/python3

img=$T/disk.img
head -c 1M /dev/urandom >"$img"
want=$(sha256sum <"$img")
intact() { [ "$(sha256sum <"$img")" = "$want" ]; }

# copy_refused WHAT SRC DST: shunt copy fails (non-zero), says "same", and the
# image is intact.
copy_refused() {
  local what=$1 rc
  timeout 30 "$SHUNT" copy --no-progress "$2" "$3" >"$T/err" 2>&1
  rc=$?
  cat "$T/err" >>"$T/all.err"
  if [ "$rc" -ne 0 ] && [ "$rc" -ne 124 ] && grep -q "same" "$T/err" && intact; then
    tap_ok "$what: refused (status $rc), content intact"
  else
    tap_fail "$what: refused, content intact (status $rc; intact: $(intact && echo yes || echo no))"
    sed 's/^/#   /' "$T/err"
    cp "$T/orig.img" "$img"
  fi
}
cp "$img" "$T/orig.img"
ln -s "$img" "$T/link.img"
ln "$img" "$T/hard.img"
copy_refused "copy F F" "$img" "$img"
copy_refused "copy F through a symlink to F" "$img" "$T/link.img"
copy_refused "copy F onto a hard link of F" "$img" "$T/hard.img"
copy_refused "copy F onto ./F (another spelling)" "$img" "$T/../$(basename "$T")/disk.img"
tap_check "copy F onto another file still works" \
  bash -c "'$SHUNT' copy --no-progress '$img' '$T/copy.img' && cmp '$img' '$T/copy.img'"

start_shunt "d=$img" --unix "$T/s.sock" || exit 1
copy_refused "copy of an NBD export onto itself (the same URI)" \
  "nbd://127.0.0.1:$PORT/d" "nbd://127.0.0.1:$PORT/d"
copy_refused "copy of an NBD export onto itself (localhost and 127.0.0.1)" \
  "nbd://127.0.0.1:$PORT/d" "nbd://localhost:$PORT/d"
copy_refused "copy of an NBD export onto itself (two spellings of the unix socket)" \
  "nbd+unix:///d?socket=$T/s.sock" "nbd+unix:///d?socket=$T/../$(basename "$T")/s.sock"
tap_check "server stops cleanly" stop_shunt_within 20

# info_fails_fast WHAT URI: shunt info fails within 20 s (the connection
# timeout is 30 s) with "not an NBD server".
info_fails_fast() {
  local t0=$SECONDS rc
  timeout 60 "$SHUNT" info "$2" >"$T/err" 2>&1
  rc=$?
  cat "$T/err" >>"$T/all.err"
  if [ "$rc" -ne 0 ] && [ $((SECONDS - t0)) -le 20 ] && grep -q "not an NBD server" "$T/err"; then
    tap_ok "$1: fails in $((SECONDS - t0)) s: $(head -c 160 "$T/err")"
  else
    tap_fail "$1: fails within 20 s saying 'not an NBD server' (status $rc after $((SECONDS - t0)) s)"
    sed 's/^/#   /' "$T/err"
  fi
}
# A peer that sends "HTTP/1.1" (8 bytes, fewer than the NBD greeting) and waits.
hport=$(free_port)
# (A thread per connection: wait_port's probe must not hold up the next one.)
"$PY" -c '
import socket, sys, threading, time
def serve(c):
    c.sendall(b"HTTP/1.1"); time.sleep(60)
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("127.0.0.1", int(sys.argv[1]))); s.listen(4)
while True:
    threading.Thread(target=serve, args=(s.accept()[0],), daemon=True).start()' "$hport" >"$T/fake.log" 2>&1 &
_cleanup_pids+=("$!")
wait_port "$hport" 10
info_fails_fast "info against a peer sending 'HTTP/1.1' and waiting" "nbd://127.0.0.1:$hport/"
tap_check "... the message shows what the peer sent" grep -q 'it sent "HTTP/1.1"' "$T/err"

# A real (tiny) HTTP server: it sends nothing until it gets a request.
hport=$(free_port)
"$PY" -m http.server --bind 127.0.0.1 --directory "$T" "$hport" >"$T/http.log" 2>&1 &
_cleanup_pids+=("$!")
wait_port "$hport" 10
info_fails_fast "info against python's http.server (silent until a request)" "nbd://127.0.0.1:$hport/"
cat "$T/shunt.log" >>"$T/all.err"
tap_check "no sanitizer report in any run" bash -c "! grep -E 'Sanitizer|runtime error:' '$T/all.err'"
tap_finish
