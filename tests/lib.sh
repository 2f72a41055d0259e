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
# When tests/run.sh runs tests in lanes, each lane picks from its own slice of the
# range (SHUNT_PORT_LANE of SHUNT_PORT_LANES), so that two tests starting at once
# never pick the same port.
free_port() {
  local p lanes=${SHUNT_PORT_LANES:-1} lane=${SHUNT_PORT_LANE:-0} span
  span=$((12000 / lanes))
  while :; do
    p=$((20000 + lane * span + RANDOM % span))
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

# ---- Interop helpers (tests/interop/*.sh) ----
export PYTHONDONTWRITEBYTECODE=1   # no __pycache__ next to the python test helpers

# export_arg NAME PATH [OPTS]: print one `shunt serve` export argument,
# NAME=PATH[,OPTS], with ",$SHUNT_EXPORT_OPTS" appended when that is set (the suite
# is rerun once per data path with e.g. SHUNT_EXPORT_OPTS=datapath=splice).
export_arg() {
  local a="$1=$2"
  [ -n "${3:-}" ] && a+=",$3"
  [ -n "${SHUNT_EXPORT_OPTS:-}" ] && a+=",$SHUNT_EXPORT_OPTS"
  printf '%s\n' "$a"
}

# start_shunt_unix ARGS...: like start_shunt, but serving only the unix socket
# $T/shunt.sock (sets SOCK and SHUNT_PID).
start_shunt_unix() {
  SOCK=$T/shunt.sock
  rm -f "$SOCK"
  "$SHUNT" serve --unix "$SOCK" "$@" >>"$T/shunt.log" 2>&1 &
  SHUNT_PID=$!
  _cleanup_pids+=("$SHUNT_PID")
  wait_unix "$SOCK" 10 || { echo "shunt serve --unix did not start:"; cat "$T/shunt.log"; return 1; }
}

# shunt_alive: true while the last started server ($SHUNT_PID) runs.
shunt_alive() { kill -0 "$SHUNT_PID" 2>/dev/null; }

# rss_kb PID: resident set size of PID in KiB (VmRSS from /proc), empty if gone.
rss_kb() { awk '/^VmRSS:/ { print $2 }' "/proc/$1/status" 2>/dev/null; }

# tap_relay COMMAND...: run a helper program that prints "ok - x" / "not ok - x"
# lines (other lines are passed on as comments); renumber them into this test's
# TAP stream. A program that exits non-zero without reporting a failure, or
# reports nothing, counts as one failure.
tap_relay() {
  local line rc f0=$_tap_failed n0=$_tap_n
  rm -f "$T/.relay_rc"
  while IFS= read -r line; do
    case "$line" in
      "ok - "*)     tap_ok "${line#ok - }" ;;
      "not ok - "*) tap_fail "${line#not ok - }" ;;
      "#"*)         echo "$line" ;;
      *)            echo "# $line" ;;
    esac
  done < <("$@" 2>&1; echo $? >"$T/.relay_rc")
  rc=$(cat "$T/.relay_rc" 2>/dev/null || echo 255)
  if [ "$rc" -ne 0 ] && [ "$_tap_failed" -eq "$f0" ]; then
    tap_fail "$(basename "$1") exited with status $rc"
  elif [ "$_tap_n" -eq "$n0" ]; then
    tap_fail "$(basename "$1") reported nothing"
  fi
}

# stop_within PID SECONDS WHAT: SIGTERM PID (a child of this shell) and wait at most
# SECONDS for it to exit; then SIGKILL it, say so ("WHAT (pid PID) did not exit within
# SECONDS s of SIGTERM; killed") and return 124. Else returns PID's exit status.
stop_within() {
  local i
  kill -TERM "$1" 2>/dev/null
  for ((i = 0; i < $2 * 10; i++)); do
    kill -0 "$1" 2>/dev/null || { wait "$1"; return; }
    sleep 0.1
  done
  echo "$3 (pid $1) did not exit within $2 s of SIGTERM; killed"
  kill -KILL "$1" 2>/dev/null; wait "$1" 2>/dev/null
  return 124
}

