#!/usr/bin/env bash
# make_run.sh: the README's first command works: on a fresh clone of this
# repository's HEAD, `make run` builds and serves nbd://127.0.0.1:10809/default
# (a 1 GiB sparse file) within 120 s, and nbdinfo answers; it asked
# scripts/deps.sh for the build set only and built no test program. Port 10809 is the one
# `make run` is documented to use: if something already listens there, the test
# fails (it cannot check anything else).
. "$(dirname "$0")/../lib.sh"
need_deps

port=10809
if ss -Htln "sport = :$port" | grep -q .; then
  tap_fail "port $port is free for make run (something already listens there:" \
    "$(ss -Htlnp "sport = :$port" | head -n 1 | tr -s ' '); stop it and rerun)"
  tap_done; exit 1
fi

clone=$T/clone
if ! git clone -q "$SHUNT_TOP" "$clone" 2>"$T/clone.err"; then
  tap_fail "git clone of $SHUNT_TOP"; sed 's/^/#   /' "$T/clone.err"; tap_done; exit 1
fi
tap_ok "fresh clone of $(git -C "$clone" rev-parse --short HEAD)"

# setsid: make and everything it starts share one process group we can stop.
(cd "$clone" && SHUNT_DEPS_LOG="$T/deps.log" exec setsid make run) >"$T/make-run.log" 2>&1 &
mk=$!
_cleanup_pids+=("$mk")
stop_make_run() {
  kill -TERM -- "-$mk" 2>/dev/null
  for _ in $(seq 50); do kill -0 "$mk" 2>/dev/null || break; sleep 0.1; done
  kill -KILL -- "-$mk" 2>/dev/null
  wait "$mk" 2>/dev/null
}

# Wait up to 120 s for the port; stop waiting early if make run has exited.
t0=$SECONDS up=
while [ $((SECONDS - t0)) -lt 120 ]; do
  if wait_port "$port" 1; then up=1; break; fi
  kill -0 "$mk" 2>/dev/null || { echo "# make run exited before serving"; break; }
done
if [ -n "$up" ]; then
  tap_ok "make run serves on 127.0.0.1:$port after $((SECONDS - t0)) s"
else
  tap_fail "make run serves on 127.0.0.1:$port within 120 s"
  tail -n 30 "$T/make-run.log" | sed 's/^/#   /'
  stop_make_run; tap_done; exit 1
fi
tap_check "nbdinfo nbd://127.0.0.1:$port/default answers" \
  timeout 30 nbdinfo "nbd://127.0.0.1:$port/default"
tap_check "the default export is 1 GiB" \
  bash -c "[ \"\$(timeout 30 nbdinfo --size nbd://127.0.0.1:$port/default)\" = 1073741824 ]"
tap_check "make run printed the URI nbd://127.0.0.1:$port/default" \
  grep -q "nbd://127.0.0.1:$port/default" "$T/make-run.log"
tap_check "make run asked scripts/deps.sh for the build set only ($(tr '\n' ' ' <"$T/deps.log" 2>/dev/null))" \
  bash -c "[ \"\$(cat '$T/deps.log')\" = build ]"
tap_check "make run built the shunt command and libshunt, not the tests" \
  bash -c "[ -x '$clone/build/shunt' ] && [ -e '$clone/build/src/client/lib/libshunt.a' ] && [ ! -e '$clone/build/tests/unit/test_macros' ]"
tap_check "the embedded export var/default.img is a sparse 1 GiB file" \
  bash -c "[ \$(stat -c %s '$clone/var/default.img') = 1073741824 ] &&
           [ \$(stat -c %b '$clone/var/default.img') -lt 2048 ]"
stop_make_run
# The group's processes end asynchronously (make may be gone before the
# server's exit has closed its socket): give the port up to 10 s to go.
port_free() {
  local i
  for ((i = 0; i < 100; i++)); do
    ss -Htln "sport = :$port" | grep -q . || return 0
    sleep 0.1
  done
  ss -Htlnp "sport = :$port"
  return 1
}
tap_check "port $port is released after make run is stopped" port_free
tap_done
