# vhost_lib.sh: what the tests of `shunt vhost` share (sourced after tests/lib.sh):
# the in-tree frontend (FE, fe, json_num, verified) and starting the back end
# (start_vhost).  Every helper's output lands in $T.
: "${SHUNT_BUILD:=$SHUNT_TOP/build}"
FE=$SHUNT_BUILD/tests/tools/vhostfe
[ -x "$FE" ] || { tap_fail "vhostfe is built ($FE)"; tap_done; exit; }

# fe NAME ARGS...: run vhostfe; its JSON summary goes to $T/NAME.json, stderr to
# $T/NAME.err (both printed); returns its status.
fe() {
  local name=$1; shift
  timeout 120 "$FE" --timeout 30 "$@" >"$T/$name.json" 2>"$T/$name.err"
  local rc=$?
  cat "$T/$name.json" "$T/$name.err"
  return $rc
}
# json_num NAME KEY: a number from $T/NAME.json.
json_num() { sed -n "s/.*\"$2\":\([0-9.]*\).*/\1/p" "$T/$1.json"; }
# verified NAME: the run's summary is ok, it read, and it wrote (or had writes refused).
verified() {
  grep -q '"result":"ok"' "$T/$1.json" && [ "$(json_num "$1" reads)" -gt 0 ] &&
    { [ "$(json_num "$1" writes)" -gt 0 ] || [ "$(json_num "$1" refused_writes)" -gt 0 ]; }
}

# start_vhost [OPTION]... SOCKET=SOURCE[,OPTION]...: start `shunt vhost` in the
# background (SHUNT_PID; log in $T/shunt.log) and wait for every device's socket.
# Returns 1 (with the log printed) when one does not appear within 10 s.
start_vhost() {
  local a
  "$SHUNT" vhost "$@" >>"$T/shunt.log" 2>&1 &
  SHUNT_PID=$!
  _cleanup_pids+=("$SHUNT_PID")
  for a in "$@"; do
    case "$a" in
      -*) ;;
      *=*) wait_unix "${a%%=*}" 10 || { sed 's/^/#   /' "$T/shunt.log"; return 1; } ;;
    esac
  done
}
