#!/usr/bin/env bash
# vhost_cli.sh: `shunt vhost`'s command line and start-up: --help and -V, the
# usage errors (no device, a spec without SOURCE, bad options), what it refuses
# to start on (a missing source, an NBD server that is not there, a socket path that is a
# regular file or a live socket, a socket in a missing directory, an unwritable
# --stats), the socket's mode (0600, --socket-mode), -u (the socket and the
# process become the user's), a stale socket replaced, the config file ([vhost SOCKET] sections,
# errors with FILE:LINE), and SIGTERM: exit 0 with the socket removed.
. "$(dirname "$0")/../lib.sh"
need_deps
. "$(dirname "$0")/vhost_lib.sh"

img=$T/disk.img
truncate -s 4M "$img"

# vhost_fails WHAT STATUS ARGS...: shunt vhost exits with STATUS within 10 s;
# its messages are in $T/err.
vhost_fails() {
  local what=$1 want=$2; shift 2
  timeout 10 "$SHUNT" vhost "$@" >"$T/err" 2>&1
  local rc=$?
  if [ "$rc" -eq "$want" ] && ! grep -qE 'Sanitizer|runtime error:' "$T/err"; then
    tap_ok "$what (status $rc)"
  else tap_fail "$what (status $rc, expected $want)"; sed 's/^/#   /' "$T/err"; fi
}
err_says() {
  if grep -qE -- "$2" "$T/err"; then tap_ok "$1"; else tap_fail "$1"; sed 's/^/#   /' "$T/err"; fi
}

tap_check "--help exits 0 and shows the usage" bash -c "'$SHUNT' vhost --help | grep -q 'usage: shunt vhost'"
tap_check "--help documents the device options" bash -c "'$SHUNT' vhost --help | grep -q 'queues=N' && '$SHUNT' vhost --help | grep -q 'serial=TEXT'"
tap_check "-V prints the version" bash -c "'$SHUNT' vhost -V | grep -q '^shunt [0-9]'"
tap_check "shunt --help lists vhost" bash -c "'$SHUNT' --help | grep -q '^  vhost '"

vhost_fails "an unknown option is a usage error" 2 --colour "$T/a.sock=$img"
err_says "... naming it, with a hint instead of the whole help" "unknown option '--colour'"
tap_check "... one error line and the hint" bash -c "[ \$(wc -l <'$T/err') -eq 2 ] && grep -q \"Try 'shunt vhost --help'\" '$T/err'"
vhost_fails "a missing option value is a usage error" 2 "$T/a.sock=$img" --threads
err_says "... saying which" "'--threads' needs a value"
vhost_fails "no device is a usage error" 2
err_says "... saying so" "no devices given"
vhost_fails "a spec without SOURCE is a usage error" 2 "$T/a.sock"
err_says "... naming the expected form" "SOCKET=SOURCE"
vhost_fails "queues=0 is refused" 2 "$T/a.sock=$img,queues=0"
err_says "... with the allowed range" "queues must be from 1 to"
vhost_fails "an unknown device option is refused" 2 "$T/a.sock=$img,colour=blue"
err_says "... by name" "unknown option 'colour'"
vhost_fails "a serial longer than 20 bytes is refused" 2 "$T/a.sock=$img,serial=123456789012345678901"
vhost_fails "datapath=nonsense is refused" 2 "$T/a.sock=$img,datapath=nonsense"
vhost_fails "the same socket twice is refused" 2 "$T/a.sock=$img" "$T/a.sock=$img"
vhost_fails "--threads 0 is refused" 2 --threads 0 "$T/a.sock=$img"

vhost_fails "a missing source file fails the start" 1 "$T/a.sock=$T/missing.img"
err_says "... naming the file" "missing.img: No such file"
tap_check "... and leaves no socket behind" test ! -e "$T/a.sock"
vhost_fails "a directory as source is refused" 1 "$T/a.sock=$T"
err_says "... as not a file or block device" "not a regular file or block device"
vhost_fails "an NBD URI whose server is not there fails the start" 1 "$T/a.sock=nbd+unix:///x?socket=$T/none.sock"
err_says "... naming the server and why" "none.sock.*(No such file|refused)"
vhost_fails "a socket in a missing directory fails the start" 1 "$T/no/such/dir/a.sock=$img"
err_says "... naming the socket" "'$T/no/such/dir/a.sock': No such file"
vhost_fails "--stats in a missing directory fails the start" 1 --stats "$T/no/stats.json" "$T/a.sock=$img"

# A disk image named by mistake as the socket path is never replaced.
victim=$T/victim.img
printf 'precious' >"$victim"
vhost_fails "a regular file as socket path is refused" 1 "$victim=$img"
err_says "... as not a socket" "not a socket"
tap_check "... and the file survives" grep -q precious "$victim"

# A running device; a second process on its socket is refused; SIGTERM.
sock=$T/live.sock
"$SHUNT" vhost -t 1 "$sock=$img" >>"$T/shunt.log" 2>&1 &
SHUNT_PID=$!
_cleanup_pids+=("$SHUNT_PID")
if wait_unix "$sock" 10; then
  vhost_fails "a second process on a live socket is refused" 1 "$sock=$img"
  err_says "... saying a server listens there" "server is listening"
  kill -HUP "$SHUNT_PID"; kill -USR2 "$SHUNT_PID"; sleep 0.3
  tap_check "SIGHUP and SIGUSR2 do not kill it" shunt_alive
  tap_check "SIGTERM exits 0" stop_shunt_within 20
  tap_check "its socket is removed at exit" test ! -e "$sock"
