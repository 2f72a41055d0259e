# tests/tools/trust-lib.sh: shell helpers shared by the durability, fault, limit and
# soak tests (tests/interop/{durability,faults}_*.sh, soak.sh). Source it after
# tests/lib.sh. Owns: the python client path, fd/RSS probes, sanitizer log checks,
# and a bounded SIGTERM stop.

PY=/usr/bin/python3
TOOLS=$SHUNT_TOP/tests/tools
export SHUNT_TOP

# export_arg and tap_relay come from tests/lib.sh.

# Under ASan, freed buffers sit in a 256 MB quarantine and count as RSS; keep it small
# so the memory bounds below measure the server, not the sanitizer.
export ASAN_OPTIONS="${ASAN_OPTIONS:+$ASAN_OPTIONS:}quarantine_size_mb=16"

# is_asan: true when $SHUNT is built with AddressSanitizer.
is_asan() { grep -qa __asan_init "$SHUNT" 2>/dev/null; }

# fd_count PID: number of open file descriptors of PID.
fd_count() { ls "/proc/$1/fd" 2>/dev/null | wc -l; }

# wait_fds PID MAX SECONDS: wait until PID has at most MAX fds; prints the last count.
wait_fds() {
  local i n
  for ((i = 0; i < $3 * 10; i++)); do
    n=$(fd_count "$1")
    [ "$n" -le "$2" ] && break
    sleep 0.1
  done
  echo "$n"
}

# rss_kb PID [FIELD]: VmRSS (or another /proc status field, e.g. VmHWM) in kB.
rss_kb() { awk -v f="${2:-VmRSS}:" '$1 == f { print $2 }' "/proc/$1/status" 2>/dev/null; }

# sanitizer_clean LOG: no ASan, LeakSanitizer or UBSan report in LOG.
sanitizer_clean() {
  if grep -nE 'LeakSanitizer|ERROR: AddressSanitizer|runtime error:' "$1"; then return 1; fi
  return 0
}

# stop_shunt_bounded [SECONDS]: SIGTERM the server, wait at most SECONDS (default
# 20), then SIGKILL. Returns the server's exit status, or 124 when it had to be killed.
stop_shunt_bounded() {
  local i
  kill -TERM "$SHUNT_PID" 2>/dev/null
  for ((i = 0; i < ${1:-20} * 10; i++)); do
    kill -0 "$SHUNT_PID" 2>/dev/null || break
    # A zombie child has exited; wait reaps it below.
    [ "$(awk '{print $3}' "/proc/$SHUNT_PID/stat" 2>/dev/null)" = Z ] && break
    sleep 0.1
  done
  if kill -0 "$SHUNT_PID" 2>/dev/null && [ "$(awk '{print $3}' "/proc/$SHUNT_PID/stat" 2>/dev/null)" != Z ]; then
    kill -KILL "$SHUNT_PID" 2>/dev/null
    wait "$SHUNT_PID" 2>/dev/null
    return 124
  fi
  wait "$SHUNT_PID"
}

# server_alive: the server process still runs (not a zombie).
server_alive() {
  kill -0 "$SHUNT_PID" 2>/dev/null && [ "$(awk '{print $3}' "/proc/$SHUNT_PID/stat" 2>/dev/null)" != Z ]
}

# nbd_uri [NAME]: the URI of an export on the running server.
nbd_uri() { echo "nbd://127.0.0.1:$PORT/${1:-disk}"; }

# A test ended by run.sh's timeout (SIGTERM) or ^C still runs its EXIT trap, so
# servers, FUSE daemons, mounts and loop devices are cleaned up.
trap 'exit 143' TERM
trap 'exit 130' INT

# start_shunt_retry ARGS...: start_shunt, retried twice when the server did not come up
# (another process may take the free port between free_port and bind).
start_shunt_retry() {
  local k
  for k in 1 2 3; do
    start_shunt "$@" >"$T/.start.out" 2>&1 && server_alive && return 0
    sed 's/^/# /' "$T/.start.out" | tail -n 3
    kill -KILL "$SHUNT_PID" 2>/dev/null; wait "$SHUNT_PID" 2>/dev/null
  done
  return 1
}
