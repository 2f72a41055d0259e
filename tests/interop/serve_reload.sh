#!/usr/bin/env bash
# tests/interop/serve_reload.sh: SIGHUP makes `shunt serve --config FILE`
# read FILE again (docs/config.md, "Reloading"), through real clients
# (python3-libnbd, nbdinfo):
# - a client of export c reads on (verified reads, no error) across every
#   reload below;
# - a removed, b added: nbdinfo --list shows the new set, a is refused as
#   an unknown export, b is served;
# - c's weight= changed: its open flow shows the new weight (shunt stats);
# - a bad file (a syntax error, an export whose file is missing, the file
#   gone): one log line per problem, the old set still served;
# - b's path changed while a client reads b: that client keeps the old file,
#   a new client gets the new one;
# - sd_notify: RELOADING=1 then READY=1 around a reload;
# - exports from the command line only: SIGHUP logs that there is nothing
#   to reload.
# Reloads are waited for by polling the log, never by sleeping.
. "$(dirname "$0")/../lib.sh"
need_deps
here=$(cd "$(dirname "$0")" && pwd)
PY=/usr/bin/python3

for x in a b c; do head -c 4M /dev/urandom >"$T/$x.img"; done
conf=$T/shunt.conf
ctl=$T/ctl

# write_conf EXPORT-SECTION...: the config file, with the control socket.
write_conf() {
  { echo "control = $ctl"; for s in "$@"; do printf '%b\n' "$s"; done; } >"$conf.new"
  mv "$conf.new" "$conf"
}
# reload: SIGHUP, then wait (polling the log) for the reload's last line:
# "reloaded" or "kept whole".  Prints that line.
reload() {
  local before
  before=$(grep -cE 'SIGHUP: (reloaded|.*kept whole)' "$T/shunt.log")
  kill -HUP "$SHUNT_PID"
  for _ in $(seq 200); do
    [ "$(grep -cE 'SIGHUP: (reloaded|.*kept whole)' "$T/shunt.log")" -gt "$before" ] && break
    sleep 0.05
  done
  grep -E 'SIGHUP: (reloaded|.*kept whole)' "$T/shunt.log" | tail -n 1
}
list() { nbdinfo --list --json "nbd://127.0.0.1:$PORT" | "$PY" -c 'import json,sys
print(" ".join(sorted(e["export-name"] for e in json.load(sys.stdin)["exports"])))'; }
# progress NAME: reads done by reader NAME; wait_reads NAME: wait until it
# has done more than now (at most 20 s).
progress() { cat "$T/$1.progress" 2>/dev/null || echo 0; }
wait_reads() {
  local n0
  n0=$(progress "$1")
  for _ in $(seq 400); do [ "$(progress "$1")" -gt "$n0" ] && return 0; sleep 0.05; done
  return 1
}
reader() {   # reader NAME IMAGE EXPORT: verified reads in the background
  "$PY" "$here/reload_reader.py" "$2" "nbd://127.0.0.1:$PORT/$3" "$T/$1.stop" "$T/$1.progress" >"$T/$1.out" 2>&1 &
  eval "${1}_pid=$!"
  _cleanup_pids+=("$!")
}
reader_end() {   # reader_end NAME: stop it; true when every read was right
  local pid
  eval "pid=\$${1}_pid"
  touch "$T/$1.stop"
  wait "$pid"
}
flow_weight() {   # flow_weight EXPORT: the weights of its open flows
  "$SHUNT" stats --control "$ctl" --json | "$PY" -c 'import json,sys
e=[x for x in json.load(sys.stdin)["exports"] if x["name"]==sys.argv[1]][0]
print(" ".join(str(f["weight"]) for f in e["flows"]))' "$1"
}

# A stand-in for systemd's notify socket: prints each datagram, one a line.
"$PY" - "$T/notify.sock" >"$T/notify.out" 2>&1 <<'PYEOF' &
import socket, sys
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
s.bind(sys.argv[1])
s.settimeout(120)
try:
    while True:
        print(s.recv(4096).decode().replace("\n", " "), flush=True)
except socket.timeout:
    pass
PYEOF
_cleanup_pids+=("$!")
wait_unix "$T/notify.sock" 10 || { tap_fail "notify socket"; tap_done; exit 1; }

write_conf "[export a]\npath = $T/a.img" "[export c]\npath = $T/c.img\nweight = 100"
export NOTIFY_SOCKET=$T/notify.sock
if ! start_shunt --config "$conf"; then
  tap_fail "server starts with $conf"; tap_finish; exit 1
fi
unset NOTIFY_SOCKET
tap_check "before: exports a c" test "$(list)" = "a c"
reader rc "$T/c.img" c
wait_reads rc || tap_fail "the reader of c reads"

# a removed, b added, c's weight changed.
write_conf "[export b]\npath = $T/b.img" "[export c]\npath = $T/c.img\nweight = 300"
line=$(reload)
case "$line" in *"reloaded"*"(1 added, 1 removed, 0 changed, 1 kept)"*) tap_ok "reload: $line" ;;
  *) tap_fail "reload: $line" ;; esac
tap_check "after: nbdinfo --list shows b c" test "$(list)" = "b c"
if nbdinfo "nbd://127.0.0.1:$PORT/a" >"$T/refused.out" 2>&1; then
  tap_fail "a removed export still answers"
