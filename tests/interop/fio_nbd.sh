#!/usr/bin/env bash
# fio_nbd.sh: fio's nbd engine (libnbd) against shunt serve: a verified random
# write/read job (verify=crc32c) with several requests in flight, then a second,
# verify-only pass on a new connection; any fio error or verify failure fails.
. "$(dirname "$0")/../lib.sh"
need_deps

# run_fio NAME URI EXTRA...: one bounded fio job; JSON result in $T/NAME.json.
run_fio() {
  local name=$1 uri=$2; shift 2
  (cd "$T" && exec timeout 120 fio --name="$name" --ioengine=nbd --uri="$uri" --rw=randwrite --bs=4k \
    --bssplit=4k/60:64k/30:1m/10 --iodepth=16 --size=48M --offset=8M --randrepeat=1 \
    --randseed=4242 --verify=crc32c --verify_fatal=1 --verify_backlog=256 --do_verify=1 \
    --runtime=60 --output-format=json --output="$T/$name.json" "$@") >"$T/$name.out" 2>&1
  local rc=$?
  [ "$rc" -eq 0 ] || { echo "fio exit status $rc"; tail -n 20 "$T/$name.out"; return 1; }
}
# fio_clean NAME: the JSON reports no error in any job and some I/O done.
fio_clean() {
  /usr/bin/python3 - "$T/$1.json" <<'PY'
import json, sys
doc = json.load(open(sys.argv[1]))
jobs = doc["jobs"]
errs = [(j["jobname"], j["error"]) for j in jobs if j["error"]]
io = sum(j["write"]["io_bytes"] + j["read"]["io_bytes"] for j in jobs)
print("jobs", len(jobs), "errors", errs, "io bytes", io)
sys.exit(1 if errs or io == 0 else 0)
PY
}

for kind in file memory; do
  if [ "$kind" = file ]; then
    truncate -s 64M "$T/disk.img"; exp=$(export_arg disk "$T/disk.img")
  else
    exp=$(export_arg disk 64M backend=memory)
  fi
  if ! start_shunt "$exp"; then tap_fail "$kind: shunt serve started"; continue; fi
  uri="nbd://127.0.0.1:$PORT/disk"
  tap_check "$kind: fio randwrite + crc32c verify, iodepth 16, mixed 4k/64k/1m" run_fio w "$uri"
  tap_check "$kind: fio reports no errors and did I/O" fio_clean w
  tap_check "$kind: verify-only pass on a new connection finds the same data" \
    run_fio v "$uri" --verify_only=1
  tap_check "$kind: verify-only pass reports no errors" fio_clean v
  # Sensitivity: corrupt one 4k block through NBD; the same verify pass must now fail.
  tap_check "$kind: after corrupting 4k at 20M (qemu-io), the verify-only pass fails" \
    bash -c "timeout 30 qemu-io -f raw -c 'write -P 0x33 20M 4k' '$uri' >/dev/null &&
      ! (cd '$T' && timeout 120 fio --name=v --ioengine=nbd --uri='$uri' --rw=randwrite --bs=4k \
        --bssplit=4k/60:64k/30:1m/10 --iodepth=16 --size=48M --offset=8M --randrepeat=1 \
        --randseed=4242 --verify=crc32c --verify_fatal=1 --verify_only=1) >'$T/neg.out' 2>&1 &&
      grep -q 'verify: bad' '$T/neg.out'"
  tap_check "$kind: server still alive" shunt_alive
  tap_check "$kind: server stops cleanly" stop_shunt_within
done
tap_finish
