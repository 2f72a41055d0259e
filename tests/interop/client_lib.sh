# tests/interop/client_lib.sh: helpers for the libshunt/client-tool interop tests
# (sourced, not run).  Starts third-party NBD servers on free ports on 127.0.0.1
# in the background; tests/lib.sh kills them on exit.
. "$(dirname "${BASH_SOURCE[0]}")/../lib.sh"
: "${SHUNT_BUILD:=$SHUNT_TOP/build}"
CLIENT_CHECK=$SHUNT_BUILD/tests/unit/client_check

# Another job may take the port free_port chose before the server binds it, so
# each start retries on a new port when the server exits at once.
# _await_server PID PIDFILE: wait until PIDFILE exists (the server bound its
# socket) or the server exits; returns 0 if it is up.
_await_server() {
  local i
  for ((i = 0; i < 200; i++)); do
    [ -s "$2" ] && return 0
    kill -0 "$1" 2>/dev/null || { wait "$1" 2>/dev/null; return 1; }
    sleep 0.05
  done
  return 1
}

# start_nbdkit ARGS...: nbdkit in the foreground on a free port; sets PORT, NBDKIT_PID.
start_nbdkit() {
  local try
  for try in 1 2 3 4 5; do
    PORT=$(free_port)
    rm -f "$T/nbdkit.pid"
    nbdkit -f -i 127.0.0.1 -p "$PORT" -P "$T/nbdkit.pid" "$@" >>"$T/nbdkit.log" 2>&1 &
    NBDKIT_PID=$!
    _cleanup_pids+=("$NBDKIT_PID")
    _await_server "$NBDKIT_PID" "$T/nbdkit.pid" && return 0
  done
  echo "# nbdkit did not start:"; sed 's/^/# /' "$T/nbdkit.log"; return 1
}

# start_qemu_nbd FILE [ARGS...]: qemu-nbd exporting FILE as "disk"; sets PORT, QEMU_PID.
start_qemu_nbd() {
  local f=$1 try; shift
  for try in 1 2 3 4 5; do
    PORT=$(free_port)
    rm -f "$T/qemu-nbd.pid"
    qemu-nbd -f raw -b 127.0.0.1 -p "$PORT" -x disk -t --pid-file="$T/qemu-nbd.pid" "$@" "$f" \
      >>"$T/qemu-nbd.log" 2>&1 &
    QEMU_PID=$!
    _cleanup_pids+=("$QEMU_PID")
    _await_server "$QEMU_PID" "$T/qemu-nbd.pid" && wait_port_quiet "$PORT" 10 && return 0
  done
  echo "# qemu-nbd did not start:"; sed 's/^/# /' "$T/qemu-nbd.log"; return 1
}

# start_nbd_server FILE: nbd-server (foreground, -d: one connection) exporting FILE
# as "disk" from a config file; sets PORT, NBDSRV_PID.
start_nbd_server() {
  local try i
  for try in 1 2 3 4 5; do
    PORT=$(free_port)
    cat >"$T/nbd-server.conf" <<CONF
[generic]
    port = $PORT
    listenaddr = 127.0.0.1
    allowlist = true
[disk]
    exportname = $1
    flush = true
    fua = true
    trim = true
CONF
    nbd-server -C "$T/nbd-server.conf" -d >>"$T/nbd-server.log" 2>&1 &
    NBDSRV_PID=$!
    _cleanup_pids+=("$NBDSRV_PID")
    for ((i = 0; i < 200; i++)); do
      kill -0 "$NBDSRV_PID" 2>/dev/null || break
      # Listening, and by our process (not another job that took the port).
      ss -Htlnp "sport = :$PORT" 2>/dev/null | grep -q "pid=$NBDSRV_PID," && return 0
      sleep 0.05
    done
    kill "$NBDSRV_PID" 2>/dev/null; wait "$NBDSRV_PID" 2>/dev/null
  done
  echo "# nbd-server did not start:"; sed 's/^/# /' "$T/nbd-server.log"; return 1
}

# Like wait_port, without opening a connection (nbd-server -d serves only one).
wait_port_quiet() {
  local i
  for ((i = 0; i < ${2:-10} * 20; i++)); do
    ss -Htln "sport = :$1" | grep -q . && return 0
    sleep 0.05
  done
  return 1
}

# stop_pid PID: SIGTERM and reap one server we started.
stop_pid() { kill "$1" 2>/dev/null; wait "$1" 2>/dev/null; return 0; }

# run_check NAME ARGS...: run client_check, re-prefix its TAP lines with NAME.
run_check() {
  local name=$1; shift
  local line
  "$CLIENT_CHECK" "$@" >"$T/check.out" 2>&1
  local rc=$?
  while IFS= read -r line; do
    case "$line" in
      "ok "*" - "*) tap_ok "$name: ${line#* - }" ;;
      "not ok "*" - "*) tap_fail "$name: ${line#* - }" ;;
      "#"*) echo "$line" ;;
    esac
  done <"$T/check.out"
  [ $rc -eq 0 ] || { grep -q '^not ok' "$T/check.out" || tap_fail "$name: client_check exited $rc"; }
}
