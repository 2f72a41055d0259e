#!/usr/bin/env bash
# tests/interop/qos.sh: the scheduler in front of each device (docs/qos.md),
# through a real client (python3-libnbd):
# - limit-iops=200: 401 pipelined 4 KiB reads cannot finish in less than
#   2 s (the first is free, then one per 5 ms: a lower bound, which a busy
#   machine only makes longer); the flow's time held by the limit shows in
#   the stats, and the export's scheduler object (depth, ceiling, not even:
#   a flow with a limit never stands evenly);
# - limit-bw=4M: 20 MiB of 1 MiB reads take at least 4 s;
# - flows: one per connection by default (two connections, two flows),
#   one per client address with --qos-key=addr (two connections, one flow
#   keyed "addr:127.0.0.1"), one per TLS identity with --qos-key=tls (PSK
#   identity "alice"); exports of one file share the device's scheduler but
#   not their flows; weight= shows in each flow;
# - --qos=off: no flows; bad option values are refused at start.
# Every read is verified against the image.
. "$(dirname "$0")/../lib.sh"
. "$SHUNT_TOP/tests/tools/trust-lib.sh"
. "$(dirname "$0")/tls_lib.sh"
need_deps
here=$(cd "$(dirname "$0")" && pwd)
PY=/usr/bin/python3

img=$T/disk.img
head -c 32M /dev/urandom >"$img"

dump_stats() {
  rm -f "$T/st.json"; kill -USR1 "$SHUNT_PID"
  for _ in $(seq 50); do [ -s "$T/st.json" ] && return 0; sleep 0.1; done
  return 1
}
# flows EXPORT: "key weight requests throttled_s" per flow of EXPORT, sorted.
flows() {
  "$PY" -c 'import json,sys
e=[x for x in json.load(open(sys.argv[1]))["exports"] if x["name"]==sys.argv[2]][0]
for f in sorted(e["flows"], key=lambda f: str(f["key"])):
    print(f["key"], f["weight"], f["requests"], f["throttled_s"])' "$T/st.json" "$1"
}
# reads URI COUNT SIZE QD [--conns N]: verified reads (qos_client.py); prints seconds.
reads() { "$PY" "$here/qos_client.py" "$img" "$@"; }
# held NAME URI COUNT SIZE QD [--conns N]: the same in the background, its
# connections kept open until release NAME; returns once its reads are done.
held() {
  local name=$1; shift
  rm -f "$T/$name.go" "$T/$name.out"
  "$PY" "$here/qos_client.py" "$img" "$@" --hold "$T/$name.go" >"$T/$name.out" 2>&1 &
  eval "${name}_pid=$!"
  for _ in $(seq 600); do [ -s "$T/$name.out" ] && return 0; sleep 0.1; done
  return 1
}
release() {
  local pid
  eval "pid=\$${1}_pid"
  touch "$T/$1.go"
  wait "$pid"
}

