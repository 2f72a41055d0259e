#!/usr/bin/env bash
# tests/fuzz/run.sh: build the libFuzzer harnesses (clang, ASan + UBSan + libFuzzer,
# into $FUZZ_BUILD, default build-fuzz/) and run each for FUZZ_SECONDS (default 20)
# over its seed corpus (tests/fuzz/corpus/NAME). One TAP line per harness; any crash,
# leak, timeout or UBSan report fails it (the reproducer is left in
# $FUZZ_BUILD/artifacts/). tests/run.sh runs this once per `make check` (tier "all");
# `make fuzz` runs it with FUZZ_SECONDS=60 and keeps what the fuzzer learnt in
# $FUZZ_BUILD/corpus/NAME. Usage: run.sh [--build-only] [HARNESS...]
set -u
top=$(cd "$(dirname "$0")/../.." && pwd)
. "$top/tests/lib.sh"
fb=${FUZZ_BUILD:-$top/build-fuzz}
secs=${FUZZ_SECONDS:-20}
CC_FUZZ=${CC_FUZZ:-clang}
build_only=0
[ "${1:-}" = --build-only ] && { build_only=1; shift; }

# To add a harness: write tests/fuzz/fuzz_NAME.c (its input format described
# at its top), list the sources it links below, put seeds in corpus/NAME/ and
# add NAME to fuzz_replay in tests/unit/meson.build.  A harness uses
# nbd.dict unless dicts[NAME] names another dictionary ("" for none).
# name: sources (besides the harness itself)
declare -A srcs=(
  [handshake]="src/proto/handshake.c src/proto/option.c src/proto/request.c src/proto/reply.c"
  [request]="src/proto/request.c src/proto/reply.c src/proto/handshake.c src/proto/option.c"
)
srcs[reply]="src/proto/reply_decode.c src/proto/option.c src/proto/request.c"
srcs[client_handshake]="src/client/handshake.c src/proto/option.c src/common/text.c"
srcs[vring]="src/virtio/vring.c src/virtio/memtable.c src/virtio/virtio_blk.c src/virtio/inflight.c src/common/text.c"
srcs[vhost_msg]="src/virtio/vhost_user.c src/virtio/memtable.c src/common/text.c"
srcs[vu_handler]="src/vhost/vu_handler.c src/virtio/vhost_user.c src/virtio/memtable.c src/common/text.c"
declare -A dicts=([vring]="" [vhost_msg]="" [vu_handler]="")
names=("$@")
[ ${#names[@]} -gt 0 ] || names=($(printf '%s\n' "${!srcs[@]}" | sort))

CFLAGS_FUZZ="-std=gnu11 -D_GNU_SOURCE -g -O1 -fno-omit-frame-pointer
  -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=all
  -Wall -Wextra -Werror -Wshadow -Wno-missing-field-initializers
  -I$top/src -I$top/tests/fuzz"

# build NAME: compile build-fuzz/fuzz_NAME when a source or header is newer.
build() {
  local name=$1 exe="$fb/fuzz_$1" f newer=0
  local files=("$top/tests/fuzz/fuzz_$name.c")
  for f in ${srcs[$name]}; do files+=("$top/$f"); done
  [ -x "$exe" ] || newer=1
  for f in "${files[@]}" "$top"/tests/fuzz/*.h "$top"/src/proto/*.h "$top"/src/common/*.h \
           "$top"/src/client/*.h "$top"/src/virtio/*.h "$top"/src/vhost/*.h "$0"; do
    [ -e "$f" ] && [ "$f" -nt "$exe" ] && newer=1
  done
  [ $newer -eq 0 ] && return 0
  mkdir -p "$fb"
  # shellcheck disable=SC2086
  $CC_FUZZ $CFLAGS_FUZZ -o "$exe.tmp" "${files[@]}" && mv "$exe.tmp" "$exe"
}

if ! command -v "$CC_FUZZ" >/dev/null; then
  for n in "${names[@]}"; do tap_skip "fuzz_$n" "no $CC_FUZZ (scripts/deps.sh installs clang)"; done
  tap_done; exit
fi

export ASAN_OPTIONS="${ASAN_OPTIONS:+$ASAN_OPTIONS:}detect_leaks=1:abort_on_error=1"
export UBSAN_OPTIONS="halt_on_error=1:print_stacktrace=1"
for n in "${names[@]}"; do
  if [ -z "${srcs[$n]+x}" ]; then tap_fail "fuzz_$n: no such harness"; continue; fi
  if ! build "$n" >"$T/build-$n.log" 2>&1; then
    tap_fail "fuzz_$n builds"; sed 's/^/#   /' "$T/build-$n.log" | tail -n 30; continue
  fi
  [ $build_only -eq 1 ] && { tap_ok "fuzz_$n builds"; continue; }
  seeds="$top/tests/fuzz/corpus/$n"
  # New inputs go to a scratch corpus (kept under build-fuzz/ with FUZZ_KEEP=1),
  # never into the committed seeds.
  if [ "${FUZZ_KEEP:-0}" = 1 ]; then work="$fb/corpus/$n"; else work="$T/corpus-$n"; fi
  mkdir -p "$work" "$fb/artifacts"
  dict=()
  if [ -z "${dicts[$n]+x}" ]; then dict=(-dict="$top/tests/fuzz/nbd.dict")
  elif [ -n "${dicts[$n]}" ]; then dict=(-dict="$top/tests/fuzz/${dicts[$n]}"); fi
  t0=$SECONDS
  "$fb/fuzz_$n" -max_total_time="$secs" -timeout=10 -rss_limit_mb=2048 -max_len=140000 \
    "${dict[@]}" -artifact_prefix="$fb/artifacts/$n-" \
    -print_final_stats=1 "$work" "$seeds" >"$T/fuzz-$n.log" 2>&1
  rc=$?
  runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$T/fuzz-$n.log")
  cov=$(grep -oE 'cov: [0-9]+' "$T/fuzz-$n.log" | tail -n 1)
  if [ $rc -eq 0 ] && ! grep -qE 'ERROR: (AddressSanitizer|LeakSanitizer|libFuzzer)|runtime error:' "$T/fuzz-$n.log"; then
    tap_ok "fuzz_$n: ${runs:-?} inputs in $((SECONDS - t0)) s, ${cov:-cov ?}, clean"
  else
    tap_fail "fuzz_$n: exit status $rc after ${runs:-?} inputs (reproducer in $fb/artifacts/)"
    grep -E 'ERROR|runtime error|SUMMARY|#[0-9]+ 0x|invariant|Test unit written' "$T/fuzz-$n.log" | head -n 40 | sed 's/^/#   /'
  fi
done
tap_done
