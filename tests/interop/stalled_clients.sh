#!/usr/bin/env bash
# tests/interop/stalled_clients.sh: clients that hold server resources without making
# progress must not make other clients wait (tests/tools/stalled_client.py). On the
# export's data path (export_arg: rerun for splice, direct and mmap), with 2 workers:
# - 5 connections pipelining 100 READs of 1 MiB that never read a reply, and 5 that
#   send a 32 MiB WRITE header and 100 bytes of its payload, then nothing (at least two
#   of each per worker): 4 other connections' 4 KiB and 1 MiB reads and a 4 KiB write
#   still complete and verify within 20 s each (per-connection shares of the pipes
#   and the arena; WRITE buffers not taken from the arena beyond a connection's share);
# - SIGTERM with those clients still connected: the server exits 0 within the 10 s
#   grace period plus a bound, also with zero-copy sends the clients never take;
# - --send-timeout 2: every one of those connections is cut (logged), the server's fd
#   count goes back down, other clients are served;
# - --memory-budget 64M: 8 connections pipelining 64 x 1 MiB READs without reading
#   (512 MiB claimed) grow the server's RSS by less than 192 MiB, and other clients'
#   1 MiB reads still complete;
# - --memory-budget 64M without a send timeout: 4 connections announcing 20 MiB
#   WRITEs and sending 100 bytes (80 MiB claimed) hold one 1 MiB step each, so
#   another client's 8 MiB write and read-back, which need the budget, are served.
. "$(dirname "$0")/../lib.sh"
. "$SHUNT_TOP/tests/tools/trust-lib.sh"
need_deps

img=$T/disk.img
head -c 64M /dev/urandom >"$img"
help=$("$SHUNT" serve --help 2>&1)
CLIENT=$TOOLS/stalled_client.py
export PYTHONPATH=$TOOLS

# hold NREAD NWRITE READS [WLEN]: start the stalled clients (WRITEs announcing WLEN
# bytes, default 32 MiB); wait until they are all sent.
hold() {
  rm -f "$T/hold.in" "$T/hold.out"
  mkfifo "$T/hold.in"
  $PY "$CLIENT" hold "$PORT" "$img" "$1" "$2" "$3" $((1 << 20)) "${4:-$((32 << 20))}" <"$T/hold.in" >"$T/hold.out" 2>&1 &
  HOLD_PID=$!
  _cleanup_pids+=("$HOLD_PID")
  exec 7>"$T/hold.in"
  local i
  for ((i = 0; i < 200; i++)); do
    grep -q '^ready' "$T/hold.out" && break
    kill -0 "$HOLD_PID" 2>/dev/null || break
    sleep 0.1
  done
  grep -q '^ready' "$T/hold.out" || { sed 's/^/# /' "$T/hold.out"; return 1; }
  sleep 2   # the server takes their requests and fills its buffers
}

# unhold: the stalled clients report how many of them the server closed, then hang up.
unhold() {
  exec 7>&-
  local i
  for ((i = 0; i < 100; i++)); do kill -0 "$HOLD_PID" 2>/dev/null || break; sleep 0.1; done
  kill -KILL "$HOLD_PID" 2>/dev/null
  wait "$HOLD_PID" 2>/dev/null
  sed -n 's/^closed /# stalled clients: closed /p' "$T/hold.out"
}

log_from() { tail -n +$(($1 + 1)) "$T/shunt.log"; }

# 1. Shares, then SIGTERM with the stalled clients still there.
if start_shunt_retry --threads 2 "$(export_arg disk "$img")"; then
  if hold 5 5 100; then
    tap_relay $PY "$CLIENT" probe "$PORT" "$img" 4 20
    t0=$(date +%s)
    stop_shunt_bounded 30
    rc=$? took=$(($(date +%s) - t0))
    if [ $rc -eq 0 ] && [ $took -le 22 ]; then
      tap_ok "SIGTERM with clients not reading: exit 0 after $took s (grace 10 s)"
    else
      tap_fail "SIGTERM with clients not reading: status $rc after $took s (124: still running after 30 s)"
    fi
    unhold
  else
    tap_fail "stalled clients connect"
    stop_shunt_bounded 30
  fi
