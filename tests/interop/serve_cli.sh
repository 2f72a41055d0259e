#!/bin/bash
# serve_cli.sh: `shunt serve`'s nbdkit/qemu-nbd-style command line: -p, a bare
# port after --listen, a bare PATH, -r, --fork with --pidfile, --run (its
# environment and exit status), --exit-with-parent, -u/-g, -V, the one-line
# error for a mistyped option, and the log's journald priority prefixes.
. "$(dirname "$0")/../lib.sh"

command -v nbdinfo >/dev/null || { tap_skip "serve command line" "nbdinfo not installed"; tap_done; exit; }
truncate -s 8M "$T/disk.img"

# -V / --version
"$SHUNT" serve -V >"$T/v" 2>&1 && grep -qx 'shunt [0-9.]*' "$T/v" \
  && tap_ok "serve -V prints the version" || tap_fail "serve -V prints the version: $(cat "$T/v")"

# A mistyped option: one error line and a hint, exit status 2, no help text.
"$SHUNT" serve --listne 127.0.0.1:1 x="$T/disk.img" >"$T/typo" 2>&1; st=$?
[ "$st" -eq 2 ] && tap_ok "mistyped option: exit status 2" || tap_fail "mistyped option: exit status $st"
tap_check "... one 'shunt: error:' line naming the option" grep -qx "shunt: error: unknown option '--listne'" "$T/typo"
tap_check "... and the hint, nothing more" \
  bash -c "[ \$(wc -l <'$T/typo') -eq 2 ] && grep -qx \"Try 'shunt serve --help' for more information.\" '$T/typo'"
"$SHUNT" serve --listen >"$T/noval" 2>&1
"$SHUNT" serve -p abc "$T/disk.img" >"$T/badport" 2>&1; st=$?
[ "$st" -eq 2 ] && grep -q "expected a port number" "$T/badport" && tap_ok "-p with something else than a number: usage error" \
  || tap_fail "-p abc: status $st"
tap_check "an option without its value says so" grep -qx "shunt: error: option '--listen' needs a value" "$T/noval"

# --fork + --pidfile: the command returns once the server listens; the pid
# file names the server, which serves right away.
P=$(free_port)
"$SHUNT" serve --fork --pidfile "$T/pid" -p "$P" "$T/disk.img" 2>>"$T/shunt.log"; st=$?
[ "$st" -eq 0 ] && tap_ok "--fork returns 0" || tap_fail "--fork returned $st"
pid=$(cat "$T/pid" 2>/dev/null)
[ -n "$pid" ] && _cleanup_pids+=("$pid")
[ -n "$pid" ] && kill -0 "$pid" 2>/dev/null && tap_ok "--pidfile names the running server" \
  || tap_fail "--pidfile names the running server ($pid)"
nbdinfo --list "nbd://127.0.0.1:$P" >"$T/list" 2>&1
tap_check "-p PORT and a bare PATH: the export has the empty name" grep -q 'export="":' "$T/list"
tap_check "... and is writable without -r" bash -c "nbdinfo --is readonly nbd://127.0.0.1:$P; [ \$? -eq 2 ]"
"$SHUNT" serve -p "$P" "$T/disk.img" >"$T/inuse" 2>&1; st=$?
[ "$st" -ne 0 ] && grep -q 'another server listens there: choose another port, -p PORT' "$T/inuse" \
  && tap_ok "a port in use: the error says how to move" || tap_fail "a port in use: status $st, $(grep error "$T/inuse")"
kill -TERM "$pid" 2>/dev/null
for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
kill -0 "$pid" 2>/dev/null && tap_fail "the forked server exits on SIGTERM" || tap_ok "the forked server exits on SIGTERM"
[ -e "$T/pid" ] && tap_fail "the pid file is removed at exit" || tap_ok "the pid file is removed at exit"

# --fork when the server cannot start: the parent reports the child's failure.
"$SHUNT" serve --fork -p "$P" "$T/missing.img" 2>"$T/forkfail"; st=$?
[ "$st" -ne 0 ] && tap_ok "--fork of a failing server exits non-zero ($st)" || tap_fail "--fork of a failing server exits 0"

# --run: $uri and $port set, the export read through them, CMD's status returned.
"$SHUNT" serve --listen 127.0.0.1:0 -r --run 'echo "uri=$uri port=$port"; nbdinfo --is readonly "$uri" && exit 7' \
  "$T/disk.img" >"$T/run" 2>>"$T/shunt.log"; st=$?
[ "$st" -eq 7 ] && tap_ok "--run: exit status of the command (with -r the export is read-only)" \
  || tap_fail "--run: exit status $st (expected 7)"
tap_check "--run: \$uri and \$port name the listener" grep -Eq '^uri=nbd://127\.0\.0\.1:([0-9]+) port=[0-9]+$' "$T/run"
"$SHUNT" serve -U "$T/run.sock" --run 'echo "$uri|$unixsocket"; nbdinfo --size "$uri"' "$T/disk.img" >"$T/runu" 2>>"$T/shunt.log"; st=$?
[ "$st" -eq 0 ] && tap_ok "--run on a unix socket: exit status 0" || tap_fail "--run on a unix socket: exit status $st"
tap_check "... \$uri is nbd+unix and \$unixsocket the path" grep -qx "nbd+unix:///?socket=$T/run.sock|$T/run.sock" "$T/runu"
tap_check "... and the command reached the export" grep -qx 8388608 "$T/runu"

