#!/usr/bin/env bash
# tests/interop/soak.sh: 64 concurrent connections (4 processes x 16) do verified random
# writes (some FUA), reads, flushes and write-zeroes over disjoint regions for 10 s
# (60 s with SHUNT_SOAK_LONG=1). Zero verification errors, a fresh connection reads
# every region back, the server's peak RSS stays under 512 MiB, and once all clients
# have left it holds no more file descriptors than before.
. "$(dirname "$0")/../lib.sh"
. "$SHUNT_TOP/tests/tools/trust-lib.sh"
need_deps

PROCS=4 CONNS=16 REGION=$((1 << 20))
SECS=10
[ "${SHUNT_SOAK_LONG:-0}" = 1 ] && SECS=60
RSS_LIMIT_KB=$((512 * 1024))
img=$T/disk.img
truncate -s $((PROCS * CONNS * REGION)) "$img"
start_shunt_retry "$(export_arg disk "$img")" || { tap_fail "server starts"; tap_done; exit 1; }
uri=$(nbd_uri)
tap_check "nbdinfo before the soak" nbdinfo "$uri"
sleep 0.3
fds0=$(fd_count "$SHUNT_PID")

pids=()
for ((p = 0; p < PROCS; p++)); do
  $PY "$TOOLS/soak_client.py" run "$uri" --index $p --conns $CONNS --region $REGION \
    --seconds $SECS --seed "$RANDOM" --state "$T/state.$p" --ready "$T/ready.$p" >"$T/soak.$p" 2>&1 &
  pids+=($!)
done

# Sample the server while the load runs.
max_rss=0 max_fds=0
while :; do
  running=0
  for p in "${pids[@]}"; do kill -0 "$p" 2>/dev/null && running=1; done
  [ $running = 1 ] || break
  r=$(rss_kb "$SHUNT_PID"); f=$(fd_count "$SHUNT_PID")
  [ "${r:-0}" -gt $max_rss ] && max_rss=$r
  [ "$f" -gt $max_fds ] && max_fds=$f
  sleep 0.25
done
failed=0
for ((p = 0; p < PROCS; p++)); do
  wait "${pids[$p]}" || failed=1
  echo "# process $p: $(tail -n 1 "$T/soak.$p")"
done
if [ $failed = 0 ]; then
  total=$(cat "$T"/soak.* | grep -h '^{' | $PY -c '
import json, sys
s = [json.loads(l) for l in sys.stdin]
print("%d ops, %d MiB moved" % (sum(x["ops"] for x in s), sum(x["bytes"] for x in s) >> 20))')
  tap_ok "$((PROCS * CONNS)) connections for ${SECS} s, zero verification errors: $total"
else
  tap_fail "soak clients reported errors"
  for ((p = 0; p < PROCS; p++)); do sed 's/^/#   /' "$T/soak.$p" | head -n 12; done
fi
if [ $max_fds -ge $((fds0 + PROCS * CONNS)) ]; then
  tap_ok "the server held $((PROCS * CONNS)) connections at once ($max_fds fds at peak, $fds0 idle)"
else
  tap_fail "the server never held $((PROCS * CONNS)) connections at once ($max_fds fds at peak, $fds0 idle)"
fi
states=()
for ((p = 0; p < PROCS; p++)); do states+=("$T/state.$p"); done
if $PY "$TOOLS/soak_client.py" verify "$uri" "${states[@]}" >"$T/verify.out" 2>&1; then
  tap_ok "$(tail -n 1 "$T/verify.out")"
else tap_fail "fresh-connection verification"; sed 's/^/#   /' "$T/verify.out"; fi

hwm=$(rss_kb "$SHUNT_PID" VmHWM)
[ "${hwm:-0}" -gt $max_rss ] && max_rss=$hwm
if [ "$max_rss" -gt 0 ] && [ "$max_rss" -lt $RSS_LIMIT_KB ]; then
  tap_ok "server peak RSS $((max_rss / 1024)) MiB < $((RSS_LIMIT_KB / 1024)) MiB"
else tap_fail "server peak RSS $((max_rss / 1024)) MiB (limit $((RSS_LIMIT_KB / 1024)) MiB)"; fi
fds1=$(wait_fds "$SHUNT_PID" "$fds0" 10)
if server_alive && [ "$fds1" -le "$fds0" ]; then tap_ok "no leaked descriptors ($fds0 before, $fds1 after)"
else tap_fail "descriptors: $fds0 before, $fds1 after"; ls -l "/proc/$SHUNT_PID/fd" | tail -n 20 | sed 's/^/#   /'; fi
stop_shunt_bounded 30
rc=$?
if [ $rc -eq 0 ]; then tap_ok "SIGTERM: exit status 0"
else tap_fail "SIGTERM: exit status $rc"; tail -n 20 "$T/shunt.log" | sed 's/^/#   /'; fi
tap_check "server log has no sanitizer report" sanitizer_clean "$T/shunt.log"
tap_done
