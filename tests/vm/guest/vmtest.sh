# tests/vm/guest/vmtest.sh: helpers for guest test scripts (sourced; busybox sh).
# Results go to fd 9 (ttyS1) as "VMTAP ok|not ok - what"; the host turns them into
# TAP. Everything else a script prints goes to the console log (ttyS0).
HOST=10.0.2.2
g_ok()   { echo "VMTAP ok - $*" >&9; echo "guest: ok - $*"; }
g_fail() { echo "VMTAP not ok - $*" >&9; echo "guest: not ok - $*"; }
# g_check "what" cmd...: ok when the command succeeds; its output goes to the console.
g_check() {
  _w=$1; shift
  "$@" >/tmp/.g_out 2>&1
  _rc=$?
  if [ $_rc = 0 ]; then g_ok "$_w"; return 0; fi
  g_fail "$_w (exit $_rc)"
  tail -n 30 /tmp/.g_out | sed 's/^/guest:   /'
  return 1
}
# g_must "what" cmd...: like g_check, but a failure ends the script (later steps depend on it).
g_must() { g_check "$@" || exit 1; }
# g_mark NAME: tell the host this point was reached (see vm_wait_mark).
g_mark() { echo "VMMARK $*" >&9; echo "guest: mark $*"; }
# g_note text: a diagnostic line that also reaches the host's TAP output as a comment.
g_note() { echo "VMNOTE $*" >&9; echo "guest: $*"; }
# g_wait_host WORD [SECS]: wait until the host ran `vm_send NAME WORD` (default 120 s).
g_wait_host() {
  timeout "${2:-120}" sh -c 'while read -r w <&8; do [ "$w" = "$1" ] && exit 0; done; exit 1' \
    _ "$1" || { g_fail "host sent '$1' within ${2:-120}s"; return 1; }
}