# --listen with a bare number is a port on every address.
P2=$(free_port)
"$SHUNT" serve --listen "$P2" --run "nbdinfo --size nbd://127.0.0.1:$P2/d" d="$T/disk.img" >"$T/lp" 2>>"$T/shunt.log"
tap_check "--listen PORT listens on that port" grep -qx 8388608 "$T/lp"

# Several exports must be named.
"$SHUNT" serve "$T/disk.img" "$T/disk.img" >"$T/two" 2>&1; st=$?
[ "$st" -eq 2 ] && grep -q 'each needs a name' "$T/two" && tap_ok "two bare paths are refused with a hint" \
  || tap_fail "two bare paths: status $st, $(cat "$T/two")"

# --exit-with-parent: the server stops when the shell that started it exits.
P3=$(free_port)
bash -c "\"$SHUNT\" serve --exit-with-parent -p $P3 '$T/disk.img' 2>/dev/null & echo \$! >'$T/ewp.pid'; \
  for _ in \$(seq 100); do (exec 3<>/dev/tcp/127.0.0.1/$P3) 2>/dev/null && break; sleep 0.1; done"
ewp=$(cat "$T/ewp.pid")
for _ in $(seq 100); do kill -0 "$ewp" 2>/dev/null || break; sleep 0.1; done
kill -0 "$ewp" 2>/dev/null && { tap_fail "--exit-with-parent: the server exits with its parent"; kill "$ewp"; } \
  || tap_ok "--exit-with-parent: the server exits with its parent"

# -u/-g: privileges dropped after binding (needs root and the nobody user).
if [ "$(id -u)" -eq 0 ] && id nobody >/dev/null 2>&1; then
  "$SHUNT" serve -U "$T/nobody.sock" -u nobody --run 'echo "ids $(id -u) $(id -g)"' "$T/disk.img" >"$T/nobody" 2>>"$T/shunt.log"
  tap_check "-u nobody: --run's command runs as nobody" grep -qx "ids $(id -u nobody) $(id -g nobody)" "$T/nobody"
  "$SHUNT" serve -U "$T/nobody2.sock" -u nobody --fork -P "$T/nobody.pid" "$T/disk.img" 2>>"$T/shunt.log"
  npid=$(cat "$T/nobody.pid" 2>/dev/null); [ -n "$npid" ] && _cleanup_pids+=("$npid")
  tap_check "-u nobody: the server process runs as nobody" \
    bash -c "[ \"\$(awk '/^Uid:/ { print \$2 }' /proc/$npid/status)\" = $(id -u nobody) ]"
  tap_check "... and still serves" nbdinfo --size "nbd+unix:///?socket=$T/nobody2.sock"
  kill "$npid" 2>/dev/null
  "$SHUNT" serve -u no-such-user-here "$T/disk.img" >"$T/nouser" 2>&1; st=$?
  [ "$st" -eq 2 ] && tap_ok "-u with an unknown user: usage error" || tap_fail "-u with an unknown user: status $st"
else
  tap_skip "-u nobody" "not root, or no user nobody"
fi

# Under systemd's journal (JOURNAL_STREAM = stderr's device:inode) every
# line carries its priority; elsewhere none does.
: >"$T/j.log"
JOURNAL_STREAM=$(stat -c '%d:%i' "$T/j.log") "$SHUNT" serve -U "$T/j.sock" --run true -v "$T/disk.img" 2>>"$T/j.log"
tap_check "JOURNAL_STREAM: notice/info lines carry <5>/<6>" bash -c "grep -q '^<5>shunt: listening on unix:' '$T/j.log' && grep -q '^<6>shunt: info: ' '$T/j.log'"
tap_check "... and no line lacks a prefix" bash -c "! grep -qv '^<[3-7]>shunt: ' '$T/j.log'"
JOURNAL_STREAM=1:1 "$SHUNT" serve -U "$T/j2.sock" --run true "$T/disk.img" 2>"$T/j2.log"
tap_check "JOURNAL_STREAM naming another stream: plain lines" bash -c "! grep -q '^<' '$T/j2.log' && grep -q '^shunt: listening' '$T/j2.log'"
"$SHUNT" serve -U "$T/j3.sock" --log=syslog --run true "$T/disk.img" 2>"$T/j3.log"
tap_check "--log=syslog: nothing on stderr" bash -c "[ ! -s '$T/j3.log' ]"

# The default log has no per-connection lines; -v adds them.
"$SHUNT" serve -U "$T/q.sock" --run 'nbdinfo --size "$uri"' "$T/disk.img" >/dev/null 2>"$T/quiet.log"
tap_check "default log: no per-connection lines" bash -c "! grep -q 'client ' '$T/quiet.log'"
"$SHUNT" serve -U "$T/q.sock" --run 'nbdinfo --size "nbd+unix:///typo?socket=$unixsocket"' d="$T/disk.img" >/dev/null 2>"$T/refused.log"
tap_check "default log: a refused export name is logged" grep -q "client unix#[0-9]*: refused export 'typo': no such export" "$T/refused.log"
"$SHUNT" serve -v -U "$T/q.sock" --run 'nbdinfo --size "$uri"' "$T/disk.img" >/dev/null 2>"$T/verbose.log"
tap_check "-v: the connection is logged" grep -q 'connected' "$T/verbose.log"
tap_finish
