#!/usr/bin/env bash
# tests/interop/durability_crash.sh: acknowledged-durable writes survive a server crash.
# Two connections write verified blocks (FUA, or write then FLUSH) while the server is
# SIGKILLed at random moments, then restarted on the same file; a client-side journal
# (tests/tools/crash_client.py) says which writes the server acknowledged as durable.
# After each restart: every durable write reads back intact, later writes are either
# old or new (never garbage), and blocks the test never wrote hold their initial data.
# A last round stops the server with SIGTERM: then every acknowledged write must be there.
#
# Limits of this test: SIGKILL ends the process but not the kernel, so data already in
# the page cache survives. It therefore checks the server's acknowledgement logic (no
# FUA or FLUSH reply before the data reached the file), not power-loss durability of
# the page cache. A power-loss variant needs dm-flakey or dm-log-writes, which needs
# device-mapper in the kernel; not built yet.
. "$(dirname "$0")/../lib.sh"
. "$SHUNT_TOP/tests/tools/trust-lib.sh"
need_deps

BLOCKS=4096                 # 16 MiB export
WRITE_BLOCKS=3072           # writes stay in the first 12 MiB; the rest must stay initial
ITER=${SHUNT_CRASH_ITER:-8}
BUDGET=${SHUNT_CRASH_SECONDS:-60}
img=$T/disk.img
journal=$T/journal
truncate -s $((BLOCKS * 4096)) "$img"
$PY "$TOOLS/crash_client.py" init "$img" --blocks $BLOCKS
: >"$journal"

verify() { # what [--all-acked]
  local what=$1; shift
  if $PY "$TOOLS/crash_client.py" verify "$(nbd_uri)" --journal "$journal" \
       --blocks $BLOCKS "$@" >"$T/verify.out" 2>&1; then
    tap_ok "$what: $(tail -n 1 "$T/verify.out")"
  else
    tap_fail "$what"; sed 's/^/#   /' "$T/verify.out" | tail -n 15
  fi
}

# start_writer: start the writer in the background (wpid) and wait until it is connected.
start_writer() {
  rm -f "$T/ready"
  $PY "$TOOLS/crash_client.py" write "$(nbd_uri)" --journal "$journal" --resume \
    --write-blocks $WRITE_BLOCKS --conns 2 --seed "$RANDOM" --max-seconds 20 \
    --ready "$T/ready" >"$T/writer.out" 2>&1 &
  wpid=$!
  local k
  for ((k = 0; k < 200; k++)); do
    [ -e "$T/ready" ] && return 0
    kill -0 $wpid 2>/dev/null || break
    sleep 0.05
  done
  tap_fail "the writer did not connect"; sed 's/^/#   /' "$T/writer.out"
}

start_shunt "$(export_arg disk "$img")" || { tap_fail "server starts"; tap_done; exit 1; }
verify "fresh image reads back as its initial content"

t0=$SECONDS
done_iter=0
for ((i = 1; i <= ITER; i++)); do
  [ $((SECONDS - t0)) -ge "$BUDGET" ] && break
  start_writer
  # Kill somewhere between 0.1 and 1.5 s into the write stream.
  sleep "$(awk -v r="$RANDOM" 'BEGIN { printf "%.2f", 0.1 + (r % 140) / 100 }')"
  kill -KILL "$SHUNT_PID"
  wait "$SHUNT_PID" 2>/dev/null
  # The writer sees its connections drop and exits; bound the wait anyway.
  for ((k = 0; k < 100; k++)); do kill -0 $wpid 2>/dev/null || break; sleep 0.1; done
  kill -KILL $wpid 2>/dev/null
  wait $wpid 2>/dev/null
  grep -q '^writer: [1-9][0-9]* writes acknowledged' "$T/writer.out" ||
    { tap_fail "iteration $i: the writer got no write acknowledged"; sed 's/^/#   /' "$T/writer.out"; }
  start_shunt "$(export_arg disk "$img")" || { tap_fail "restart $i"; break; }
  verify "after SIGKILL $i ($(tail -n 1 "$T/writer.out" | tr -d '\n'))"
  done_iter=$i
done
if [ "$done_iter" -ge 3 ]; then tap_ok "$done_iter crash iterations in $((SECONDS - t0)) s"
else tap_fail "only $done_iter crash iterations ran within ${BUDGET} s"; fi

# Clean shutdown: SIGTERM finishes in-flight requests and flushes, so every
# acknowledged write counts, not just the durable ones.
start_writer
sleep 0.5
stop_shunt_bounded 20
rc=$?
if [ $rc -eq 0 ]; then tap_ok "SIGTERM during writes: exit status 0"
else tap_fail "SIGTERM during writes: exit status $rc"; tail -n 20 "$T/shunt.log" | sed 's/^/#   /'; fi
for ((k = 0; k < 100; k++)); do kill -0 $wpid 2>/dev/null || break; sleep 0.1; done
kill -KILL $wpid 2>/dev/null; wait $wpid 2>/dev/null
start_shunt "$(export_arg disk "$img")" || { tap_fail "restart after SIGTERM"; tap_done; exit 1; }
verify "after SIGTERM every acknowledged write is there" --all-acked
stop_shunt_bounded 20
tap_check "server log has no sanitizer report" sanitizer_clean "$T/shunt.log"
tap_done
