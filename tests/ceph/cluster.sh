#!/usr/bin/env bash
# tests/ceph/cluster.sh: a one-node Ceph cluster on loopback for the rbd tests and
# bench/rbd: one mon, one mgr and one OSD (memstore), a pool "rbd" of size 1, no
# authentication, every file under one state directory.
#
# Usage: tests/ceph/cluster.sh start|stop|status|env
#   start   bring it up (a no-op when it runs); prints its environment like `env`
#   stop    stop the daemons by their PIDs (bounded waits) and remove the state
#   status  exit 0 when every daemon runs, 1 otherwise
#   env     print `export CEPH_CONF=...` and `export SHUNT_CEPH_POOL=rbd`
# State: $SHUNT_CEPH_DIR (default build/ceph-state under the tree). Needs root and
# Debian's ceph packages (scripts/deps.sh ceph installs them); nothing in /etc/ceph
# is read or written. Concurrent calls are serialised by a lock on DIR/lock.
# The client timeouts are short (SHUNT_CEPH_TIMEOUT seconds, default 10): an OSD that
# stops answering fails requests instead of hanging them.
set -euo pipefail

top=$(cd "$(dirname "$0")/../.." && pwd)
dir=${SHUNT_CEPH_DIR:-$top/build/ceph-state}
timeout_s=${SHUNT_CEPH_TIMEOUT:-10}
pool=rbd
daemons=(mon.a mgr.x osd.0)

die() { echo "ceph cluster: $*" >&2; exit 1; }

env_lines() {
  echo "export CEPH_CONF=$dir/ceph.conf"
  echo "export SHUNT_CEPH_POOL=$pool"
}