# stop_shunt_within [SECONDS]: SIGTERM the server and wait at most SECONDS (default
# 20) for it to exit; then SIGKILL it and fail. Returns the server's exit status.
stop_shunt_within() { stop_within "$SHUNT_PID" "${1:-20}" "shunt serve"; }

# tap_finish: like tap_done, but after a failure print the tail of the server log
# ($T/shunt.log) as TAP comments, so the failing run's log reaches the test log.
tap_finish() {
  if [ "$_tap_failed" -gt 0 ] && [ -s "$T/shunt.log" ]; then
    echo "# last lines of the server log:"
    tail -n 40 "$T/shunt.log" | sed 's/^/#   /'
  fi
  tap_done
}

# ---- A file whose storage can be stalled (tests/tools/lossyfs) ----
# lossyfs_mount BACKING MNT: serve BACKING as MNT/disk.img through lossyfs (FUSE; its
# log is $T/lossyfs.log), with fusectl mounted on /sys/fs/fuse/connections (mounted
# here when it is not). Sets LOSSY_PID (SIGSTOP it and the file stalls; SIGCONT) and
# LOSSY_CONN, the mount's fusectl directory, whose "waiting" counts the requests the
# daemon has not answered. On failure it says why (tap_fail) and returns 1. Set
# `trap 'lossyfs_cleanup PID; _cleanup' EXIT` before calling it.
lossyfs_mount() {
  local lossyfs=${SHUNT_BUILD:-$(dirname "$SHUNT")}/tests/tools/lossyfs dev i
  if [ ! -x "$lossyfs" ] || [ ! -c /dev/fuse ]; then
    tap_fail "a stalled file needs FUSE: /dev/fuse and $lossyfs (libfuse3-dev at build time)"
    return 1
  fi
  if ! mountpoint -q /sys/fs/fuse/connections; then
    mount -t fusectl fusectl /sys/fs/fuse/connections ||
      { tap_fail "mount fusectl on /sys/fs/fuse/connections"; return 1; }
    _lossy_fusectl_mounted=1
  fi
  mkdir -p "$2"
  "$lossyfs" "$1" "$2" -f -s 2>>"$T/lossyfs.log" &
  LOSSY_PID=$! _lossy_mnt=$2
  for ((i = 0; i < 100; i++)); do [ -e "$2/disk.img" ] && break; sleep 0.05; done
  [ -e "$2/disk.img" ] || { tap_fail "lossyfs mounts $2/disk.img"; cat "$T/lossyfs.log"; return 1; }
  # fusectl names a connection after its mount's device number (the kernel's dev_t).
  dev=$(stat -c %d "$2")
  LOSSY_CONN=/sys/fs/fuse/connections/$(( (dev >> 8 & 0xfff) << 20 | (dev & 0xff) | (dev >> 12 & 0xfff00) ))
  [ -r "$LOSSY_CONN/waiting" ] || { tap_fail "fusectl shows the connection of $2 ($LOSSY_CONN)"; return 1; }
}

# lossyfs_cleanup [PID]: let the daemon go on, SIGKILL PID (what uses the file: the
# unmount does not wait for it), unmount and stop lossyfs, and unmount fusectl when
# lossyfs_mount mounted it.
lossyfs_cleanup() {
  if [ -n "${LOSSY_PID:-}" ]; then
    kill -CONT "$LOSSY_PID" 2>/dev/null
    [ -n "${1:-}" ] && kill -KILL "$1" 2>/dev/null
    umount -l "$_lossy_mnt" 2>/dev/null
    kill "$LOSSY_PID" 2>/dev/null
  fi
  [ -n "${_lossy_fusectl_mounted:-}" ] && umount /sys/fs/fuse/connections 2>/dev/null
  return 0
}
