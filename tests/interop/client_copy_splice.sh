#!/usr/bin/env bash
# client_copy_splice.sh: the kernel-moved payloads of libshunt (client_copy_splice
# against nbdkit, and against shunt serve whose 64K chunks arrive out of order),
# and the paths `shunt copy` takes with them: NBD -> NBD through pipes, file -> NBD
# by sendfile, NBD -> file with O_DIRECT (odd sizes, zero detection, and
# --no-splice / --no-direct giving the same bytes).
. "$(dirname "$0")/client_lib.sh"
command -v nbdkit >/dev/null || { tap_skip "copy splice" "nbdkit not installed"; tap_done; exit; }
SPLICE_CHECK=$SHUNT_BUILD/tests/unit/client_copy_splice

# run_splice_check NAME ARGS...: run client_copy_splice, re-prefix its TAP lines.
run_splice_check() {
  local name=$1 line; shift
  timeout 120 "$SPLICE_CHECK" "$@" >"$T/splice.out" 2>&1
  local rc=$?
  while IFS= read -r line; do
    case "$line" in
      "ok "*" - "*) tap_ok "$name: ${line#* - }" ;;
      "not ok "*" - "*) tap_fail "$name: ${line#* - }" ;;
      "#"*|"Bail out!"*) echo "# $line" ;;
    esac
  done <"$T/splice.out"
  [ $rc -eq 0 ] || { grep -q '^not ok' "$T/splice.out" || tap_fail "$name: exited $rc"; }
}
# copy_json OUT ARGS...: shunt copy --json ARGS > OUT; its exit status.
copy_json() { local out=$1; shift; "$SHUNT" copy --json "$@" >"$out"; }
json_field() { python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))[sys.argv[2]])' "$1" "$2"; }

start_nbdkit memory 16M
run_splice_check "nbdkit" --expect-full-pipe "nbd://127.0.0.1:$PORT/"
stop_pid "$NBDKIT_PID"

truncate -s 16M "$T/chunked.img"
if start_shunt "disk=$T/chunked.img,chunk=64K"; then
  run_splice_check "shunt serve, 64K chunks" "nbd://127.0.0.1:$PORT/disk"
  stop_shunt
else
  tap_fail "shunt serve started"
fi

# A source of odd size (not a multiple of 4 KiB): random data, a hole, and
# 3 MiB of zeroes written as data.
SRC=$T/src.img
SIZE=$(( (24 << 20) + 4096 * 3 + 777 ))
head -c "$SIZE" /dev/urandom >"$SRC"
dd if=/dev/zero of="$SRC" bs=1M seek=8 count=3 conv=notrunc status=none
fallocate -p -o $((16 << 20)) -l $((4 << 20)) "$SRC"
SUM=$(md5sum <"$SRC")
start_nbdkit file "$SRC"
SRC_URI=nbd://127.0.0.1:$PORT/
SRC_PID=$NBDKIT_PID

# NBD -> NBD through pipes, then out to files with and without O_DIRECT.
start_nbdkit memory "$SIZE"
DST_URI=nbd://127.0.0.1:$PORT/
tap_check "NBD -> NBD (pipes)" copy_json "$T/n2n.json" "$SRC_URI" "$DST_URI"
tap_check "NBD -> NBD: most data was spliced ($(json_field "$T/n2n.json" spliced_bytes) bytes)" \
  test "$(json_field "$T/n2n.json" spliced_bytes)" -ge $(( 16 << 20 ))
tap_check "NBD -> NBD: allocated zeroes found behind the probe ($(json_field "$T/n2n.json" zero_bytes) zero bytes)" \
  test "$(json_field "$T/n2n.json" zero_bytes)" -ge $(( 7 << 20 ))
# (fincore before md5sum: reading the copy would cache it.)  One request in
# flight: every aligned write goes O_DIRECT (the page cache only takes the
# overflow beyond half the requests in flight).
tap_check "NBD -> file, -R 1 (O_DIRECT)" copy_json "$T/d1.json" -R 1 "$DST_URI" "$T/out.img"
cached=$(fincore -b -n -o RES "$T/out.img" 2>/dev/null || echo 0)
tap_check "NBD -> file -R 1: O_DIRECT left at most 1 MiB of the copy in the page cache ($cached bytes)" \
  test "${cached:-0}" -le $(( 1 << 20 ))
tap_check "NBD -> file -R 1: direct_bytes $(json_field "$T/d1.json" direct_bytes) cover all data but the odd tail (not the hole, not the zeroes)" \
  test "$(json_field "$T/d1.json" direct_bytes)" -ge $(( SIZE - (7 << 20) - 4096 ))
