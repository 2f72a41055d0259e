#!/usr/bin/env bash
# tests/run.sh: run every test against one or more builds and print one summary.
#
# Usage: tests/run.sh [--tier fast|all] [--only PATTERN] [--datapaths LIST] [--jobs N]
#                     BUILD_DIR[:TIER]...
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
# once per listed data path, with SHUNT_EXPORT_OPTS=datapath=PATH. Each test is
# bounded by $SHUNT_TEST_TIMEOUT seconds (default 600).
#
# --jobs N (default $SHUNT_TEST_JOBS, else 1) runs the tests in N lanes at once,
# each lane taking the next test from one queue. Every lane gets its own range of
# TCP ports (SHUNT_PORT_LANE, SHUNT_PORT_LANES: see free_port in tests/lib.sh).
# A script with a line "# shunt-test: alone" runs after the lanes, by itself
# (for a test whose device must be the only load: a throttled disk's share, say).
set -u
top=$(cd "$(dirname "$0")/.." && pwd)
tier=fast
only=
datapaths=
jobs=${SHUNT_TEST_JOBS:-1}
builds=()
while [ $# -gt 0 ]; do
  case "$1" in
    --tier) tier=$2; shift 2 ;;
    --only) only=$2; shift 2 ;;
    --datapaths) datapaths=${2//,/ }; shift 2 ;;
    --jobs) jobs=$2; shift 2 ;;
    -*) echo "run.sh: unknown option $1" >&2; exit 2 ;;
    *) builds+=("$1"); shift ;;
  esac
done
[ ${#builds[@]} -gt 0 ] || builds=(build)
[[ "$jobs" =~ ^[1-9][0-9]*$ ]] || { echo "run.sh: --jobs wants a positive number" >&2; exit 2; }

logdir=${SHUNT_TEST_LOGS:-$top/build-tests-logs}
mkdir -p "$logdir"
state=$(mktemp -d "$logdir/.run.XXXXXX")
trap 'rm -rf "$state"' EXIT

# The queue: one line per test, "BUILD|EXPORT_OPTS|LABEL|COMMAND" with an ASCII unit
# separator (0x1f) for "|" (read would merge two tabs around an empty field).
queue=$state/queue alone=$state/alone
: >"$queue"; : >"$alone"
add() { # build export_opts label cmd
  local q=$queue
  [[ "$4" == *.sh ]] && grep -q '^# shunt-test: alone' "$4" && q=$alone
  printf '%s\x1f%s\x1f%s\x1f%s\n' "$1" "$2" "$3" "$4" >>"$q"
}

for spec in "${builds[@]}"; do
  b=${spec%%:*}; btier=$tier
  [ "$spec" != "$b" ] && btier=${spec#*:}
  b=$(cd "$b" && pwd) || { echo "run.sh: no build dir $b" >&2; exit 2; }
  dirs=("$top/tests/interop")
  # Tier "all" (given to one build only by `make check`) adds the VM tests and
  # the fuzzers, which build themselves (tests/fuzz/run.sh): once per check.
  # They go first: they are the longest, and a lane that starts them early
  # leaves the short tests to fill the other lanes.
  if [ "$btier" = all ]; then
    for d in "$top/tests/vm" "$top/tests/fuzz"; do
      for t in "$d"/*.sh; do
        [ -x "$t" ] || continue
        [ -n "$only" ] && [[ "$t" != *$only* ]] && continue
        add "$b" "" "$(basename "$d")/$(basename "$t")" "$t"
      done
    done
  fi
  for t in "$b"/tests/unit/test_*; do
    [ -x "$t" ] && [ -f "$t" ] || continue
    [ -n "$only" ] && [[ "$t" != *$only* ]] && continue
    add "$b" "" "unit/$(basename "$t")" "$t"
  done
  for d in "${dirs[@]}"; do
    for t in "$d"/*.sh; do
      [ -x "$t" ] || continue
      [ -n "$only" ] && [[ "$t" != *$only* ]] && continue
      add "$b" "" "$(basename "$d")/$(basename "$t")" "$t"
    done
  done
  # The data-path reruns (first build only).
  if [ "$spec" = "${builds[0]}" ]; then
    for dp in $datapaths; do
      for t in "$top"/tests/interop/*.sh; do
        [ -x "$t" ] && grep -q export_arg "$t" || continue
        [ -n "$only" ] && [[ "$t" != *$only* ]] && continue
        add "$b" "datapath=$dp" "interop/$(basename "$t") [datapath=$dp]" "$t"
      done
    done
  fi
done

# run_one LANE BUILD EXPORT_OPTS LABEL CMD: run one test, print its line, and
# append "PASSED FAILED SKIPPED LOG" to the lane's results.
run_one() {
  local lane=$1 b=$2 opts=$3 label=$4 cmd=$5
  local log="$logdir/$(basename "$b")-$(echo "$label" | tr '/ ' '__').log"
  local t0=$SECONDS
  SHUNT_EXPORT_OPTS="$opts" SHUNT="$b/shunt" SHUNT_BUILD="$b" SHUNT_TOP="$top" \
    SHUNT_PORT_LANE=$lane SHUNT_PORT_LANES=$jobs \
    timeout --kill-after=10 "${SHUNT_TEST_TIMEOUT:-600}" "$cmd" </dev/null >"$log" 2>&1
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
  local status=PASS
  [ "$f" -gt 0 ] && status=FAIL
  # One write per test, so that lines of concurrent lanes do not interleave.
  local out
  out=$(printf '%-4s %-46s %3d ok %2d failed %2d skipped  (%ds) [%s]\n' \
          "$status" "$label" "$p" "$f" "$s" $((SECONDS - t0)) "$(basename "$b")"
        grep -E '# *SKIP' "$log" | sed 's/^/       /')
  printf '%s\n' "$out"
  echo "$p $f $s $log" >>"$state/results.$lane"
}

# next_test: print the queue's next line (taken under a lock), or fail when empty.
next_test() {
  (
    flock 9
    local n
    n=$(cat "$state/next" 2>/dev/null || echo 1)
    sed -n "${n}p" "$queue" | grep . || exit 1
    echo $((n + 1)) >"$state/next"
  ) 9>"$state/lock"
}

lane() { # LANE
  local line b opts label cmd
  while line=$(next_test); do
    IFS=$'\x1f' read -r b opts label cmd <<<"$line"
    run_one "$1" "$b" "$opts" "$label" "$cmd"
  done
}

for ((i = 0; i < jobs; i++)); do lane "$i" & done
wait
while IFS=$'\x1f' read -r b opts label cmd; do
  run_one 0 "$b" "$opts" "$label" "$cmd"
done <"$alone"

passed=0 failed=0 skipped=0
failures=()
for r in "$state"/results.*; do
  [ -e "$r" ] || continue
  while read -r p f s log; do
    passed=$((passed + p)); failed=$((failed + f)); skipped=$((skipped + s))
    [ "$f" -gt 0 ] && failures+=("$log")
  done <"$r"
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
