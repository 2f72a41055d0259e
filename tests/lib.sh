# tests/lib.sh: helpers for shell tests. Source it: . "$(dirname "$0")/../lib.sh"
# Provides TAP output (tap_ok, tap_fail, tap_check, tap_skip, tap_done), a scratch
# directory ($T, removed on exit), free ports, and starting shunt serve.
set -u
: "${SHUNT:=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)/build/shunt}"
: "${SHUNT_TOP:=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)}"
_tap_n=0 _tap_failed=0
T=$(mktemp -d /tmp/shunt-test.XXXXXX)
_cleanup_pids=()
_cleanup() {
  local p
  for p in "${_cleanup_pids[@]}"; do kill "$p" 2>/dev/null; done
  for p in "${_cleanup_pids[@]}"; do wait "$p" 2>/dev/null; done
  rm -rf "$T"
}
trap _cleanup EXIT

tap_ok()   { _tap_n=$((_tap_n + 1)); echo "ok $_tap_n - $*"; }
tap_fail() { _tap_n=$((_tap_n + 1)); _tap_failed=$((_tap_failed + 1)); echo "not ok $_tap_n - $*"; }
tap_skip() { _tap_n=$((_tap_n + 1)); echo "ok $_tap_n - $1 # SKIP $2"; }
# tap_check "description" command...: passes when the command succeeds.
tap_check() {
  local what=$1; shift
  if "$@" >"$T/.out" 2>&1; then tap_ok "$what"
  else tap_fail "$what"; sed 's/^/#   /' "$T/.out" | tail -n 20; fi
}
tap_done() { echo "1..$_tap_n"; [ "$_tap_failed" -eq 0 ]; }

# Make sure the Debian packages a test needs are installed (through the project's script).
need_deps() { "$SHUNT_TOP/scripts/deps.sh" test >/dev/null || { echo "deps.sh failed" >&2; exit 1; }; }

# free_port: print a TCP port on 127.0.0.1 that no socket uses. The range stays below
# the kernel's ephemeral ports (32768+), which busy clients would otherwise collide with.
free_port() {
  local p
  while :; do
    p=$((20000 + RANDOM % 12000))
    ss -Htan "sport = :$p" | grep -q . || { echo "$p"; return; }
  done
}

# wait_port PORT [SECONDS]: wait until something accepts on 127.0.0.1:PORT.
wait_port() {
  local i
  for ((i = 0; i < ${2:-10} * 20; i++)); do
    (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0
    sleep 0.05
  done
  return 1
}

# wait_unix PATH [SECONDS]: wait until the unix socket exists.
wait_unix() {
  local i
  for ((i = 0; i < ${2:-10} * 20; i++)); do [ -S "$1" ] && return 0; sleep 0.05; done
  return 1
}

# start_shunt ARGS...: start `shunt serve` on a free port in the background.
# Sets PORT and SHUNT_PID; the log goes to $T/shunt.log. ARGS are the exports
# and extra options; --listen 127.0.0.1:$PORT is added.
start_shunt() {
  PORT=$(free_port)
  "$SHUNT" serve --listen "127.0.0.1:$PORT" "$@" >>"$T/shunt.log" 2>&1 &
  SHUNT_PID=$!
  _cleanup_pids+=("$SHUNT_PID")
  wait_port "$PORT" 10 || { echo "shunt serve did not start:"; cat "$T/shunt.log"; return 1; }
}

# stop_shunt: SIGTERM the server and wait; returns its exit status.
stop_shunt() {
  kill -TERM "$SHUNT_PID" 2>/dev/null
  wait "$SHUNT_PID"
}