else
  tap_fail "shunt vhost started on $sock"; cat "$T/shunt.log"
fi

# The socket's mode: 0600 whatever the umask, or --socket-mode / socket-mode =.
# socket_mode_is WHAT MODE UMASK ARGS...: shunt vhost ARGS (one device, on $sock)
# started under UMASK makes its socket MODE, and exits 0 on SIGTERM.
socket_mode_is() {
  local what=$1 want=$2 mask=$3 got; shift 3
  (umask "$mask"; exec "$SHUNT" vhost -t 1 "$@") >>"$T/shunt.log" 2>&1 &
  SHUNT_PID=$!
  _cleanup_pids+=("$SHUNT_PID")
  if wait_unix "$sock" 10; then
    got=$(stat -c %a "$sock")
    tap_check "$what: the socket is $want under umask $mask (got $got)" test "$got" = "$want"
    tap_check "... and SIGTERM exits 0" stop_shunt_within 20
  else
    tap_fail "$what: shunt vhost started"; cat "$T/shunt.log"
  fi
}
socket_mode_is "by default" 600 000 "$sock=$img"
socket_mode_is "--socket-mode=0660" 660 077 --socket-mode=0660 "$sock=$img"
printf '[server]\nsocket-mode = 666\n[vhost %s]\nsource = %s\n' "$sock" "$img" >"$T/mode.conf"
socket_mode_is "socket-mode = 666 in the config file" 666 022 --config "$T/mode.conf"
vhost_fails "--socket-mode=999 is refused" 2 --socket-mode=999 "$T/a.sock=$img"
err_says "... naming the value" "bad value '999' for 'socket-mode'"
vhost_fails "--socket-mode=0 is refused" 2 --socket-mode=0 "$T/a.sock=$img"

# -u/-g: the process becomes the user once its sockets and sources are open, and the
# sockets are theirs (a VMM running as that user may connect to a 0600 socket).
vhost_fails "-u with an unknown user is refused" 2 -u no-such-user-here "$T/a.sock=$img"
err_says "... naming it" "no such user"
if [ "$(id -u)" = 0 ] && id nobody >/dev/null 2>&1; then
  "$SHUNT" vhost -t 1 -u nobody "$sock=$img" >>"$T/shunt.log" 2>&1 &
  SHUNT_PID=$!
  _cleanup_pids+=("$SHUNT_PID")
  if wait_unix "$sock" 10 && sleep 0.3; then
    tap_check "-u nobody: the socket belongs to nobody, mode 0600" \
      test "$(stat -c '%U %a' "$sock")" = "nobody 600"
    tap_check "... the process runs as nobody" \
      bash -c "awk '/^Uid:/ { print \$2 }' /proc/$SHUNT_PID/status | grep -qx '$(id -u nobody)'"
    tap_check "... a frontend does verified I/O on the source opened before" \
      fe asnobody --verify --requests 300 --seed 61 "$sock"
    tap_check "... and SIGTERM exits 0" stop_shunt_within 20
  else
    tap_fail "shunt vhost -u nobody started"; cat "$T/shunt.log"
  fi
  rm -f "$sock"
else
  tap_skip "-u nobody" "needs root and a user nobody"
fi

# A stale socket (nobody listening) is replaced.
python3 -c "import socket,sys; s=socket.socket(socket.AF_UNIX); s.bind(sys.argv[1])" "$sock"
tap_check "a stale socket file exists" test -S "$sock"
"$SHUNT" vhost -t 1 "$sock=$img" >>"$T/shunt.log" 2>&1 &
SHUNT_PID=$!
_cleanup_pids+=("$SHUNT_PID")
if wait_unix "$sock" 10 && sleep 0.2 && shunt_alive; then
  tap_ok "a stale socket is replaced"
  tap_check "... and SIGTERM exits 0" stop_shunt_within 20
else
  tap_fail "a stale socket is replaced"; cat "$T/shunt.log"
fi

# The config file: [server] keys and a [vhost SOCKET] section per device.
cat >"$T/vhost.conf" <<CONF
# two devices
[server]
threads = 1
[vhost $T/c1.sock]
source = $img
queues = 2
serial = disk-one
[vhost $T/c2.sock]
path = $img
ro
CONF
"$SHUNT" vhost --config "$T/vhost.conf" >>"$T/conf.log" 2>&1 &
SHUNT_PID=$!
_cleanup_pids+=("$SHUNT_PID")
if wait_unix "$T/c1.sock" 10 && wait_unix "$T/c2.sock" 10; then
  tap_ok "--config starts both devices"
  tap_check "... the first with 2 queues" grep -q "c1.sock.*2 queues" "$T/conf.log"
  tap_check "... the second read-only" grep -q "c2.sock.*read-only" "$T/conf.log"
  tap_check "... and SIGTERM exits 0" stop_shunt_within 20
else
  tap_fail "--config starts both devices"; cat "$T/conf.log"
fi
printf '[server]\nthreads = 1\n[disk %s]\n' "$T/x.sock" >"$T/bad.conf"
vhost_fails "an unknown section is refused" 2 --config "$T/bad.conf"
err_says "... with FILE:LINE" "bad.conf:3: unknown section"
printf '[vhost %s]\nqueues = 2\n' "$T/x.sock" >"$T/nosrc.conf"
vhost_fails "a section without source is refused" 2 --config "$T/nosrc.conf"
err_says "... saying so" "no source"
vhost_fails "a config file that is a directory is refused" 2 --config "$T"
tap_finish
