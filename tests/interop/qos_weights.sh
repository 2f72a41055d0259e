#!/usr/bin/env bash
# tests/interop/qos_weights.sh: weights, a reservation and a bandwidth limit
# through real clients (python3-libnbd), on a device that is the bottleneck:
# an image on a loop device whose reads a cgroup throttles to 1000 per second
# (cgroup v2 io.max, or cgroup v1 blkio.throttle), shunt serve inside the
# cgroup, the clients outside it. Every client keeps 64 random 4 KiB reads in
# flight on each connection, verifies every read, and counts the reads each
# connection completed (qos_share.py). 64, not 16: the scheduler decides the
# order only of what waits in its queues, and its adaptive depth (the requests
# let into the device) may wander above 16 on a throttled device, whose
# throughput does not change with the depth; with 64 per flow every flow stays
# backlogged in the scheduler. Only counts and ratios of counts are asserted,
# with wide margins:
# - the device is the bottleneck: a server outside the cgroup, reading the
#   same loop device, completes at least 3x the reads of one inside it over
#   the same time (else the test fails and says so: the CPU would limit);
# - weight=400 beside weight=100: at least 2x the reads (ideal 4x);
# - reserve-iops=600 beside three noisy flows: at least 2x the reads of each
#   (ideal about 7x: 600 reserved, then a quarter of the rest);
# - limit-bw=512K (128 reads/s) beside an unlimited flow: the unlimited one
#   completes at least 3x the reads (ideal about 6.8x).
# shunt-test: alone
. "$(dirname "$0")/../lib.sh"
. "$SHUNT_TOP/tests/tools/trust-lib.sh"
need_deps
here=$(cd "$(dirname "$0")" && pwd)
PY=/usr/bin/python3
RIOPS=1000
QD=64

loopdev="" cg="" cgroot=""
qos_cleanup() {
  local p
  for p in "${_cleanup_pids[@]}"; do kill "$p" 2>/dev/null; done
  for p in "${_cleanup_pids[@]}"; do wait "$p" 2>/dev/null; done
  _cleanup_pids=()
  if [ -n "$cg" ] && [ -d "$cg" ]; then
    for p in $(cat "$cg/cgroup.procs" 2>/dev/null); do echo "$p" >"$cgroot/cgroup.procs"; done
    rmdir "$cg"
  fi
  [ -n "$loopdev" ] && losetup -d "$loopdev" 2>/dev/null
  _cleanup
}
trap qos_cleanup EXIT

# fail_setup WHY: the machine cannot run this test; say why and stop.
fail_setup() { tap_fail "setup: $*"; tap_done; exit 1; }

[ "$(id -u)" -eq 0 ] || fail_setup "needs root (a loop device and a cgroup throttle)"
img=$T/disk.img
head -c 64M /dev/urandom >"$img"
loopdev=$(losetup --find --show --direct-io=on "$img") || fail_setup "losetup failed"
majmin=$(cat "/sys/block/${loopdev#/dev/}/dev")
# the throttle's short time slice (read when the first limit is set)
echo 0 >"/sys/block/${loopdev#/dev/}/queue/rotational" 2>/dev/null || true

for root in /sys/fs/cgroup /sys/fs/cgroup/unified; do
  if grep -qw io "$root/cgroup.controllers" 2>/dev/null; then cgroot=$root; break; fi
done
if [ -n "$cgroot" ]; then
  echo +io >"$cgroot/cgroup.subtree_control" || fail_setup "cannot enable the io controller in $cgroot"
  cg=$cgroot/shunt-test-$$
  mkdir "$cg" || fail_setup "mkdir $cg"
  echo "$majmin riops=$RIOPS" >"$cg/io.max" || fail_setup "cannot write $cg/io.max"
elif [ -f /sys/fs/cgroup/blkio/blkio.throttle.read_iops_device ]; then
  cgroot=/sys/fs/cgroup/blkio
  cg=$cgroot/shunt-test-$$
  mkdir "$cg" || fail_setup "mkdir $cg"
  echo "$majmin $RIOPS" >"$cg/blkio.throttle.read_iops_device" || fail_setup "cannot set the blkio throttle"
else
  fail_setup "no cgroup v2 io controller and no cgroup v1 blkio throttle: no device can be made the bottleneck"
fi
echo "# $loopdev throttled to $RIOPS reads/s by $cg"