tap_check "NBD -> NBD -> file: checksum identical" test "$SUM" = "$(md5sum <"$T/out.img")"
tap_check "NBD -> file: odd size kept" test "$(stat -c %s "$T/out.img")" = "$SIZE"
tap_check "NBD -> file (defaults)" copy_json "$T/d2.json" "$DST_URI" "$T/out1.img"
cached=$(fincore -b -n -o RES "$T/out1.img" 2>/dev/null || echo 0)
direct=$(json_field "$T/d2.json" direct_bytes)
tap_check "NBD -> file: O_DIRECT bytes ($direct) are not in the page cache ($cached bytes cached)" \
  bash -c "test $direct -gt 0 && test ${cached:-0} -le $(( SIZE - direct + (1 << 20) ))"
tap_check "NBD -> file (defaults): checksum identical" test "$SUM" = "$(md5sum <"$T/out1.img")"
tap_check "NBD -> file --no-direct" copy_json "$T/d3.json" --no-direct "$DST_URI" "$T/out2.img"
cached=$(fincore -b -n -o RES "$T/out2.img" 2>/dev/null || echo 0)
tap_check "--no-direct: the copy went through the page cache ($cached bytes cached, 0 direct)" \
  bash -c "test ${cached:-0} -ge $(( 8 << 20 )) && test $(json_field "$T/d3.json" direct_bytes) = 0"
tap_check "--no-direct: checksum identical" test "$SUM" = "$(md5sum <"$T/out2.img")"
stop_pid "$NBDKIT_PID"

# --no-splice: the same copy with every byte through user memory.
start_nbdkit memory "$SIZE"
tap_check "NBD -> NBD --no-splice" copy_json "$T/ns.json" --no-splice "$SRC_URI" "nbd://127.0.0.1:$PORT/"
tap_check "--no-splice: nothing spliced" test "$(json_field "$T/ns.json" spliced_bytes)" = 0
tap_check "--no-splice: copy back" "$SHUNT" copy "nbd://127.0.0.1:$PORT/" "$T/out3.img"
tap_check "--no-splice: checksum identical" test "$SUM" = "$(md5sum <"$T/out3.img")"
# --reconnect: a pipe write cannot be resent, so NBD -> NBD keeps buffers.
tap_check "NBD -> NBD --reconnect" copy_json "$T/rc.json" --reconnect 2 "$SRC_URI" "nbd://127.0.0.1:$PORT/"
tap_check "--reconnect: nothing spliced" test "$(json_field "$T/rc.json" spliced_bytes)" = 0
stop_pid "$NBDKIT_PID"

# file -> NBD by sendfile, with the probe (zeroes found) and without (--no-sparse).
for mode in "" --no-sparse; do
  start_nbdkit memory "$SIZE"
  tap_check "file -> NBD ${mode:-(sparse)}" copy_json "$T/up.json" $mode "$SRC" "nbd://127.0.0.1:$PORT/"
  sf=$(json_field "$T/up.json" sendfile_bytes)
  if [ -z "$mode" ]; then
    tap_check "file -> NBD: data by sendfile ($sf bytes), zeroes as zeroes" \
      bash -c "test $sf -ge $((16 << 20)) && test $(json_field "$T/up.json" zero_bytes) -ge $((7 << 20))"
  else
    tap_check "file -> NBD --no-sparse: every byte by sendfile ($sf)" test "$sf" = "$SIZE"
  fi
  tap_check "file -> NBD ${mode:-(sparse)}: copy back" "$SHUNT" copy "nbd://127.0.0.1:$PORT/" "$T/out4.img"
  tap_check "file -> NBD ${mode:-(sparse)}: checksum identical" test "$SUM" = "$(md5sum <"$T/out4.img")"
  stop_pid "$NBDKIT_PID"
done
stop_pid "$SRC_PID"

# A block device source goes by sendfile too.
if [ "$(id -u)" = 0 ] && command -v losetup >/dev/null && LOOP=$(losetup -f --show "$SRC" 2>/dev/null); then
  start_nbdkit memory "$(blockdev --getsize64 "$LOOP")"
  tap_check "block device -> NBD" copy_json "$T/blk.json" "$LOOP" "nbd://127.0.0.1:$PORT/"
  tap_check "block device -> NBD: data by sendfile" test "$(json_field "$T/blk.json" sendfile_bytes)" -ge $((16 << 20))
  tap_check "block device -> NBD: copy back" "$SHUNT" copy "nbd://127.0.0.1:$PORT/" "$T/out6.img"
  tap_check "block device -> NBD: checksum identical" test "$(md5sum <"$LOOP")" = "$(md5sum <"$T/out6.img")"
  losetup -d "$LOOP"
  stop_pid "$NBDKIT_PID"
else
  tap_skip "block device -> NBD" "needs root and a free loop device"
fi

# file -> file: buffered reads, O_DIRECT writes where aligned.
tap_check "file -> file" "$SHUNT" copy "$SRC" "$T/out5.img"
tap_check "file -> file: checksum identical" test "$SUM" = "$(md5sum <"$T/out5.img")"
tap_check "copy --help names --no-splice and --no-direct" \
  bash -c "'$SHUNT' copy --help | grep -q -- --no-splice && '$SHUNT' copy --help | grep -q -- --no-direct"
tap_done
