#!/bin/bash
# metrics.sh: the server's statistics three ways.  A known workload from a
# real client (libnbd: N reads of M bytes, writes, flush, trims, zero, reads
# out of range, writes to a read-only export) is counted exactly in GET
# /metrics, fetched with curl and parsed by prometheus_client's parser;
# `shunt stats` over the control socket agrees with --stats FILE and with
# /metrics; the control socket refuses a user that is not root (nobody),
# and lets it in only when --control-mode says so; hostile HTTP clients
# (garbage, huge headers, slow requests never finished, answers never read)
# leave the server serving NBD and /metrics; an export name with quotes and
# backslashes comes out of the parser intact; with --fork, both sockets answer
# as soon as the command returns.
. "$(dirname "$0")/../lib.sh"
need_deps
PY=/usr/bin/python3
here=$(cd "$(dirname "$0")" && pwd)
check() { tap_relay "$PY" "$here/metrics_check.py" "$@"; }
N=37 M=12288

# The control sockets live where the user nobody may reach them ($T is private).
chmod 711 "$T"
mkdir -m 755 "$T/pub"
head -c 16M /dev/urandom >"$T/disk.img"   # data: holes would be sent as no payload
truncate -s 16M "$T/ro.img"
weird='q"b\s'
MPORT=$(free_port)
"$SHUNT" serve --threads 2 --unix "$T/nbd.sock" --stats "$T/stats.json" --control "$T/pub/ctl.sock" \
  --metrics "127.0.0.1:$MPORT" "$(export_arg disk "$T/disk.img")" "$(export_arg ro "$T/ro.img" ro)" \
  "$weird=1M,backend=memory" >>"$T/shunt.log" 2>&1 &
SHUNT_PID=$!
_cleanup_pids+=("$SHUNT_PID")
if ! wait_unix "$T/nbd.sock" && wait_port "$MPORT"; then
  tap_fail "server starts with --control and --metrics"; cat "$T/shunt.log"; tap_done; exit 1
fi
tap_ok "server starts with --control and --metrics"
tap_check "the log names the metrics address" grep -q -- "--metrics: listening on 127.0.0.1:$MPORT" "$T/shunt.log"
[ "$(stat -c %a "$T/pub/ctl.sock")" = 600 ] && tap_ok "the control socket is mode 0600" \
  || tap_fail "the control socket is mode $(stat -c %a "$T/pub/ctl.sock")"

disk="nbd+unix:///disk?socket=$T/nbd.sock"
ro="nbd+unix:///ro?socket=$T/nbd.sock"
check workload "$disk" "$ro" $N $M

# ---- GET /metrics ----
tap_check "curl GET /metrics" curl -sSf -o "$T/m1.txt" -D "$T/m1.head" "http://127.0.0.1:$MPORT/metrics"
tap_check "Content-Type says text format 0.0.4" grep -qi '^content-type: text/plain; version=0.0.4' "$T/m1.head"
check check "$T/m1.txt" $N $M
check label "$T/m1.txt" "$weird"

# ---- shunt stats over the control socket ----
rm -f "$T/stats.json"; kill -USR1 "$SHUNT_PID"
for _ in $(seq 100); do [ -s "$T/stats.json" ] && break; sleep 0.1; done
tap_check "shunt stats --json" sh -c '"$1" stats --control "$2" --json >"$3"' _ "$SHUNT" "$T/pub/ctl.sock" "$T/c.json"
check same_json "$T/stats.json" "$T/c.json"
tap_check "shunt stats --prometheus" sh -c '"$1" stats --control "$2" --prometheus >"$3"' _ "$SHUNT" "$T/pub/ctl.sock" "$T/c.txt"
curl -sSf -o "$T/m2.txt" "http://127.0.0.1:$MPORT/metrics"
check same_prom "$T/c.txt" "$T/m2.txt"
"$SHUNT" stats --control "$T/pub/ctl.sock" >"$T/c.out" 2>&1
tap_check "shunt stats: a summary with the reads and their percentiles" \
  grep -Eq "^  read +$((N + 3)) +$((N * M)) +3 " "$T/c.out"
tap_check "... and the errors by errno" grep -Eq " 3 EINVAL$" "$T/c.out"

