# tests/interop/rbd_lib.sh: sourced by the rbd_*.sh tests (not a test: not
# executable), after ../lib.sh.  The tests share one Ceph cluster
# (tests/ceph/cluster.sh): the first one starts it, tests/run.sh stops it.
#   rbd_require            start (or join) the cluster; on failure one failed test and exit
#                          (a build without librbd, -Drbd=disabled: one SKIP and exit)
#   rbd_image NAME SIZE [OPTION...]
#                          create a fresh image POOL/NAME-$$ (OPTIONs go to rbd create);
#                          prints POOL/NAME-$$
#   rbd_same SPEC FILE     the image's bytes (rbd export) equal FILE's
#   rbd_alloc SPEC [--exact]
#                          the image's allocated runs, one "OFFSET LENGTH" a line
#                          (rbd diff --whole-object, adjacent runs merged; with --exact,
#                          rbd diff's own runs: what librbd reports for an image
#                          without fast-diff, whose allocation is not known by object)
#   rbd_osd_pid            the OSD's PID (for SIGSTOP/SIGCONT)
#   rbd_osd_stopped        true while the OSD is stopped (SIGSTOP): its admin socket
#                          cannot answer then
#   rbd_osd_dump           what the OSD is doing, as "# " lines: its ops in flight and its
#                          recent slow ops (ceph daemon osd.0 dump_ops_in_flight,
#                          dump_historic_slow_ops: the admin socket of CEPH_CONF) and
#                          the last 50 lines of its log; each ceph call bounded (10 s)
# Images are removed at exit.
_rbd_images=()

rbd_require() {
  local b=${SHUNT_BUILD:-$SHUNT_TOP/build}
  if [ -f "$b/build.ninja" ] && ! grep -q SHUNT_HAVE_RBD "$b/build.ninja"; then
    tap_skip "backend=rbd ($(basename "$0"))" "$(basename "$b") was built without librbd (meson -Drbd)"
    tap_done
    exit 0
  fi
  "$SHUNT_TOP/scripts/deps.sh" ceph >/dev/null 2>&1
  local out
  if ! out=$("$SHUNT_TOP/tests/ceph/cluster.sh" start 2>&1); then
    tap_fail "the Ceph test cluster started (tests/ceph/cluster.sh start)"
    echo "$out" | sed 's/^/# /'
    tap_done
    exit 1
  fi
  eval "$(echo "$out" | grep '^export ')"
  POOL=$SHUNT_CEPH_POOL
  trap '_rbd_cleanup; _cleanup' EXIT
}

_rbd_cleanup() {
  local p i
  for p in "${_cleanup_pids[@]}"; do kill -CONT "$p" 2>/dev/null; kill "$p" 2>/dev/null; done
  for p in "${_cleanup_pids[@]}"; do wait "$p" 2>/dev/null; done
  _cleanup_pids=()
  for i in "${_rbd_images[@]}"; do
    timeout 30 rbd snap purge "$i" >/dev/null 2>&1
    timeout 30 rbd rm "$i" >/dev/null 2>&1
  done
}

rbd_image() {
  local spec=$POOL/$1-$$
  timeout 30 rbd create --size "$2" "${@:3}" "$spec" >/dev/null || return 1
  _rbd_images+=("$spec")
  echo "$spec"
}

rbd_same() {
  rm -f "$T/.rbd_export"
  timeout 60 rbd export --no-progress "$1" "$T/.rbd_export" >/dev/null 2>&1 || { echo "rbd export $1 failed"; return 1; }
  cmp "$T/.rbd_export" "$2"
}

rbd_alloc() {
  local whole=--whole-object
  [ "${2:-}" = --exact ] && whole=
  timeout 60 rbd diff $whole --format json "$1" | /usr/bin/python3 -c '
import json, sys
runs = []
for e in json.load(sys.stdin):
    if e["exists"] != "true" and e["exists"] is not True:
        continue
    if runs and runs[-1][0] + runs[-1][1] == e["offset"]:
        runs[-1][1] += e["length"]
    else:
        runs.append([e["offset"], e["length"]])
for o, l in runs:
    print(o, l)'
}

rbd_osd_pid() { cat "${SHUNT_CEPH_DIR:-$SHUNT_TOP/build/ceph-state}/run/osd.0.pid"; }

rbd_osd_stopped() {
  local pid
  pid=$(rbd_osd_pid 2>/dev/null) && grep -q '^State:[[:space:]]*T' "/proc/$pid/status" 2>/dev/null
}

# stdin from /dev/null: called from tap_fail, which tap_relay calls while it
# reads a helper's output from its stdin.
rbd_osd_dump() {
  local log=${SHUNT_CEPH_DIR:-$SHUNT_TOP/build/ceph-state}/log/ceph-osd.0.log pid c
  pid=$(rbd_osd_pid 2>/dev/null)
  {
    echo "osd.0 (pid ${pid:-unknown}): $(sed -n 's/^State:[[:space:]]*//p' "/proc/$pid/status" 2>/dev/null || echo gone)"
    for c in dump_ops_in_flight dump_historic_slow_ops; do
      echo "ceph daemon osd.0 $c:"
      if rbd_osd_stopped; then
        echo "(not asked: the OSD is stopped)"
      else
        timeout 10 ceph daemon osd.0 "$c" 2>&1 || echo "(failed: exit status $?)"
      fi
    done
    echo "the last 50 lines of $log:"
    tail -n 50 "$log" 2>&1
  } </dev/null | sed 's/^/# /'
}
