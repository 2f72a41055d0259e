#!/usr/bin/env bash
# vhost_stall.sh: a device whose storage stalls does not stall the other devices of its
# worker.  Device 1 lies on a FUSE file (tests/tools/lossyfs) whose daemon is stopped
# (SIGSTOP) while the in-tree frontend writes to it; device 2, on an ordinary file and
# served by the same worker (--threads 1), must go on answering: its verified I/O
# completes while device 1 is stalled.  io_uring would otherwise run a FUSE write
# inline, holding the worker thread in the kernel until the daemon answers; shunt
# marks writes to such file systems IOSQE_ASYNC.  Then the daemon resumes, device 1's
# frontend finishes verified, and SIGTERM exits 0.
# It mounts fusectl when it is not mounted (and unmounts it after): by itself.
# shunt-test: alone
. "$(dirname "$0")/../lib.sh"
need_deps
. "$(dirname "$0")/vhost_lib.sh"
backing=$T/backing.img mnt=$T/lossy normal=$T/normal.img
truncate -s 32M "$backing" "$normal"
trap 'lossyfs_cleanup "${SHUNT_PID:-}"; _cleanup' EXIT
lossyfs_mount "$backing" "$mnt" || { tap_finish; exit; }
lossy_pid=$LOSSY_PID conn=$LOSSY_CONN

start_vhost --threads 1 "$T/f.sock=$mnt/disk.img" "$T/n.sock=$normal" ||
  { tap_fail "shunt vhost starts"; tap_finish; exit; }
timeout 120 "$FE" --verify --requests 3000 --assume-zero --timeout 60 --seed 50 --ready-file "$T/ready" \
  "$T/f.sock" >"$T/fuse.json" 2>"$T/fuse.err" &
fuse_fe=$!
_cleanup_pids+=("$fuse_fe")
for ((i = 0; i < 200; i++)); do [ -e "$T/ready" ] && break; sleep 0.05; done
tap_check "device 1 (FUSE): its frontend's first requests completed" test -e "$T/ready"
kill -STOP "$lossy_pid"
waiting=0
for ((i = 0; i < 100; i++)); do
  waiting=$(cat "$conn/waiting" 2>/dev/null || echo 0)
  [ "${waiting:-0}" -gt 0 ] && break
  sleep 0.1
done
tap_check "device 1 is stalled: its FUSE daemon stopped with $waiting requests waiting" test "${waiting:-0}" -gt 0
tap_check "device 2, same worker: 1000 verified requests while device 1 is stalled" \
  fe normal --verify --requests 1000 --assume-zero --timeout 20 --seed 51 "$T/n.sock"
tap_check "... and device 1 was still stalled meanwhile" test "$(cat "$conn/waiting" 2>/dev/null || echo 0)" -gt 0
kill -CONT "$lossy_pid"
wait "$fuse_fe"
rc=$?
tap_check "the daemon resumed: device 1's 3000 requests verified" \
  bash -c "[ $rc -eq 0 ] && grep -q '\"result\":\"ok\"' '$T/fuse.json'"
tap_check "SIGTERM exits 0" stop_shunt_within 20
[ "$rc" -eq 0 ] || { sed 's/^/# /' "$T/fuse.err" | tail; }
tap_finish