else
  tap_fail "server starts"
fi

# 2. The send timeout cuts them.
if grep -q -- '--send-timeout' <<<"$help"; then
  n0=$(wc -l <"$T/shunt.log")
  if start_shunt_retry --threads 2 --send-timeout 2 "$(export_arg disk "$img")"; then
    fds0=$(fd_count "$SHUNT_PID")
    if hold 5 5 100; then
      for ((i = 0; i < 200; i++)); do
        cut=$(log_from "$n0" | grep -c 'no progress for 2 s')
        [ "$cut" -ge 10 ] && break
        sleep 0.1
      done
      [ "$cut" -ge 10 ] && tap_ok "send timeout: all 10 stalled connections cut ($cut logged)" \
        || tap_fail "send timeout: $cut of 10 stalled connections cut within 20 s"
      fds=$(wait_fds "$SHUNT_PID" "$fds0" 15)
      [ "$fds" -le "$fds0" ] && tap_ok "send timeout: fds back to $fds (were $fds0 before the clients)" \
        || tap_fail "send timeout: $fds fds open, $fds0 before the clients"
      tap_relay $PY "$CLIENT" probe "$PORT" "$img" 2 20
      unhold
    else
      tap_fail "send timeout: stalled clients connect"
    fi
    stop_shunt_bounded 30
    rc=$?
    [ $rc -eq 0 ] && tap_ok "send timeout: SIGTERM exit status 0" || tap_fail "send timeout: SIGTERM exit status $rc"
  else
    tap_fail "send timeout: server starts"
  fi
else
  tap_fail "shunt serve --help lists no --send-timeout option"
fi

# 3. The memory budget bounds what many claiming connections make the server hold.
if grep -q -- '--memory-budget' <<<"$help"; then
  if start_shunt_retry --threads 2 --memory-budget 64M "$(export_arg disk "$img")"; then
    $PY "$CLIENT" probe "$PORT" "$img" 4 20 >/dev/null 2>&1   # buffers, arenas, pipes in use once
    rss0=$(rss_kb "$SHUNT_PID")
    if hold 8 0 64; then
      sleep 1
      rss=$(rss_kb "$SHUNT_PID")
      grow=$(((rss - rss0) / 1024))
      [ "$grow" -lt 192 ] && tap_ok "memory budget 64M: RSS grew by $grow MiB with 512 MiB of READs unread" \
        || tap_fail "memory budget 64M: RSS grew by $grow MiB with 512 MiB of READs unread"
      tap_relay $PY "$CLIENT" probe "$PORT" "$img" 2 20
      unhold
    else
      tap_fail "memory budget: stalled clients connect"
    fi
    stop_shunt_bounded 30
    rc=$?
    [ $rc -eq 0 ] && tap_ok "memory budget: SIGTERM exit status 0" || tap_fail "memory budget: SIGTERM exit status $rc"
  else
    tap_fail "memory budget: server starts"
  fi
else
  tap_fail "shunt serve --help lists no --memory-budget option"
fi

# 4. WRITE payloads are charged as they arrive: 4 connections announcing 20 MiB
# WRITEs (80 MiB claimed, beyond the 64M budget) and sending 100 bytes hold one
# step each, so another client's 8 MiB write and read, which need the budget,
# are served without waiting for a send timeout (switched off here).
if grep -q -- '--memory-budget' <<<"$help"; then
  if start_shunt_retry --threads 2 --memory-budget 64M --send-timeout 0 "$(export_arg disk "$img")"; then
    if hold 0 4 0 $((20 << 20)); then
      tap_relay $PY "$CLIENT" probe-big "$PORT" "$img" 20
      unhold
    else
      tap_fail "payload charge: stalled clients connect"
    fi
    stop_shunt_bounded 30
    rc=$?
    [ $rc -eq 0 ] && tap_ok "payload charge: SIGTERM exit status 0" || tap_fail "payload charge: SIGTERM exit status $rc"
  else
    tap_fail "payload charge: server starts"
  fi
fi

tap_check "server logs have no sanitizer report" sanitizer_clean "$T/shunt.log"
tap_done