# alive NAME: the daemon's pid file names a running ceph process.
alive() {
  local pid
  pid=$(cat "$dir/run/$1.pid" 2>/dev/null) || return 1
  [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null && grep -q ceph "/proc/$pid/comm" 2>/dev/null
}

all_alive() {
  local d
  for d in "${daemons[@]}"; do alive "$d" || return 1; done
}

# wait_for SECONDS WHAT COMMAND...: retry COMMAND until it succeeds, or fail naming WHAT.
wait_for() {
  local secs=$1 what=$2 i
  shift 2
  for ((i = 0; i < secs * 2; i++)); do
    "$@" >/dev/null 2>&1 && return 0
    sleep 0.5
  done
  die "$what did not happen within $secs s (logs in $dir/log)"
}

free_port() {
  local p
  while :; do
    p=$((40000 + RANDOM % 20000))
    ss -Htan "sport = :$p" | grep -q . || { echo "$p"; return; }
  done
}

write_conf() {
  local port=$1 fsid=$2
  cat >"$dir/ceph.conf" <<EOF
[global]
fsid = $fsid
mon host = v2:127.0.0.1:$port
mon initial members = a
ms bind msgr1 = false
ms bind ipv4 = true
ms bind ipv6 = false
public network = 127.0.0.0/8
auth cluster required = none
auth service required = none
auth client required = none
auth allow insecure global id reclaim = false
run dir = $dir/run
admin socket = $dir/run/\$cluster-\$name.asok
pid file = $dir/run/\$name.pid
log file = $dir/log/\$cluster-\$name.log
log to stderr = false
err to stderr = true
crash dir = $dir/crash
mon data = $dir/mon/\$cluster-\$id
mgr data = $dir/mgr/\$cluster-\$id
osd data = $dir/osd/\$cluster-\$id
keyring = $dir/keyring
osd objectstore = memstore
memstore device bytes = 1073741824
osd pool default size = 1
osd pool default min size = 1
osd pool default pg autoscale mode = off
osd crush chooseleaf type = 0
osd crush update on start = false
mon allow pool size one = true
mon allow pool delete = true
mon warn on pool no redundancy = false
mon data avail warn = 1
mon data avail crit = 0
mon osd full ratio = .99
mon osd nearfull ratio = .98
osd failsafe full ratio = .995
osd memory target = 268435456
osd op num shards = 1
osd op num threads per shard = 2
mgr initial modules =
rados osd op timeout = $timeout_s
rados mon op timeout = $timeout_s
client mount timeout = $timeout_s
rbd cache = false

[client]
# Clients (shunt, rbd, qemu, fio) are many processes: no shared admin socket or log.
admin socket =
log file =
EOF
}

do_start() {
  if all_alive; then
    env_lines
    return 0
  fi
  [ "$(id -u)" -eq 0 ] || die "needs root"
  for c in ceph-mon ceph-mgr ceph-osd ceph monmaptool ceph-authtool rbd; do
    command -v "$c" >/dev/null || die "$c not installed (scripts/deps.sh ceph)"
  done
  # A partly running cluster (a daemon died) is rebuilt from scratch.
  do_stop
  mkdir -p "$dir"/{run,log,crash,mon,mgr/ceph-x,osd/ceph-0}
  local port fsid uuid
  port=$(free_port)
  fsid=$(cat /proc/sys/kernel/random/uuid)
  uuid=$(cat /proc/sys/kernel/random/uuid)
  write_conf "$port" "$fsid"
  local c=(-c "$dir/ceph.conf")
  ceph-authtool --create-keyring "$dir/keyring" --gen-key -n mon. --cap mon 'allow *' >/dev/null
  ceph-authtool "$dir/keyring" --gen-key -n client.admin --cap mon 'allow *' --cap osd 'allow *' \
    --cap mgr 'allow *' >/dev/null
  monmaptool --create --fsid "$fsid" --addv a "[v2:127.0.0.1:$port]" "$dir/monmap" >/dev/null
  ceph-mon "${c[@]}" --mkfs -i a --monmap "$dir/monmap" --keyring "$dir/keyring" \
    >"$dir/log/mkfs-mon.log" 2>&1 || die "ceph-mon --mkfs failed (see $dir/log/mkfs-mon.log)"
  ceph-mon "${c[@]}" -i a >>"$dir/log/start.log" 2>&1 || die "ceph-mon did not start (see $dir/log)"
  wait_for 30 "the monitor answering on 127.0.0.1:$port" \
    timeout 10 ceph "${c[@]}" mon stat
  ceph-mgr "${c[@]}" -i x >>"$dir/log/start.log" 2>&1 || die "ceph-mgr did not start (see $dir/log)"
  timeout 20 ceph "${c[@]}" osd new "$uuid" 0 >/dev/null || die "ceph osd new failed"
  ceph-osd "${c[@]}" -i 0 --mkfs --osd-uuid "$uuid" >"$dir/log/mkfs-osd.log" 2>&1 \
    || die "ceph-osd --mkfs failed (see $dir/log/mkfs-osd.log)"
  timeout 20 ceph "${c[@]}" osd crush add osd.0 1.0 root=default >/dev/null 2>&1 \
    || die "ceph osd crush add failed"
  ceph-osd "${c[@]}" -i 0 >>"$dir/log/start.log" 2>&1 || die "ceph-osd did not start (see $dir/log)"
  wait_for 60 "osd.0 coming up" sh -c "timeout 10 ceph -c '$dir/ceph.conf' osd dump | grep -q '^osd.0 up'"
  timeout 20 ceph "${c[@]}" osd pool create "$pool" 8 8 >/dev/null 2>&1 || die "creating pool $pool failed"
  timeout 20 ceph "${c[@]}" osd pool set "$pool" size 1 --yes-i-really-mean-it >/dev/null 2>&1 || true
  timeout 20 ceph "${c[@]}" osd pool application enable "$pool" rbd >/dev/null 2>&1 || true
  # Ready when an object write goes through (the placement groups are active).
  wait_for 60 "a write to pool $pool" timeout 10 rados "${c[@]}" -p "$pool" put .probe /dev/null
  timeout 20 rbd "${c[@]}" pool init "$pool" >/dev/null 2>&1 || true
  all_alive || die "a daemon exited during start (see $dir/log)"
  env_lines
}

# stop_pid NAME: SIGTERM the daemon, wait at most 10 s, then SIGKILL it.
stop_pid() {
  local pid i
  pid=$(cat "$dir/run/$1.pid" 2>/dev/null) || return 0
  if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null && grep -q ceph "/proc/$pid/comm" 2>/dev/null; then
    kill -CONT "$pid" 2>/dev/null || true   # a test may have left it stopped
    kill -TERM "$pid" 2>/dev/null || true
    for ((i = 0; i < 100; i++)); do
      kill -0 "$pid" 2>/dev/null || break
      sleep 0.1
    done
    kill -KILL "$pid" 2>/dev/null || true
  fi
  rm -f "$dir/run/$1.pid"
}

do_stop() {
  local d
  for d in osd.0 mgr.x mon.a; do stop_pid "$d"; done
  rm -rf "$dir"/{run,mon,mgr,osd,crash,ceph.conf,keyring,monmap}
}

case "${1:-}" in
  start|stop)
    mkdir -p "$dir"
    exec 9>"$dir/lock"
    flock -w 300 9 || die "another start or stop held $dir/lock for 300 s"
    "do_$1" 9>&-   # the daemons must not inherit the lock
    ;;
  status) all_alive ;;
  env) env_lines ;;
  *) echo "usage: $0 start|stop|status|env" >&2; exit 2 ;;
esac
