#!/usr/bin/env bash
# tests/interop/faults_disconnect.sh: clients that hang up mid-handshake, mid-request
# and mid-payload (FIN or RST), hundreds of times, while a well-behaved qemu-io client
# keeps working beside them. Afterwards the server holds no more file descriptors than
# before, stops with status 0 on SIGTERM, and (under the ASan build, where make check
# sets detect_leaks=1) its log has no LeakSanitizer or AddressSanitizer report.
. "$(dirname "$0")/../lib.sh"
. "$SHUNT_TOP/tests/tools/trust-lib.sh"
need_deps

SIZE=$((64 << 20))
LIMIT=$((32 << 20))          # the disconnecting clients write below 32 MiB, qemu-io above
img=$T/disk.img
truncate -s $SIZE "$img"
start_shunt_retry "$(export_arg disk "$img")" || { tap_fail "server starts"; tap_done; exit 1; }
uri=$(nbd_uri)

# Baseline after one complete client, so lazily opened descriptors are counted.
tap_check "nbdinfo before the storm" nbdinfo "$uri"
sleep 0.5
fds0=$(fd_count "$SHUNT_PID")

# The steady client: write and read back a pattern in the upper half, in a loop.
steady() {
  local i=0 ok=0 bad=0 pat off
  while [ ! -e "$T/stop" ]; do
    pat=$((i % 200 + 1)); off=$((LIMIT + (i % 64) * 65536))
    if qemu-io -f raw "$uri" -c "write -P $pat $off 64k" -c "read -P $pat $off 64k" \
         >"$T/steady.last" 2>&1 && ! grep -q -i -E 'fail|error|mismatch' "$T/steady.last"; then
      ok=$((ok + 1))
    else
      bad=$((bad + 1)); cp "$T/steady.last" "$T/steady.bad"
    fi
    i=$((i + 1))
  done
  echo "$ok $bad" >"$T/steady.result"
}
steady &
spid=$!

rounds=${SHUNT_DISCONNECT_ROUNDS:-15}
if $PY "$TOOLS/disconnect_client.py" "$PORT" --rounds "$rounds" --threads 4 --limit $LIMIT \
     --seconds 90 >"$T/disc.out" 2>&1; then
  tap_ok "disconnecting clients: $(tail -n 1 "$T/disc.out")"
else
  tap_fail "disconnecting clients"; sed 's/^/#   /' "$T/disc.out"
fi
sed "s/^/# /" "$T/disc.out" | head -n 12
total=$(awk '$1 == "total" { print $2 }' "$T/disc.out")
if [ "${total:-0}" -ge $((rounds * 4 * 10 / 2)) ]; then tap_ok "$total connections dropped"
else tap_fail "only ${total:-0} connections ran"; fi

touch "$T/stop"
wait $spid
read -r sok sbad <"$T/steady.result"
if [ "$sok" -gt 0 ] && [ "$sbad" -eq 0 ]; then
  tap_ok "qemu-io beside them: $sok write+read rounds, none failed"
else
  tap_fail "qemu-io beside them: $sok passed, $sbad failed"
  [ -e "$T/steady.bad" ] && sed 's/^/#   /' "$T/steady.bad"
fi

if server_alive; then tap_ok "server still running"; else tap_fail "server died"; fi
tap_check "nbdinfo after the storm" nbdinfo "$uri"
fds1=$(wait_fds "$SHUNT_PID" "$fds0" 10)
if server_alive && [ "$fds1" -le "$fds0" ]; then tap_ok "no leaked descriptors ($fds0 before, $fds1 after)"
else
  tap_fail "descriptors leaked: $fds0 before, $fds1 after"
  ls -l "/proc/$SHUNT_PID/fd" | sed 's/^/#   /' | tail -n 20
fi

stop_shunt_bounded 30
rc=$?
if [ $rc -eq 0 ]; then tap_ok "SIGTERM: exit status 0"
else tap_fail "SIGTERM: exit status $rc"; tail -n 30 "$T/shunt.log" | sed 's/^/#   /'; fi
tap_check "no LeakSanitizer/AddressSanitizer/UBSan report in the server log$(is_asan && echo ' (ASan build)')" \
  sanitizer_clean "$T/shunt.log"
tap_done