# serve_in CGROUP|- ARGS...: shunt serve (in the cgroup unless -) on a free
# port; sets PORT and SHUNT_PID.
serve_in() {
  local where=$1; shift
  PORT=$(free_port)
  if [ "$where" = - ]; then
    "$SHUNT" serve --listen "127.0.0.1:$PORT" "$@" >>"$T/shunt.log" 2>&1 &
  else
    sh -c 'echo $$ >"$0" && exec "$@"' "$where/cgroup.procs" \
      "$SHUNT" serve --listen "127.0.0.1:$PORT" "$@" >>"$T/shunt.log" 2>&1 &
  fi
  SHUNT_PID=$!
  _cleanup_pids+=("$SHUNT_PID")
  wait_port "$PORT" 10 || { echo "# shunt serve did not start:"; tail -5 "$T/shunt.log"; return 1; }
}
stop_all() {
  local p
  for p in "${_cleanup_pids[@]}"; do kill "$p" 2>/dev/null; done
  for p in "${_cleanup_pids[@]}"; do wait "$p" 2>/dev/null; done
  _cleanup_pids=()
}
# share TOTAL QD URI...: the counts of qos_share.py.
share() { "$PY" "$here/qos_share.py" "$img" "$@" 2>"$T/client.err"; }
# at_least A K B: A >= K * B (K may be a fraction).
at_least() { "$PY" -c 'import sys; a, k, b = map(float, sys.argv[1:]); sys.exit(not a >= k * b)' "$@"; }

export_of() { echo "$1=$loopdev,datapath=direct${2:+,$2}"; }

# The device is the bottleneck: the same client on one connection to a server
# in the cgroup and one to a server outside it, over the same time.
if serve_in "$cg" "$(export_of t)" && tport=$PORT && serve_in - "$(export_of u)" && uport=$PORT; then
  if got=$(share 4000 $QD "nbd://127.0.0.1:$tport/t" "nbd://127.0.0.1:$uport/u"); then
    read -r nt nu <<<"$got"
    if at_least "$nu" 3 "$nt"; then
      tap_ok "the throttled device is the bottleneck: $nu reads unthrottled against $nt throttled in the same time"
    else
      fail_setup "the machine cannot make the device the bottleneck: unthrottled $nu reads against $nt throttled in the same time (want at least 3x): the CPU limits"
    fi
  else
    fail_setup "reads failed or returned wrong data: $(tail -3 "$T/client.err")"
  fi
else
  fail_setup "shunt serve did not start"
fi
stop_all

# weight=400 beside weight=100 on one device.
if serve_in "$cg" "$(export_of a weight=100)" "$(export_of b weight=400)"; then
  if got=$(share 4000 $QD "nbd://127.0.0.1:$PORT/a" "nbd://127.0.0.1:$PORT/b"); then
    read -r na nb <<<"$got"
    at_least "$nb" 2 "$na" \
      && tap_ok "weight=400 beside weight=100: $nb against $na reads (at least 2x, ideal 4x)" \
      || tap_fail "weight=400 beside weight=100: $nb against $na reads (want at least 2x)"
  else
    tap_fail "weights: reads failed or returned wrong data: $(tail -3 "$T/client.err")"
  fi
else
  tap_fail "weights: server starts"
fi
stop_all

if serve_in "$cg" "$(export_of r reserve-iops=600)" "$(export_of n)"; then
  u="nbd://127.0.0.1:$PORT"
  if got=$(share 4000 $QD "$u/r" "$u/n" "$u/n" "$u/n"); then
    read -r nr n1 n2 n3 <<<"$got"
    most=$(printf '%s\n' "$n1" "$n2" "$n3" | sort -n | tail -1)
    at_least "$nr" 2 "$most" \
      && tap_ok "reserve-iops=600 beside three noisy flows: $nr against at most $most reads each (at least 2x)" \
      || tap_fail "reserve-iops=600 beside three noisy flows: $nr against $n1 $n2 $n3 reads (want at least 2x each)"
  else
    tap_fail "reserve-iops: reads failed or returned wrong data: $(tail -3 "$T/client.err")"
  fi
else
  tap_fail "reserve-iops: server starts"
fi
stop_all

if serve_in "$cg" "$(export_of l limit-bw=512K)" "$(export_of f)"; then
  if got=$(share 3000 $QD "nbd://127.0.0.1:$PORT/l" "nbd://127.0.0.1:$PORT/f"); then
    read -r nl nf <<<"$got"
    at_least "$nf" 3 "$nl" \
      && tap_ok "limit-bw=512K beside an unlimited flow: $nf against $nl reads (at least 3x)" \
      || tap_fail "limit-bw=512K beside an unlimited flow: $nf against $nl reads (want at least 3x)"
  else
    tap_fail "limit-bw: reads failed or returned wrong data: $(tail -3 "$T/client.err")"
  fi
else
  tap_fail "limit-bw: server starts"
fi
stop_all
tap_check "no sanitizer report in the server log" sanitizer_clean "$T/shunt.log"
tap_done