# ---- the control socket is the server's user's ----
setpriv --reuid=nobody --regid=nogroup --clear-groups "$SHUNT" stats --control "$T/pub/ctl.sock" >"$T/nobody.out" 2>&1
rc=$?
[ $rc -eq 1 ] && grep -q "Permission denied" "$T/nobody.out" && tap_ok "the control socket refuses nobody" \
  || { tap_fail "the control socket refuses nobody (status $rc)"; sed 's/^/#   /' "$T/nobody.out"; }
"$SHUNT" serve --unix "$T/nbd2.sock" --control "$T/pub/open.sock" --control-mode 0666 "m=1M,backend=memory" \
  >>"$T/shunt2.log" 2>&1 &
pid2=$!
_cleanup_pids+=("$pid2")
if wait_unix "$T/pub/open.sock"; then
  setpriv --reuid=nobody --regid=nogroup --clear-groups "$SHUNT" stats --control "$T/pub/open.sock" >"$T/nobody2.out" 2>&1
  rc=$?
  [ $rc -eq 0 ] && grep -q '^export "m"' "$T/nobody2.out" && tap_ok "--control-mode 0666 lets nobody in (the path was reachable)" \
    || { tap_fail "--control-mode 0666 lets nobody in (status $rc)"; sed 's/^/#   /' "$T/nobody2.out"; }
else
  tap_fail "a second server with --control-mode 0666 starts"; cat "$T/shunt2.log"
fi
kill -TERM "$pid2"; wait "$pid2"
[ ! -e "$T/pub/open.sock" ] && tap_ok "the control socket is removed at exit" || tap_fail "the control socket is removed at exit"

# ---- hostile HTTP clients ----
rss0=$(rss_kb "$SHUNT_PID")
mkfifo "$T/hold"
"$PY" "$here/metrics_check.py" hostile 127.0.0.1 "$MPORT" <"$T/hold" >"$T/hostile.out" 2>&1 &
hpid=$!
exec 7>"$T/hold"
for _ in $(seq 300); do grep -q '^ready' "$T/hostile.out" && break; kill -0 $hpid 2>/dev/null || break; sleep 0.1; done
tap_relay cat "$T/hostile.out"
rss1=$(rss_kb "$SHUNT_PID")
[ -n "$rss0" ] && [ -n "$rss1" ] && [ $((rss1 - rss0)) -lt 32768 ] \
  && tap_ok "hostile HTTP clients grow the server's RSS by less than 32 MiB ($((rss1 - rss0)) KiB)" \
  || tap_fail "hostile HTTP clients grow the server's RSS by less than 32 MiB (${rss0:-?} -> ${rss1:-?} KiB)"
# With 60 hostile connections open: NBD and /metrics still answer.
tap_check "NBD reads while hostile HTTP clients hang on" "$PY" -c 'import nbd,sys
h=nbd.NBD(); h.connect_uri(sys.argv[1]); h.pread(65536, 0); h.shutdown()' "$disk"
tap_check "GET /metrics while hostile HTTP clients hang on" curl -sSf --max-time 60 -o "$T/m3.txt" "http://127.0.0.1:$MPORT/metrics"
tap_check "... and it parses" "$PY" -c 'import sys
from prometheus_client.parser import text_string_to_metric_families as p
sys.exit(not any(f.name == "shunt_requests" for f in p(open(sys.argv[1]).read())))' "$T/m3.txt"
exec 7>&-
wait $hpid
shunt_alive && tap_ok "the server lives on" || tap_fail "the server lives on"

# ---- refusals at start ----
# start_fails WHAT EXPECT ARGS...: shunt serve ARGS exits non-zero at once, saying EXPECT.
start_fails() {
  local what=$1 expect=$2; shift 2
  timeout 20 "$SHUNT" serve --unix "$T/bad.sock" "$@" "m=1M,backend=memory" >"$T/bad.log" 2>&1
  local rc=$?
  if [ $rc -ne 0 ] && [ $rc -ne 124 ] && grep -qF -- "$expect" "$T/bad.log"; then tap_ok "$what"
  else tap_fail "$what (status $rc)"; sed 's/^/#   /' "$T/bad.log"; fi
}
start_fails "--metrics without a port number is refused, naming the option" "--metrics '127.0.0.1:none'" \
  --metrics 127.0.0.1:none
