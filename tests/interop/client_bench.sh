#!/usr/bin/env bash
# client_bench.sh: `shunt bench` against nbdkit: a verified random write/read run
# finds no errors; verification does catch data it did not write; the error
# filter's failures are reported and give a non-zero exit.
. "$(dirname "$0")/client_lib.sh"
command -v nbdkit >/dev/null || { tap_skip "bench" "nbdkit not installed"; tap_done; exit; }
jget() { python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))[sys.argv[2]])' "$1" "$2"; }

start_nbdkit memory 64M
URI=nbd://127.0.0.1:$PORT/
"$SHUNT" bench --verify --read-percent 50 --duration 2 --queue-depth 16 -C 2 --size 8M --json "$URI" >"$T/b1.json" 2>"$T/b1.err"
rc=$?
tap_check "verified random 50/50 run exits 0 (rc $rc)" test "$rc" = 0
tap_check "it did reads and writes" bash -c "test $(jget "$T/b1.json" reads) -gt 1000 -a $(jget "$T/b1.json" writes) -gt 1000"
tap_check "no errors, no verify errors" bash -c "test $(jget "$T/b1.json" errors) = 0 -a $(jget "$T/b1.json" verify_errors) = 0"
tap_check "latency percentiles reported" python3 -c '
import json,sys; l=json.load(open(sys.argv[1]))["latency_us"]; sys.exit(not (0 < l["p50"] <= l["p99"] <= l["p99.9"] <= l["max"]))' "$T/b1.json"
tap_check "sequential 64K read run, text report" \
  bash -c "'$SHUNT' bench --pattern seq -b 64K --queue-depth 4 --duration 1 '$URI' | grep -q 'IOPS'"

tap_check "direct reads copy no payload bytes, the --staged path counts them all" bash -c "
  '$SHUNT' bench --pattern seq -b 256K --queue-depth 4 --duration 1 --json '$URI' >'$T/d.json' &&
  '$SHUNT' bench --pattern seq -b 256K --queue-depth 4 --duration 1 --staged --json '$URI' >'$T/s.json' &&
  python3 -c '
import json,sys
d=json.load(open(sys.argv[1])); s=json.load(open(sys.argv[2]))
sys.exit(not (d[\"payload_bytes_copied\"]==0 and s[\"payload_bytes_copied\"]==s[\"reads\"]*262144>0))' '$T/d.json' '$T/s.json'"

# Verification works: another writer scribbles over the same 256 KiB meanwhile.
"$SHUNT" bench --read-percent 0 --duration 3 --queue-depth 4 --size 256K "$URI" >/dev/null 2>&1 &
W=$!
sleep 0.3
"$SHUNT" bench --verify --read-percent 50 --duration 2 --queue-depth 4 --size 256K --json "$URI" >"$T/b2.json" 2>/dev/null
rc=$?
wait $W
tap_check "foreign writes are caught: verify errors $(jget "$T/b2.json" verify_errors), exit $rc" \
  bash -c "test $(jget "$T/b2.json" verify_errors) -gt 0 -a $rc = 1"
stop_pid "$NBDKIT_PID"

start_nbdkit --filter=error memory 64M error-pread=EIO error-pread-rate=10% error-pwrite=EIO error-pwrite-rate=10%
"$SHUNT" bench --verify --read-percent 50 --duration 1 --queue-depth 8 --json "nbd://127.0.0.1:$PORT/" >"$T/b3.json" 2>/dev/null
rc=$?
tap_check "error filter: exit status 1 (got $rc)" test "$rc" = 1
tap_check "error filter: errors counted ($(jget "$T/b3.json" errors)) and the first one named" \
  bash -c "test $(jget "$T/b3.json" errors) -gt 0 && grep -q 'Input/output error' '$T/b3.json'"
# --no-extended: the same protocol as against servers without extended headers (bench/compare
# runs shunt bench that way against every server); the JSON says which replies were used.
truncate -s 16M "$T/x.img"
start_shunt "x=$T/x.img"
for mode in "extended:" "structured:--no-extended"; do
  want=${mode%%:*} opt=${mode#*:}
  tap_check "shunt serve, bench $opt: replies $want, reads ok" bash -c "
    '$SHUNT' bench --duration 300ms --queue-depth 8 $opt --json nbd://127.0.0.1:$PORT/x >'$T/e.json' &&
    python3 -c '
import json,sys
d=json.load(open(sys.argv[1]))
sys.exit(not (d[\"replies\"]==sys.argv[2] and d[\"reads\"]>0 and d[\"errors\"]==0 and 0<d[\"receive_calls\"]<=2*d[\"reads\"]+8))' '$T/e.json' $want"
done
stop_shunt
tap_check "bench --help" bash -c "'$SHUNT' bench --help | grep -q 'usage: shunt bench'"
tap_check "info --help" bash -c "'$SHUNT' info --help | grep -q 'usage: shunt info'"
tap_check "bench refuses a bad option value" bash -c "'$SHUNT' bench --queue-depth 0 '$URI' 2>/dev/null; test \$? = 2"
tap_done