else
  grep -q "refused export 'a': no such export" "$T/shunt.log" \
    && tap_ok "a is refused as an unknown export" || tap_fail "a's refusal: $(cat "$T/refused.out")"
fi
tap_check "b is served (its size)" test "$(nbdinfo --size "nbd://127.0.0.1:$PORT/b")" = $((4 << 20))
"$PY" - "$T/b.img" "nbd://127.0.0.1:$PORT/b" <<'PYEOF' && tap_ok "b's data is b's file" || tap_fail "b's data"
import nbd, sys
h = nbd.NBD(); h.connect_uri(sys.argv[2])
sys.exit(h.pread(65536, 0) != open(sys.argv[1], "rb").read(65536))
PYEOF
w=$(flow_weight c)
[ "$w" = 300 ] && tap_ok "c's open flow took weight=300 at once" || tap_fail "c's flow weights: '$w' (want 300)"
tap_check "the reader of c reads on after the reload" wait_reads rc

# Bad configurations: one log line per problem, the old set kept.
write_conf "[export b]\npath = $T/b.img" "[export c]\npath = $T/c.img\nweight = 300" "[export d]\npath = $T/missing.img" "[export e]\npath = $T/missing2.img"
errs0=$(grep -c "SIGHUP: $conf: export '[de]'" "$T/shunt.log")
line=$(reload)
n=$(( $(grep -c "SIGHUP: $conf: export '[de]'" "$T/shunt.log") - errs0 ))
case "$line" in *"2 problems"*"kept whole"*) [ "$n" = 2 ] && tap_ok "two missing files: two log lines, then: $line" \
  || tap_fail "missing files: $n lines for 2 problems" ;;
  *) tap_fail "missing files: $line" ;; esac
tap_check "... the old set is served (b c)" test "$(list)" = "b c"
printf 'this is not a config line\n' >"$conf"
line=$(reload)
case "$line" in *"$conf:1:"*"kept whole"*) tap_ok "a syntax error: $line" ;; *) tap_fail "syntax error: $line" ;; esac
rm -f "$conf"
line=$(reload)
case "$line" in *"kept whole"*) tap_ok "the file gone: $line" ;; *) tap_fail "file gone: $line" ;; esac
tap_check "... the old set is still served (b c)" test "$(list)" = "b c"
tap_check "the reader of c reads on" wait_reads rc

# b's path changed while a client reads b: it keeps the old file.
reader rb "$T/b.img" b
wait_reads rb || tap_fail "the reader of b reads"
write_conf "[export b]\npath = $T/a.img" "[export c]\npath = $T/c.img\nweight = 300"
line=$(reload)
case "$line" in *"(0 added, 0 removed, 1 changed, 1 kept)"*) tap_ok "b changed: $line" ;; *) tap_fail "b changed: $line" ;; esac
tap_check "the open client of b reads b's old file on" wait_reads rb
"$PY" - "$T/a.img" "nbd://127.0.0.1:$PORT/b" <<'PYEOF' && tap_ok "a new client of b reads the new file" || tap_fail "new client of b"
import nbd, sys
h = nbd.NBD(); h.connect_uri(sys.argv[2])
sys.exit(h.pread(65536, 0) != open(sys.argv[1], "rb").read(65536))
PYEOF
reader_end rb && tap_ok "the old client of b: $(cat "$T/rb.out") verified reads, none failed" \
  || tap_fail "the old client of b: $(cat "$T/rb.out")"

# A server-wide setting is not reloaded: said in the log.
write_conf "threads = 3" "[export b]\npath = $T/a.img" "[export c]\npath = $T/c.img\nweight = 300"
line=$(reload)
grep -q "'threads' differs from the running server's; server-wide settings are not reloaded" "$T/shunt.log" \
  && tap_ok "a changed server-wide setting is logged as not reloaded" || tap_fail "threads change not reported"

reader_end rc && tap_ok "the client of c read on across every reload: $(cat "$T/rc.out") verified reads, none failed" \
  || tap_fail "the client of c: $(cat "$T/rc.out")"
tap_check "sd_notify: RELOADING=1 then READY=1 around each reload" \
  "$PY" -c 'import sys
l=[x.split()[0] for x in open(sys.argv[1]) if x.strip()]
ok = l[0] == "READY=1" and l.count("RELOADING=1") == 6 and all(l[i+1] == "READY=1" for i, x in enumerate(l) if x == "RELOADING=1")
sys.exit(not ok)' "$T/notify.out"
stop_shunt_within 20 || tap_fail "server exit"

# Exports from the command line: nothing to reload.
if start_shunt "d=$T/a.img"; then
  kill -HUP "$SHUNT_PID"
  for _ in $(seq 200); do grep -q "SIGHUP: .*nothing to reload" "$T/shunt.log" && break; sleep 0.05; done
  tap_check "exports on the command line: SIGHUP logs that there is nothing to reload" \
    grep -q "SIGHUP: the exports were given on the command line, not in a configuration file: nothing to reload" "$T/shunt.log"
  tap_check "... and the server serves on" nbdinfo --size "nbd://127.0.0.1:$PORT/d"
  stop_shunt_within 20 || tap_fail "server exit"
else
  tap_fail "command-line server starts"
fi
tap_finish
