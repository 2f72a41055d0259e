#!/usr/bin/env bash
# client_nbdkit.sh: libshunt against nbdkit: memory (with multi-conn), file,
# the delay filter (requests in flight overlap) and the error filter (errors
# surface with errno and a message naming server and request).
. "$(dirname "$0")/client_lib.sh"
command -v nbdkit >/dev/null || { tap_skip "nbdkit" "nbdkit not installed"; tap_check "nbds:// with a missing keys file fails naming it" \
  bash -c "! '$SHUNT' info 'nbds://a@127.0.0.1:1/x?tls-psk-file=$T/none.psk' 2>'$T/tls.err' && grep -q 'none.psk' '$T/tls.err'"
tap_check "a malformed URI is refused naming the problem" \
  bash -c "! '$SHUNT' info 'nbd+unix:///x' 2>'$T/uri.err' && grep -q 'socket=' '$T/uri.err'"
tap_check "a refused connection names host and port" \
  bash -c "! '$SHUNT' info 'nbd://127.0.0.1:$(free_port)/' 2>'$T/c.err' && grep -q 'connect to 127.0.0.1:.*refused' '$T/c.err'"

# A server started as a command speaking NBD on stdin/stdout
# (shunt_connect_command): nbdkit -s, its cache filter offering CACHE.
run_check "nbdkit -s command" --expect-cache --command nbdkit -s --filter=cache memory 16M
# ... and shunt's own: shunt serve --stdio, asking for its export by name.
truncate -s 16M "$T/stdio.img"
run_check "shunt serve --stdio command" --export disk --command "$SHUNT" serve --stdio "disk=$T/stdio.img"
tap_check "a command that cannot run fails naming it" \
  bash -c "! '$CLIENT_CHECK' --command '$T/no-such-server' >'$T/cmd.out' 2>&1 && grep -q 'no-such-server: cannot run it' '$T/cmd.out'"
tap_done; exit; }

start_nbdkit memory 64M
run_check "nbdkit memory" --connections 4 --expect-conns 4 --absent-context qemu:allocation-depth \
  "nbd://127.0.0.1:$PORT/"
tap_check "docs example program runs: zero payload bytes copied" \
  bash -c "'$SHUNT_BUILD/docs/examples/shunt-example' 'nbd://127.0.0.1:$PORT/' | grep -q '^read: ok, 0 payload bytes copied'"
tap_check "shunt info --json --map is valid JSON with size and extents" python3 -c '
import json, subprocess, sys
j = json.loads(subprocess.check_output([sys.argv[1], "info", "--json", "--map", sys.argv[2]]))
assert j["size"] == 64 << 20 and j["can_multi_conn"] and j["structured_replies"], j
assert j["map"][0]["offset"] == 0 and sum(e["length"] for e in j["map"]) == 64 << 20, j["map"]
' "$SHUNT" "nbd://127.0.0.1:$PORT/"
stop_pid "$NBDKIT_PID"

truncate -s 32M "$T/file.img"
start_nbdkit file "$T/file.img"
run_check "nbdkit file" "nbd://127.0.0.1:$PORT/"
stop_pid "$NBDKIT_PID"
tap_check "nbdkit file: data landed in the file" \
  cmp -n 4096 <(head -c 4096 "$T/file.img") <(python3 -c '
import sys
sys.stdout.buffer.write(bytes(((i*31 + (i>>12) + 1) & 255) for i in range(4096)))')

start_nbdkit --filter=delay memory 64M delay-read=40ms
run_check "nbdkit delay" --delay-ms 40 "nbd://127.0.0.1:$PORT/"
stop_pid "$NBDKIT_PID"

start_nbdkit --filter=error memory 64M error-pread=EIO error-pread-rate=100% \
  error-pwrite=ENOSPC error-pwrite-rate=100%
run_check "nbdkit error" --errors "nbd://127.0.0.1:$PORT/"
stop_pid "$NBDKIT_PID"

# Unix socket URI and a missing export name.
SOCK=$T/nbdkit.sock
nbdkit -f -U "$SOCK" memory 16M >>"$T/nbdkit.log" 2>&1 &
_cleanup_pids+=($!)
wait_unix "$SOCK" 10
run_check "nbdkit unix" "nbd+unix:///?socket=$SOCK"
# The same server through a socket the caller connected (shunt_connect_socket).
run_check "nbdkit socket fd" --socket "$SOCK"
tap_check "shunt info over a unix socket" \
  bash -c "'$SHUNT' info 'nbd+unix:///?socket=$SOCK' | grep -q 'size: *16777216'"
tap_check "nbds:// to a server without TLS fails: STARTTLS refused" \
  bash -c "! '$SHUNT' info 'nbds+unix:///?socket=$SOCK&tls-verify-peer=0' 2>'$T/tls.err' && grep -q 'refused STARTTLS' '$T/tls.err'"
tap_check "a malformed URI is refused naming the problem" \
  bash -c "! '$SHUNT' info 'nbd+unix:///x' 2>'$T/uri.err' && grep -q 'socket=' '$T/uri.err'"
tap_check "a refused connection names host and port" \
  bash -c "! '$SHUNT' info 'nbd://127.0.0.1:$(free_port)/' 2>'$T/c.err' && grep -q 'connect to 127.0.0.1:.*refused' '$T/c.err'"

# A server started as a command speaking NBD on stdin/stdout
# (shunt_connect_command): nbdkit -s, its cache filter offering CACHE.
run_check "nbdkit -s command" --expect-cache --command nbdkit -s --filter=cache memory 16M
# ... and shunt's own: shunt serve --stdio, asking for its export by name.
truncate -s 16M "$T/stdio.img"
run_check "shunt serve --stdio command" --export disk --command "$SHUNT" serve --stdio "disk=$T/stdio.img"
tap_check "a command that cannot run fails naming it" \
  bash -c "! '$CLIENT_CHECK' --command '$T/no-such-server' >'$T/cmd.out' 2>&1 && grep -q 'no-such-server: cannot run it' '$T/cmd.out'"
tap_done
