#!/usr/bin/env bash
# tests/interop/faults_limits.sh: the server's limits against misbehaving raw clients
# (tests/tools/limits_client.py):
# - handshake timeout: a silent or trickling client is closed; an idle client past
#   its handshake is not (--handshake-timeout SECONDS);
# - maximum connections: the N+1th is turned away, the first N keep working (--max-connections N);
# - in-flight bytes per connection: 4 GiB of READs (256 x 16 MiB, then 65536 x 64 KiB)
#   pipelined without reading replies leave the server's RSS bounded (backpressure,
#   not buffering); with --max-inflight 40M the RSS growth stays under 128 MiB, and
#   pipelined requests whose replies are read all complete;
# - option payload cap: 1 MiB options get NBD_REP_ERR_TOO_BIG or a close, never a crash.
. "$(dirname "$0")/../lib.sh"
. "$SHUNT_TOP/tests/tools/trust-lib.sh"
need_deps

HT=${SHUNT_TEST_HANDSHAKE_TIMEOUT:-2}
MAXCONN=4
img=$T/disk.img
truncate -s 256M "$img"
help=$("$SHUNT" serve --help 2>&1)

# with_server WHAT ARGS...: start a server with ARGS, run the probe "$probe", check that
# the server survived, stops with status 0 and logged no sanitizer report.
with_server() {
  local what=$1; shift
  if ! start_shunt_retry "$@" "$(export_arg disk "$img")"; then tap_fail "$what: server starts with $*"; return; fi
  eval "$probe"
  if server_alive; then tap_ok "$what: server still running"; else tap_fail "$what: server died"; fi
  stop_shunt_bounded 20
  local rc=$?
  if [ $rc -eq 0 ]; then tap_ok "$what: SIGTERM exit status 0"
  else tap_fail "$what: SIGTERM exit status $rc"; tail -n 20 "$T/shunt.log" | sed 's/^/#   /'; fi
}

if grep -q -- '--handshake-timeout' <<<"$help"; then
  probe='tap_relay $PY "$TOOLS/limits_client.py" handshake $PORT $HT'
  with_server "handshake timeout" --handshake-timeout "$HT"
else
  tap_fail "shunt serve --help lists no --handshake-timeout option"
fi

if grep -q -- '--max-connections' <<<"$help"; then
  probe='tap_relay $PY "$TOOLS/limits_client.py" maxconn $PORT $MAXCONN'
  with_server "max connections" --max-connections $MAXCONN
else
  tap_fail "shunt serve --help lists no --max-connections option"
fi

if grep -q -- '--max-inflight' <<<"$help"; then
  # A cap just above the 32 MiB maximum payload: memory follows it, and pipelined
  # requests whose replies are read all complete.
  probe='tap_relay $PY "$TOOLS/limits_client.py" pipeline $PORT $SHUNT_PID $((16 << 20)) 256 128
         tap_relay $PY "$TOOLS/limits_client.py" pipeline_read $PORT $((16 << 20)) 32
         tap_relay $PY "$TOOLS/limits_client.py" pipeline_read $PORT $((64 << 10)) 4096'
  with_server "in-flight cap of 40 MiB" --max-inflight 40M
else
  tap_fail "shunt serve --help lists no --max-inflight option"
fi

probe='tap_relay $PY "$TOOLS/limits_client.py" pipeline $PORT $SHUNT_PID $((16 << 20)) 256
       tap_relay $PY "$TOOLS/limits_client.py" pipeline $PORT $SHUNT_PID $((64 << 10)) 65536
       tap_relay $PY "$TOOLS/limits_client.py" bigoption $PORT
       tap_check "nbdinfo still answers" nbdinfo "$(nbd_uri)"'
with_server "in-flight and option caps (defaults)"

tap_check "server logs have no sanitizer report" sanitizer_clean "$T/shunt.log"
tap_done
