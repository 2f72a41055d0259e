# tests/tools/durability-lib.sh: the crash-and-verify loop shared by
# tests/interop/durability_crash.sh (SIGKILL of the server) and
# tests/interop/durability_powerloss.sh (a power cut emulated by tests/tools/lossyfs).
# Source after trust-lib.sh, define the hooks below, then call run_durability WHAT.
#   storage_up     make $EXPORT_PATH available (may be a no-op)
#   crash          end the server (and for a power cut, the storage) abruptly
#   clean_cut      after a clean SIGTERM stop: cut power too (may be a no-op)
# Needs: $IMG (the backing file, initialised here), $EXPORT_PATH (what the server serves).

BLOCKS=4096                 # 16 MiB export
WRITE_BLOCKS=3072           # writes stay in the first 12 MiB; the rest must stay initial
ITER=${SHUNT_CRASH_ITER:-8}
BUDGET=${SHUNT_CRASH_SECONDS:-60}
journal=$T/journal

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

# end_writer: the writer sees its connections drop and exits; bound the wait anyway.
end_writer() {
  local k
  for ((k = 0; k < 100; k++)); do kill -0 $wpid 2>/dev/null || break; sleep 0.1; done
  kill -KILL $wpid 2>/dev/null
  wait $wpid 2>/dev/null
}

# run_durability WHAT: the whole test; WHAT names the crash in the TAP lines.
run_durability() {
  local what=$1 i t0 done_iter=0 rc
  truncate -s $((BLOCKS * 4096)) "$IMG"
  $PY "$TOOLS/crash_client.py" init "$IMG" --blocks $BLOCKS
  : >"$journal"
  storage_up || { tap_fail "storage comes up"; return; }
  start_shunt_retry "$(export_arg disk "$EXPORT_PATH")" || { tap_fail "server starts"; return; }
  verify "fresh image reads back as its initial content"

  t0=$SECONDS
  for ((i = 1; i <= ITER; i++)); do
    [ $((SECONDS - t0)) -ge "$BUDGET" ] && break
    start_writer
    # Crash somewhere between 0.1 and 1.5 s into the write stream.
    sleep "$(awk -v r="$RANDOM" 'BEGIN { printf "%.2f", 0.1 + (r % 140) / 100 }')"
    crash
    end_writer
    grep -q '^writer: [1-9][0-9]* writes acknowledged' "$T/writer.out" ||
      { tap_fail "iteration $i: the writer got no write acknowledged"; sed 's/^/#   /' "$T/writer.out"; }
    storage_up || { tap_fail "storage comes back $i"; break; }
    start_shunt_retry "$(export_arg disk "$EXPORT_PATH")" || { tap_fail "restart $i"; break; }
    verify "after $what $i ($(tail -n 1 "$T/writer.out" | tr -d '\n'))"
    done_iter=$i
  done
  if [ "$done_iter" -ge 3 ]; then tap_ok "$done_iter $what iterations in $((SECONDS - t0)) s"
  else tap_fail "only $done_iter $what iterations ran within ${BUDGET} s"; fi

  # Clean shutdown: SIGTERM finishes in-flight requests and flushes, so every
  # acknowledged write counts, not just the durable ones.
  start_writer
  sleep 0.5
  stop_shunt_bounded 20
  rc=$?
  if [ $rc -eq 0 ]; then tap_ok "SIGTERM during writes: exit status 0"
  else tap_fail "SIGTERM during writes: exit status $rc"; tail -n 20 "$T/shunt.log" | sed 's/^/#   /'; fi
  end_writer
  clean_cut
  storage_up || { tap_fail "storage comes back after SIGTERM"; return; }
  start_shunt_retry "$(export_arg disk "$EXPORT_PATH")" || { tap_fail "restart after SIGTERM"; return; }
  verify "after SIGTERM${2:+ and $2} every acknowledged write is there" --all-acked
  stop_shunt_bounded 20
  tap_check "server log has no sanitizer report" sanitizer_clean "$T/shunt.log"
}
