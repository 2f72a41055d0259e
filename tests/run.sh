#!/usr/bin/env bash
# tests/run.sh: run every test against one or more builds and print one summary.
#
# Usage: tests/run.sh [--tier fast|all] [--only PATTERN] [--datapaths LIST] BUILD_DIR[:TIER]...
# A BUILD_DIR may carry its own tier (build:all build-asan:fast), overriding --tier.
#
# A test is a unit executable (BUILD/tests/unit/test_*) or an executable script
# tests/interop/*.sh (tests/vm/*.sh and tests/fuzz/*.sh in tier "all"). Each prints TAP lines:
#   ok N - what        not ok N - what        ok N - what # SKIP reason
# A test that exits non-zero without any "not ok" line counts as one failure;
# one that prints nothing and exits 0 counts as a failure too (it checked nothing).
# Scripts find the binary under test in $SHUNT (BUILD/shunt) and the build in
# $SHUNT_BUILD. --datapaths splice,direct reruns, against the first build only,
# every interop test that builds its exports with export_arg (tests/lib.sh)
# once per listed data path, with SHUNT_EXPORT_OPTS=datapath=PATH. Each test is bounded by $SHUNT_TEST_TIMEOUT seconds (default 600).
set -u
top=$(cd "$(dirname "$0")/.." && pwd)
tier=fast
only=
datapaths=
builds=()
while [ $# -gt 0 ]; do
  case "$1" in
    --tier) tier=$2; shift 2 ;;
    --only) only=$2; shift 2 ;;
    --datapaths) datapaths=${2//,/ }; shift 2 ;;
    -*) echo "run.sh: unknown option $1" >&2; exit 2 ;;
    *) builds+=("$1"); shift ;;
  esac
done
[ ${#builds[@]} -gt 0 ] || builds=(build)

logdir=${SHUNT_TEST_LOGS:-$top/build-tests-logs}
mkdir -p "$logdir"
passed=0 failed=0 skipped=0
failures=()

run_one() { # build label cmd...
  local b=$1 label=$2; shift 2
  local log="$logdir/$(basename "$b")-$(echo "$label" | tr '/ ' '__').log"
  local t0=$SECONDS
  SHUNT_EXPORT_OPTS="${export_opts:-}" SHUNT="$b/shunt" SHUNT_BUILD="$b" SHUNT_TOP="$top" \
    timeout --kill-after=10 "${SHUNT_TEST_TIMEOUT:-600}" "$@" </dev/null >"$log" 2>&1
  local rc=$?
  local p f s
  p=$(grep -cE '^ok [0-9]+' "$log" | tr -d ' ')
  s=$(grep -cE '^ok [0-9]+.*# *SKIP' "$log" | tr -d ' ')
  f=$(grep -cE '^not ok [0-9]+' "$log" | tr -d ' ')
  p=$((p - s))
  if [ "$rc" -ne 0 ] && [ "$f" -eq 0 ]; then
    f=1; echo "not ok - $label exited with status $rc" >>"$log"
  fi
  if [ "$rc" -eq 0 ] && [ $((p + f + s)) -eq 0 ]; then
    f=1; echo "not ok - $label printed no result" >>"$log"
  fi
  passed=$((passed + p)); failed=$((failed + f)); skipped=$((skipped + s))
  local status=PASS
  [ "$f" -gt 0 ] && status=FAIL && failures+=("$log")
  printf '%-4s %-46s %3d ok %2d failed %2d skipped  (%ds) [%s]\n' \
    "$status" "$label" "$p" "$f" "$s" $((SECONDS - t0)) "$(basename "$b")"
  grep -E '# *SKIP' "$log" | sed 's/^/       /'
}

for spec in "${builds[@]}"; do
  b=${spec%%:*}; btier=$tier
  [ "$spec" != "$b" ] && btier=${spec#*:}
  b=$(cd "$b" && pwd) || { echo "run.sh: no build dir $b" >&2; exit 2; }
  for t in "$b"/tests/unit/test_*; do
    [ -x "$t" ] && [ -f "$t" ] || continue
    [ -n "$only" ] && [[ "$t" != *$only* ]] && continue
    run_one "$b" "unit/$(basename "$t")" "$t"
  done
  dirs=("$top/tests/interop")
  # Tier "all" (given to one build only by `make check`) adds the VM tests and
  # the fuzzers, which build themselves (tests/fuzz/run.sh): once per check.
  [ "$btier" = all ] && dirs+=("$top/tests/vm" "$top/tests/fuzz")
  for d in "${dirs[@]}"; do
    for t in "$d"/*.sh; do
      [ -x "$t" ] || continue
      [ -n "$only" ] && [[ "$t" != *$only* ]] && continue
      run_one "$b" "$(basename "$d")/$(basename "$t")" "$t"
    done
  done
  # The data-path reruns (first build only).
  if [ "$spec" = "${builds[0]}" ]; then
    for dp in $datapaths; do
      for t in "$top"/tests/interop/*.sh; do
        [ -x "$t" ] && grep -q export_arg "$t" || continue
        [ -n "$only" ] && [[ "$t" != *$only* ]] && continue
        export_opts="datapath=$dp" run_one "$b" "interop/$(basename "$t") [datapath=$dp]" "$t"
      done
    done
  fi
done

# The one-node Ceph cluster the rbd tests share (the first one starts it):
# stopped once, after every test of the run.
if "$top/tests/ceph/cluster.sh" status 2>/dev/null; then
  "$top/tests/ceph/cluster.sh" stop || echo "run.sh: stopping the Ceph cluster failed" >&2
fi

if [ ${#failures[@]} -gt 0 ]; then
  echo
  echo "Failures (last 40 lines of each log):"
  for l in "${failures[@]}"; do echo "== $l"; tail -n 40 "$l"; done
fi
echo
echo "$passed passed, $failed failed, $skipped skipped"
[ "$failed" -eq 0 ]
