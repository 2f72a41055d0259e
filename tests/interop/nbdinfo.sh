#!/usr/bin/env bash
# nbdinfo.sh: nbdinfo against shunt serve: --list shows every export with its
# description and flags; --map of a sparse file matches the file's real data/hole
# layout; unknown exports are refused; --stdio (inetd mode) serves one client.
. "$(dirname "$0")/../lib.sh"
need_deps
PY=/usr/bin/python3
here=$(cd "$(dirname "$0")" && pwd)

a=$T/alpha.img b=$T/beta.img c=$T/gamma.img
truncate -s 64M "$a"; truncate -s 32M "$b"; truncate -s 16M "$c"
# Sparse layout of alpha, offset:length in KiB, each written with random data.
layout="1024:64 8192:1024 20484:4 30720:4096 65532:4"
for spec in $layout; do
  head -c $((${spec#*:} << 10)) /dev/urandom |
    dd of="$a" bs=4k seek=$((${spec%%:*} / 4)) conv=notrunc status=none
done

if ! start_shunt "$(export_arg alpha "$a" "desc=First disk")" \
                 "$(export_arg beta "$b" "desc=Second disk")" \
                 "$(export_arg gamma "$c" ro)"; then
  tap_fail "shunt serve started"; tap_finish; exit 1
fi
base="nbd://127.0.0.1:$PORT"

timeout 30 nbdinfo --list --json "$base" >"$T/list.json" 2>"$T/list.err"
tap_check "nbdinfo --list succeeds" test -s "$T/list.json"
tap_relay "$PY" "$here/nbdinfo_check.py" list "$T/list.json" \
  "alpha:67108864:First disk:rw" "beta:33554432:Second disk:rw" "gamma:16777216::ro"

timeout 30 nbdinfo --map --json "$base/alpha" >"$T/map.json" 2>"$T/map.err"
tap_check "nbdinfo --map succeeds" test -s "$T/map.json"
tap_relay "$PY" "$here/nbdinfo_check.py" map "$T/map.json" "$a" "$layout"

tap_check "nbdinfo --size of beta is 32 MiB" \
  bash -c "[ \"\$(timeout 30 nbdinfo --size '$base/beta')\" = 33554432 ]"
tap_check "nbdinfo --is read-only: gamma is" timeout 30 nbdinfo --is read-only "$base/gamma"
tap_check "nbdinfo --is read-only: alpha is not" bash -c "! timeout 30 nbdinfo --is read-only '$base/alpha'"
tap_check "nbdinfo --can trim/zero/flush/fua/multi-conn on alpha" bash -c "
  for c in trim zero fast-zero flush fua multi-conn df; do
    timeout 30 nbdinfo --can \$c '$base/alpha' || { echo \"cannot \$c\"; exit 1; }; done"
tap_check "an unknown export name is refused" bash -c "! timeout 30 nbdinfo '$base/nosuch'"
tap_check "server still alive" shunt_alive
tap_check "server stops cleanly" stop_shunt_within

# inetd mode: libnbd runs `shunt serve --stdio` itself (nbd_connect_command).
tap_check "--stdio: libnbd connect_command reads the export size and data" \
  timeout 30 "$PY" -c '
import nbd, sys
h = nbd.NBD(); h.set_export_name("alpha")
h.connect_command(sys.argv[1:])
assert h.get_size() == 64 << 20, h.get_size()
with open("'"$a"'", "rb") as f: f.seek(8 << 20); want = f.read(1 << 20)
assert h.pread(1 << 20, 8 << 20) == want
h.shutdown()' "$SHUNT" serve --stdio "$(export_arg alpha "$a")"
tap_finish
