#!/usr/bin/env bash
# vhost_qos.sh: `shunt vhost` devices as flows of their storage device's scheduler.
# Two devices on files of one file system, driven by the in-tree frontend at once:
# - the one with limit-iops=200 gets no more: its N scheduled requests (401 verified
#   requests but the few GET_IDs, which do not reach the disk) cannot finish in less
#   than (N - 1) / 200 s (the first is free, then one per 5 ms: a lower bound, which a
#   busy machine only makes longer), and its time held by the limit shows in --stats;
# - the other, unlimited, verifies all of its requests meanwhile;
# - --stats shows each device's flow with its weight;
# - the options are refused where they mean nothing (an NBD source) or are bad.
. "$(dirname "$0")/../lib.sh"
need_deps
. "$(dirname "$0")/vhost_lib.sh"

a=$T/a.img b=$T/b.img stats=$T/stats.json
truncate -s 64M "$a" "$b"
if start_vhost --threads 1 --stats "$stats" "$T/a.sock=$a,limit-iops=200" "$T/b.sock=$b,weight=300"; then
  fe other --verify --queues 1 --qd 16 --requests 3000 --assume-zero --seed 41 "$T/b.sock" >/dev/null &
  other=$!
  t0=$(date +%s.%N)
  fe limited --verify --qd 16 --requests 401 --assume-zero --seed 40 "$T/a.sock" >/dev/null
  rc=$?
  t1=$(date +%s.%N)
  s=$(python3 -c 'import sys; print("%.2f" % (float(sys.argv[2]) - float(sys.argv[1])))' "$t0" "$t1")
  tap_check "limit-iops=200: 401 requests verified" bash -c "[ $rc -eq 0 ] && grep -q '\"result\":\"ok\"' '$T/limited.json'"
  wait "$other"
  tap_check "the unlimited device on the same file system: 3000 requests verified meanwhile" verified other
  tap_check "SIGTERM exits 0" stop_shunt_within 20
  tap_check "--stats: each device is one flow, with its weight, requests and time held by its limit" python3 -c "
import json, sys
devs = {d['socket'].rsplit('/', 1)[1]: d for d in json.load(open(sys.argv[1]))['devices']}
fa, fb = devs['a.sock']['flows'], devs['b.sock']['flows']
assert len(fa) == 1 and len(fb) == 1, (fa, fb)
assert fa[0]['weight'] == 100 and fb[0]['weight'] == 300, (fa, fb)
assert fa[0]['requests'] >= 350 and fb[0]['requests'] >= 2700, (fa, fb)
assert fa[0]['throttled_s'] >= 0.3 and fb[0]['throttled_s'] == 0, (fa, fb)
" "$stats"
  n=$(python3 -c "
import json, sys
print([d for d in json.load(open(sys.argv[1]))['devices'] if d['socket'].endswith('a.sock')][0]['flows'][0]['requests'])
" "$stats")
  tap_check "limit-iops=200: its $n scheduled requests took $s s (at least $(( (n - 1) / 2 ))0 ms)" \
    python3 -c 'import sys; sys.exit(float(sys.argv[1]) < (int(sys.argv[2]) - 1) / 200.0)' "$s" "$n"
else
  tap_fail "shunt vhost starts with two scheduled devices"
fi

# --qos=off: no flows.
rm -f "$stats"
if start_vhost --qos=off --stats "$stats" "$T/a.sock=$a,limit-iops=200"; then
  tap_check "--qos=off: 401 verified requests" fe off --verify --requests 401 --seed 42 "$T/a.sock"
  tap_check "--qos=off: SIGTERM exits 0" stop_shunt_within 20
  tap_check "--qos=off: the device has no flow in --stats" python3 -c "
import json, sys; d = json.load(open(sys.argv[1]))['devices'][0]; assert d['flows'] == [], d" "$stats"
else
  tap_fail "shunt vhost --qos=off starts"
fi

# The config file takes the same keys.
cat >"$T/v.conf" <<CONF
[server]
qos = on
device-iops = 20000
device-bw = 200M
threads = 1
stats = $stats

[vhost $T/a.sock]
source = $a
weight = 7
reserve-iops = 10
limit-bw = 100M
CONF
rm -f "$stats"
if start_vhost --config "$T/v.conf" && wait_unix "$T/a.sock" 10; then
  tap_check "config file: 200 verified requests" fe conf --verify --requests 200 --seed 43 "$T/a.sock"
  tap_check "config file: SIGTERM exits 0" stop_shunt_within 20
  tap_check "config file: the flow has weight 7" python3 -c "
import json, sys; f = json.load(open(sys.argv[1]))['devices'][0]['flows']; assert f[0]['weight'] == 7, f" "$stats"
else
  tap_fail "shunt vhost --config with scheduler keys starts"
fi

# refused
bad() {
  local what=$1; shift
  timeout 10 "$SHUNT" vhost "$@" >"$T/err" 2>&1
  local rc=$?
  if [ "$rc" -eq 2 ] && grep -qE -- "$what" "$T/err"; then tap_ok "refused: $* ($what)"
  else tap_fail "refused: $* (status $rc)"; sed 's/^/#   /' "$T/err"; fi
}
bad "bad value '0' for option 'weight'" "$T/x.sock=$a,weight=0"
bad "bad value 'fast' for option 'limit-bw'" "$T/x.sock=$a,limit-bw=fast"
bad "bad value 'maybe' for 'qos'" --qos=maybe "$T/x.sock=$a"
bad "bad value '-1' for 'device-iops'" --device-iops=-1 "$T/x.sock=$a"
bad "unknown option '--qos-key'" --qos-key=addr "$T/x.sock=$a"
bad "is remote" "$T/x.sock=nbd://127.0.0.1:1/x,limit-iops=100"
tap_finish