# limit-iops
if start_shunt --stats "$T/st.json" "d=$img,limit-iops=200"; then
  if held cl "nbd://127.0.0.1:$PORT/d" 401 4096 16; then
    s=$(cat "$T/cl.out")
    "$PY" -c 'import sys; sys.exit(float(sys.argv[1]) < 1.95)' "$s" \
      && tap_ok "limit-iops=200: 401 verified 4 KiB reads took $s s (at least 2 s)" \
      || tap_fail "limit-iops=200: 401 reads took only $s s"
  else
    tap_fail "limit-iops=200: reads did not finish: $(cat "$T/cl.out")"
  fi
  if dump_stats; then
    read -r key w n thr <<<"$(flows d)"
    [ "$n" -ge 401 ] && "$PY" -c 'import sys; sys.exit(float(sys.argv[1]) < 1.0)' "$thr" \
      && tap_ok "limit-iops: the flow's stats count its requests ($n) and its time held by the limit ($thr s)" \
      || tap_fail "limit-iops: flow stats: key $key weight $w requests $n throttled $thr"
    sch=$("$PY" -c 'import json,sys
e=[x for x in json.load(open(sys.argv[1]))["exports"] if x["name"]=="d"][0]["scheduler"]
print(e["even"], e["depth"] >= 2, e["ceiling"] >= 2, e["inflight"] + e["queued"] >= 0)' "$T/st.json" 2>&1)
    [ "$sch" = "False True True True" ] \
      && tap_ok "limit-iops: the export's scheduler shows its depth and ceiling, and a flow with a limit never stands evenly" \
      || tap_fail "limit-iops: scheduler stats: $sch"
  else
    tap_fail "limit-iops: stats"
  fi
  release cl || tap_fail "limit-iops=200: reads failed or returned wrong data"
  stop_shunt || tap_fail "limit-iops: server exit"
else
  tap_fail "limit-iops: server starts"
fi

# limit-bw
if start_shunt "d=$img,limit-bw=4M"; then
  if s=$(reads "nbd://127.0.0.1:$PORT/d" 20 $((1 << 20)) 4); then
    "$PY" -c 'import sys; sys.exit(float(sys.argv[1]) < 4.5 * 0.98 - 1)' "$s" \
      && tap_ok "limit-bw=4M: 20 verified 1 MiB reads took $s s (at least 3.4 s: 21 MB at 4 MiB/s, the first free)" \
      || tap_fail "limit-bw=4M: 20 MiB read in only $s s"
  else
    tap_fail "limit-bw: reads failed or returned wrong data"
  fi
  stop_shunt || tap_fail "limit-bw: server exit"
else
  tap_fail "limit-bw: server starts"
fi

# Flows: per connection, per client address (two exports of one file: one
# scheduler, separate flows); weight= shows in each.
for mode in conn addr; do
  if start_shunt --stats "$T/st.json" --qos-key=$mode "a=$img,weight=300" "b=$img"; then
    if held ca "nbd://127.0.0.1:$PORT/a" 64 4096 8 --conns 2 && held cb "nbd://127.0.0.1:$PORT/b" 16 4096 4 \
       && dump_stats; then
      # key/weight per flow, and the requests of each export's flows together
      got="$(flows a | awk '{print $1 "/" $2}' | tr '\n' ' ')$(flows a | awk '{n += $3} END {print n}') | $(flows b | awk '{print $1 "/" $2}' | tr '\n' ' ')$(flows b | awk '{n += $3} END {print n}')"
      if [ $mode = conn ]; then
        want="None/300 None/300 64 | None/100 16"
      else
        want="addr:127.0.0.1/300 64 | addr:127.0.0.1/100 16"
      fi
      [ "$got" = "$want" ] && tap_ok "--qos-key=$mode: flows (key/weight/requests) $got" \
        || tap_fail "--qos-key=$mode: flows $got, want $want"
    else
      tap_fail "--qos-key=$mode: clients or stats"
    fi
    release ca || tap_fail "--qos-key=$mode: reads through a"
    release cb || tap_fail "--qos-key=$mode: reads through b"
    if dump_stats && [ -z "$(flows a)$(flows b)" ]; then
      tap_ok "--qos-key=$mode: the flows are gone with their connections"
    else
      tap_fail "--qos-key=$mode: flows left after the clients: $(flows a) $(flows b)"
    fi
    stop_shunt || tap_fail "--qos-key=$mode: server exit"
  else
    tap_fail "--qos-key=$mode: server starts"
  fi
done

# One flow per TLS identity: two connections of PSK identity alice.
if command -v psktool >/dev/null || command -v certtool >/dev/null; then
  make_psk "$T/keys.psk" alice
  if start_shunt --stats "$T/st.json" --tls=require --tls-psk "$T/keys.psk" --qos-key=tls "a=$img"; then
    if held ct "nbds://alice@127.0.0.1:$PORT/a?tls-psk-file=$T/keys.psk" 32 4096 4 --conns 2 && dump_stats; then
      got=$(flows a | awk '{print $1 "/" $3}' | tr '\n' ' ')
      [ "$got" = "tls:alice/32 " ] && tap_ok "--qos-key=tls: one flow for the identity's two connections ($got)" \
        || tap_fail "--qos-key=tls: flows $got"
    else
      tap_fail "--qos-key=tls: client or stats"
    fi
    release ct || tap_fail "--qos-key=tls: reads"
    stop_shunt || tap_fail "--qos-key=tls: server exit"
  else
    tap_fail "--qos-key=tls: server starts"
  fi
fi

# --qos=off: requests go straight to the data path, no flows.
if start_shunt --stats "$T/st.json" --qos=off "a=$img,weight=5"; then
  if held co "nbd://127.0.0.1:$PORT/a" 16 4096 4 && dump_stats; then
    [ -z "$(flows a)" ] && tap_ok "--qos=off: no flows" || tap_fail "--qos=off: flows $(flows a)"
  else
    tap_fail "--qos=off: client or stats"
  fi
  release co || tap_fail "--qos=off: reads"
  stop_shunt || tap_fail "--qos=off: server exit"
else
  tap_fail "--qos=off: server starts"
fi

# Bad values are refused at start with a message naming them.
for bad in "--qos=maybe" "--qos-key=user" "--device-iops=-1" "x=$img,weight=0" "x=$img,limit-bw=fast"; do
  if out=$("$SHUNT" serve --listen 127.0.0.1:1 $bad 2>&1); then
    tap_fail "$bad: accepted"
  else
    case "$out" in
      *bad\ value*) tap_ok "$bad: refused ($(echo "$out" | head -1))" ;;
      *) tap_fail "$bad: refused without naming the value: $out" ;;
    esac
  fi
done
tap_check "no sanitizer report in the server log" sanitizer_clean "$T/shunt.log"
tap_done