start_fails "--metrics '' is refused" "bad value '' for 'metrics'" --metrics ''
start_fails "--control in a missing directory is refused, naming the option" "--control '$T/nodir/c.sock'" \
  --control "$T/nodir/c.sock"
start_fails "--control on the live control socket of another server is refused" "a server is listening" \
  --control "$T/pub/ctl.sock"
start_fails "--control-mode must be octal" "bad value '0999' for 'control-mode'" --control "$T/pub/x.sock" \
  --control-mode 0999
# The hint for a port in use fits the option: -p moves only the NBD listener.
start_fails "--metrics on a port in use: the error says to choose another port" \
  "--metrics '127.0.0.1:$MPORT': Address already in use (another server listens there: choose another port)" \
  --metrics "127.0.0.1:$MPORT"

# ---- --fork: the control and metrics sockets answer once the command returns ----
FPORT=$(free_port)
timeout 30 "$SHUNT" serve --fork -P "$T/fork.pid" --unix "$T/nbd3.sock" --control "$T/pub/fork.sock" \
  --metrics "127.0.0.1:$FPORT" "f=1M,backend=memory" 2>>"$T/shunt3.log"
rc=$?
fpid=$(cat "$T/fork.pid" 2>/dev/null)
[ -n "$fpid" ] && _cleanup_pids+=("$fpid")
if [ $rc -eq 0 ] && [ -n "$fpid" ]; then
  tap_ok "--fork with --control and --metrics returns 0"
  tap_check "--fork: shunt stats answers as soon as the command returned" \
    sh -c '"$1" stats --control "$2" | grep -q "^export \"f\""' _ "$SHUNT" "$T/pub/fork.sock"
  tap_check "--fork: GET /metrics answers as soon as the command returned" \
    curl -sSf --max-time 10 -o "$T/m4.txt" "http://127.0.0.1:$FPORT/metrics"
  kill -TERM "$fpid"
  for _ in $(seq 100); do kill -0 "$fpid" 2>/dev/null || break; sleep 0.1; done
  kill -0 "$fpid" 2>/dev/null && tap_fail "the forked server exits on SIGTERM" || tap_ok "the forked server exits on SIGTERM"
else
  tap_fail "--fork with --control and --metrics returns 0 (status $rc)"; sed 's/^/#   /' "$T/shunt3.log"
fi

# ---- -u: the control socket is bound before the privileges drop ----
# $T/pub is root's: a server already running as nobody could not bind there.
if [ "$(id -u)" -eq 0 ] && id nobody >/dev/null 2>&1; then
  timeout 30 "$SHUNT" serve -u nobody --unix "$T/nbd4.sock" --control "$T/pub/u.sock" \
    --run "stat -c 'owner %U' '$T/pub/u.sock'" "u=1M,backend=memory" >"$T/u.out" 2>>"$T/shunt4.log"
  rc=$?
  [ $rc -eq 0 ] && grep -qx "owner root" "$T/u.out" \
    && tap_ok "-u nobody: the control socket is bound before the privileges drop" \
    || { tap_fail "-u nobody: the control socket is bound before the privileges drop (status $rc)"
         sed 's/^/#   /' "$T/u.out" "$T/shunt4.log"; }
  rm -f "$T/pub/u.sock"
else
  tap_skip "-u nobody and --control" "not root, or no user nobody"
fi

stop_shunt_within 20
rc=$?
[ $rc -eq 0 ] && tap_ok "clean exit" || tap_fail "exit status $rc"
tap_check "the stats file is written at exit" "$PY" -c 'import json,sys
e=json.load(open(sys.argv[1]))["exports"][0]
sys.exit(not (e["name"] == "disk" and e["commands"]["read"]["count"] >= '$((N + 3))' and "bytes_by_path" in e))' "$T/stats.json"
[ ! -e "$T/pub/ctl.sock" ] && tap_ok "the control socket is removed at exit" || tap_fail "the control socket is removed at exit"
tap_done
