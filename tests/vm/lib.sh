# tests/vm/lib.sh: boot Debian's kernel under qemu (TCG) with a busybox initramfs and
# run a guest test script in it. Source it after nothing else: it sources ../lib.sh.
#
#   vm_require                       skip the whole test (TAP) when qemu cannot run here
#   vm_boot NAME SCRIPT [VAR=V...]   boot a guest running SCRIPT; wait until it powers off
#   vm_start / vm_wait NAME          the same in two halves (guests in parallel)
#   vm_wait_mark NAME MARK [SECS]    wait until the guest ran `g_mark MARK`
#   vm_send NAME WORD                the guest's `g_wait_host WORD` returns
#   vm_report NAME                   turn the guest's results into TAP lines here
#                                    (VM_REPORT_KILLED=1: the host killed it on purpose)
#   vm_vhost_require                 fail the test (TAP) when the vhost-user backend is missing
#   vm_vhost_start SPEC...           start the vhost-user-blk backend for SOCK=IMG[,OPT]...
#   vm_vhost_kill                    SIGKILL that backend (and reap it)
#   vm_vhost_stop                    SIGTERM it; its exit status (124 if it had to be killed)
#   vm_vhost_stats                   its --stats counters (data path, bytes copied) as comments
#   vm_vhost_blk_verify NAME IMG PAT the host's own reading of a disk guest/vhost_blk.sh wrote
#
# Guests get vhost-user-blk disks from the sockets of VM_VHOST_SOCKS (in that order: vda,
# vdb, ...), VM_VHOST_QUEUES queues each (one number per socket, or one for all), and
# with VM_VHOST_RECONNECT=SECS qemu reconnects to a backend that went away. Their memory
# is then a shared memfd (the backend maps it). VM_SMP sets the number of vCPUs (a guest
# uses at most one virtio-blk queue per vCPU). The backend is `shunt vhost` ($SHUNT), or
# qemu-storage-daemon's vhost-user-blk export with SHUNT_VHOST_BACKEND=qsd;
# SHUNT_VHOST_OPTS (e.g. datapath=copy) is appended to every device of `shunt vhost`.
#
# The initramfs is busybox-static, the kernel modules of VM_MODULES (with their
# dependencies), e2fsprogs, GNU dd, nbd-client and their libraries; it is cached under
# tests/vm/cache/. Per boot, a second small cpio with the script, its variables and the
# binaries of VM_EXTRA_BINS (e.g. "$SHUNT") and the files of VM_EXTRA_FILES (as
# /data/BASENAME) and the kernel modules of VM_EXTRA_MODULES (with the dependencies the
# base lacks; guest/init loads them too) is appended. VM_QEMU_ARGS is appended to qemu's
# command line (words split on blanks: e.g. a second NIC). Guests report on ttyS1
# (results) and ttyS0 (console log, kept in $T/NAME.console).
. "$(dirname "${BASH_SOURCE[0]}")/../lib.sh"

VM_DIR=$SHUNT_TOP/tests/vm
VM_CACHE=${SHUNT_VM_CACHE:-$VM_DIR/cache}
VM_TIMEOUT=${SHUNT_VM_TIMEOUT:-150}   # seconds per guest, boot included (TCG, busy host)
VM_MEM=${SHUNT_VM_MEM:-384}
VM_KVER=${SHUNT_VM_KVER:-$(ls /lib/modules 2>/dev/null | grep -E '^[0-9].*-amd64$' | sort -V | tail -n 1)}
VM_KERNEL=/boot/vmlinuz-$VM_KVER
VM_MODDIR=/lib/modules/$VM_KVER
# Load order matters only through dependencies, which modules.dep supplies.
VM_MODULES=${VM_MODULES:-"virtio_ring virtio virtio_pci_modern_dev virtio_pci_legacy_dev virtio_pci
  failover net_failover virtio_net virtio_blk nbd crc16 crc32c_generic mbcache jbd2 ext4"}
# Host programs every guest gets (with their libraries); called by full path in scripts.
VM_BASE_BINS=${VM_BASE_BINS:-"/usr/sbin/mke2fs /usr/sbin/mkfs.ext4 /usr/sbin/e2fsck /usr/bin/dd
  /usr/sbin/nbd-client /usr/bin/cmp /usr/sbin/blkdiscard"}
VM_EXTRA_BINS=${VM_EXTRA_BINS:-}
VM_EXTRA_FILES=${VM_EXTRA_FILES:-}
VM_EXTRA_MODULES=${VM_EXTRA_MODULES:-}
VM_QEMU_ARGS=${VM_QEMU_ARGS:-}
VM_SMP=${VM_SMP:-1}
VM_VHOST_SOCKS=${VM_VHOST_SOCKS:-}
VM_VHOST_QUEUES=${VM_VHOST_QUEUES:-1}
VM_VHOST_RECONNECT=${VM_VHOST_RECONNECT:-}
VM_VHOST_BACKEND=${SHUNT_VHOST_BACKEND:-shunt}
_vm_pids=()

# vm_require: print a SKIP and exit 0 when qemu cannot boot a guest here at all.
vm_require() {
  local why=
  "$SHUNT_TOP/scripts/deps.sh" vm >/dev/null 2>&1 || why="scripts/deps.sh vm failed (packages missing, not root?)"
  [ -z "$why" ] && ! command -v qemu-system-x86_64 >/dev/null && why="qemu-system-x86_64 not installed"
  [ -z "$why" ] && [ -z "$VM_KVER" ] && why="no Debian -amd64 kernel modules under /lib/modules"
  [ -z "$why" ] && [ ! -r "$VM_KERNEL" ] && why="kernel image $VM_KERNEL not readable"
  [ -z "$why" ] && [ ! -x /bin/busybox ] && why="busybox-static not installed"
  [ -z "$why" ] && ! qemu-system-x86_64 -machine help 2>/dev/null | grep -q '^pc ' \
    && why="qemu-system-x86_64 does not run here"
  if [ -n "$why" ]; then
    tap_skip "VM tier ($(basename "$0"))" "$why"
    tap_done
    exit 0
  fi
}

# _vm_mod_paths NAME...: the module files (relative to VM_MODDIR) in load order.
_vm_mod_paths() {
  local -A seen=()
  local out=() n
  _vm_visit() {
    local p=$1 d deps
    [ -n "${seen[$p]:-}" ] && return 0
    seen[$p]=1
    deps=$(grep -m1 "^$p:" "$VM_MODDIR/modules.dep" | cut -d: -f2)
    local arr=($deps) i
    for ((i = ${#arr[@]} - 1; i >= 0; i--)); do _vm_visit "${arr[$i]}"; done
    out+=("$p")
  }
  for n in "$@"; do
    local p
    p=$(grep -m1 -E "(^|/)$n\.ko(\.xz|\.zst|\.gz)?:" "$VM_MODDIR/modules.dep" | cut -d: -f1)
    [ -n "$p" ] || { echo "vm: module $n not found in $VM_MODDIR/modules.dep" >&2; return 1; }
    _vm_visit "$p"
  done
  printf '%s\n' "${out[@]}"
}

# _vm_copy_bin ROOT FILE: copy FILE and the shared libraries it needs under ROOT.
_vm_copy_bin() {
  local root=$1 f=$2 lib
  mkdir -p "$root$(dirname "$f")"
  cp -L "$f" "$root$f"
  for lib in $(ldd "$f" 2>/dev/null | grep -oE '/[^ ]+\.so[^ ]*' | sort -u); do
    [ -e "$root$lib" ] && continue
    mkdir -p "$root$(dirname "$lib")"
    cp -L "$lib" "$root$lib"
  done
}

# _vm_cpio DIR OUT: pack DIR as a newc archive.
_vm_cpio() { (cd "$1" && find . -mindepth 1 | LC_ALL=C sort | cpio -o -H newc --quiet) >"$2"; }

# _vm_base: print the path of the cached base initramfs, building it when missing.
_vm_base() {
  local mods key out stage m f
  mods=$(_vm_mod_paths $VM_MODULES) || return 1
  key=$( { echo "$VM_KVER"; echo "$mods"; cat "$VM_DIR/guest/init" "$VM_DIR/guest/vmtest.sh";
           for f in /bin/busybox $VM_BASE_BINS; do stat -L -c '%n %s %Y' "$f"; done; } \
         | sha256sum | cut -c1-16)
  out=$VM_CACHE/base-$key.cpio
  [ -s "$out" ] && { echo "$out"; return 0; }
  mkdir -p "$VM_CACHE"
  # Two tests (parallel lanes) may both find it missing: one builds, the other waits for it.
  local lock
  exec {lock}>"$VM_CACHE/.build.lock"
  flock "$lock"
  if [ -s "$out" ]; then exec {lock}>&-; echo "$out"; return 0; fi
  stage=$(mktemp -d "$VM_CACHE/.stage.XXXXXX")
  mkdir -p "$stage"/{bin,sbin,usr/bin,usr/sbin,lib/modules,etc,proc,sys,dev,tmp,mnt,root}
  cp /bin/busybox "$stage/bin/busybox"
  for f in $(/bin/busybox --list-full); do
    [ -e "$stage/$f" ] || ln -s /bin/busybox "$stage/$f"
  done
  for f in $VM_BASE_BINS; do
    [ -e "$f" ] || { echo "vm: $f missing on the host" >&2; rm -rf "$stage"; exec {lock}>&-; return 1; }
    rm -f "$stage$f"
    _vm_copy_bin "$stage" "$f"
  done
  : >"$stage/etc/vm-modules"
  for m in $mods; do
    mkdir -p "$stage/lib/modules/$(dirname "$m")"
    case $m in
      *.xz) xz -dc "$VM_MODDIR/$m" >"$stage/lib/modules/${m%.xz}"; m=${m%.xz} ;;
      *.zst) zstd -qdc "$VM_MODDIR/$m" >"$stage/lib/modules/${m%.zst}"; m=${m%.zst} ;;
      *) cp "$VM_MODDIR/$m" "$stage/lib/modules/$m" ;;
    esac
    echo "$m" >>"$stage/etc/vm-modules"
  done
  cp "$VM_DIR/guest/init" "$stage/init" && chmod 755 "$stage/init"
  cp "$VM_DIR/guest/vmtest.sh" "$stage/lib/vmtest.sh"
  _vm_cpio "$stage" "$stage.cpio" || { rm -rf "$stage" "$stage.cpio"; exec {lock}>&-; return 1; }
  rm -rf "$stage"
  rm -f "$VM_CACHE"/base-*.cpio
  mv "$stage.cpio" "$out"   # atomic: a concurrent run sees all or nothing
  exec {lock}>&-
  echo "$out"
}

# _vm_extra_modules ROOT: stage the modules of VM_EXTRA_MODULES, with their dependencies
# that the base initramfs lacks, under ROOT/lib/modules and list them in load order in
# ROOT/etc/vm-modules.extra (guest/init loads them after the base ones).
_vm_extra_modules() {
  local root=$1 base mods m
  [ -n "$VM_EXTRA_MODULES" ] || return 0
  base=$(_vm_mod_paths $VM_MODULES) || return 1
  mods=$(_vm_mod_paths $VM_EXTRA_MODULES) || return 1
  mkdir -p "$root/etc"
  : >"$root/etc/vm-modules.extra"
  for m in $mods; do
    grep -qxF "$m" <<<"$base" && continue
    mkdir -p "$root/lib/modules/$(dirname "$m")"
    case $m in
      *.xz) xz -dc "$VM_MODDIR/$m" >"$root/lib/modules/${m%.xz}"; m=${m%.xz} ;;
      *.zst) zstd -qdc "$VM_MODDIR/$m" >"$root/lib/modules/${m%.zst}"; m=${m%.zst} ;;
      *) cp "$VM_MODDIR/$m" "$root/lib/modules/$m" ;;
    esac
    echo "$m" >>"$root/etc/vm-modules.extra"
  done
}

# vm_start NAME SCRIPT [VAR=VALUE...]: boot a guest in the background that runs SCRIPT
# (a busybox sh script, sourced after /lib/vmtest.sh) with the VARs set.
vm_start() {
  local name=$1 script=$2 base extra kv; shift 2
  base=$(_vm_base) || { tap_fail "$name: build the initramfs"; return 1; }
  extra=$T/$name.extra
  rm -rf "$extra"; mkdir -p "$extra"
  cp "$script" "$extra/test.sh"
  : >"$extra/test.env"
  for kv in "$@"; do printf 'export %s=%q\n' "${kv%%=*}" "${kv#*=}" >>"$extra/test.env"; done
  for kv in $VM_EXTRA_BINS; do _vm_copy_bin "$extra" "$kv"; done
  _vm_extra_modules "$extra" || { tap_fail "$name: stage VM_EXTRA_MODULES ($VM_EXTRA_MODULES)"; return 1; }
  mkdir -p "$extra/data"
  for kv in $VM_EXTRA_FILES; do cp "$kv" "$extra/data/"; done
  _vm_cpio "$extra" "$T/$name.extra.cpio"
  cat "$base" "$T/$name.extra.cpio" >"$T/$name.initrd"
  : >"$T/$name.results"; : >"$T/$name.console"
  rm -f "$T/$name.ctl.in" "$T/$name.ctl.out"
  mkfifo "$T/$name.ctl.in" "$T/$name.ctl.out"
  local vhost=()
  _vm_vhost_args vhost "$name"
  date +%s.%N >"$T/$name.t0"
  timeout --kill-after=5 "$VM_TIMEOUT" qemu-system-x86_64 \
    -machine pc,accel=tcg -m "$VM_MEM" -smp "$VM_SMP" \
    -nodefaults -no-user-config -display none -no-reboot \
    -kernel "$VM_KERNEL" -initrd "$T/$name.initrd" \
    -append "console=ttyS0 panic=-1 loglevel=5 mitigations=off i8042.noaux i8042.nokbd tsc=reliable no_timer_check" \
    -serial "file:$T/$name.console" -serial "file:$T/$name.results" \
    -chardev "pipe,id=ctl,path=$T/$name.ctl" -serial chardev:ctl \
    -netdev user,id=n0 -device virtio-net-pci,netdev=n0 "${vhost[@]}" $VM_QEMU_ARGS \
    >"$T/$name.qemu.log" 2>&1 &
  eval "_vm_pid_$name=$!"
  _cleanup_pids+=("$!")
}

# vm_wait NAME: wait until the guest NAME has powered off (or timed out); record times.
vm_wait() {
  local name=$1 pid rc
  eval "pid=\${_vm_pid_$name}"
  wait "$pid"; rc=$?
  echo "$rc" >"$T/$name.rc"
  date +%s.%N >"$T/$name.t1"
  return 0
}

vm_boot() { vm_start "$@" && vm_wait "$1"; }

# _vm_vhost_args ARRAY NAME: append to ARRAY qemu's arguments for the vhost-user-blk disks
# of VM_VHOST_SOCKS (none when it is empty) of guest NAME.
_vm_vhost_args() {
  local -n _a=$1
  local socks=($VM_VHOST_SOCKS) queues=($VM_VHOST_QUEUES) i q chr
  [ ${#socks[@]} = 0 ] && return 0
  # vhost-user needs the guest's RAM in memory the backend can map: a shared memfd.
  _a+=(-object "memory-backend-memfd,id=mem-$2,size=${VM_MEM}M,share=on" -numa "node,memdev=mem-$2")
  for ((i = 0; i < ${#socks[@]}; i++)); do
    q=${queues[$i]:-${queues[0]}}
    chr="socket,id=vu$i,path=${socks[$i]}"
    [ -n "$VM_VHOST_RECONNECT" ] && chr+=",reconnect=$VM_VHOST_RECONNECT"
    _a+=(-chardev "$chr" -device "vhost-user-blk-pci,chardev=vu$i,num-queues=$q")
  done
}

# vm_vhost_require: skip the whole test when qemu has no vhost-user-blk-pci device; fail it
# (TAP) when the chosen backend cannot run: `shunt vhost` missing is a failure, not a
# skip, since it is the code under test.
vm_vhost_require() {
  local why=
  if ! qemu-system-x86_64 -device help 2>/dev/null | grep -q '"vhost-user-blk-pci"'; then
    tap_skip "vhost-user-blk guests ($(basename "$0"))" "this qemu has no vhost-user-blk-pci device"
    tap_done
    exit 0
  fi
  case $VM_VHOST_BACKEND in
    shunt) "$SHUNT" vhost --help >/dev/null 2>&1 || why="$SHUNT vhost --help fails (no vhost command?)" ;;
    qsd) command -v qemu-storage-daemon >/dev/null || why="qemu-storage-daemon not installed" ;;
    *) why="SHUNT_VHOST_BACKEND=$VM_VHOST_BACKEND is neither shunt nor qsd" ;;
  esac
  if [ -n "$why" ]; then
    tap_fail "vhost-user backend $VM_VHOST_BACKEND: $why"
    tap_done
    exit 1
  fi
  echo "# vhost-user backend: $VM_VHOST_BACKEND"
}

# _vm_vhost_cmd ARRAY SPEC...: the backend's command line serving every SPEC (see
# vm_vhost_start).
_vm_vhost_cmd() {
  local -n _c=$1
  local spec sock img opts o q ro w i=0
  shift
  case $VM_VHOST_BACKEND in
    shunt) _c=("$SHUNT" vhost --stats "$T/vhost-stats.json")
           for spec in "$@"; do _c+=("$spec${SHUNT_VHOST_OPTS:+,$SHUNT_VHOST_OPTS}"); done
           return 0 ;;
  esac
  # qemu-storage-daemon: queues= and ro are translated, an nbd://HOST:PORT/EXPORT source
  # becomes its nbd driver; it has no serial (GET_ID answers a fixed text).
  _c=(qemu-storage-daemon)
  for spec in "$@"; do
    sock=${spec%%=*} img=${spec#*=} q=1 ro=off w=on
    opts=${img#*,}; [ "$opts" = "$img" ] && opts=
    img=${img%%,*}
    for o in ${opts//,/ }; do
      case $o in queues=*) q=${o#queues=} ;; ro) ro=on w=off ;; esac
    done
    case $img in
      nbd://*)   # nbd://HOST:PORT/EXPORT
        local hp=${img#nbd://} exp=${img#nbd://*/}
        hp=${hp%%/*}
        _c+=(--blockdev "driver=nbd,node-name=f$i,server.type=inet,server.host=${hp%:*},server.port=${hp##*:},export=$exp,discard=unmap,read-only=$ro") ;;
      *) _c+=(--blockdev "driver=file,node-name=f$i,filename=$img,cache.direct=on,aio=io_uring,discard=unmap,read-only=$ro") ;;
    esac
    _c+=(--export "type=vhost-user-blk,id=e$i,node-name=f$i,addr.type=unix,addr.path=$sock,writable=$w,num-queues=$q")
    i=$((i + 1))
  done
}

# vm_vhost_start SPEC...: start one backend process serving each SPEC, in `shunt vhost`'s
# syntax SOCK=SOURCE[,queues=N][,ro][,serial=TEXT] (SOURCE a file or nbd://HOST:PORT/NAME),
# and wait until every SOCK is a socket it made (a stale one left by a killed backend does
# not count); sets VHOST_PID. The log goes to $T/vhost.log, the --stats of shunt vhost to
# $T/vhost-stats.json.
vm_vhost_start() {
  local cmd=() spec sock i old
  local -A before=()
  for spec in "$@"; do
    sock=${spec%%=*}
    before[$sock]=$(stat -c "%i %z" "$sock" 2>/dev/null)
  done
  _vm_vhost_cmd cmd "$@"
  echo "# vhost: ${cmd[*]}" >>"$T/vhost.log"
  "${cmd[@]}" >>"$T/vhost.log" 2>&1 &
  VHOST_PID=$!
  _cleanup_pids+=("$VHOST_PID")
  for spec in "$@"; do
    sock=${spec%%=*} old=${before[$sock]}
    for ((i = 0; i < 200; i++)); do
      [ -S "$sock" ] && [ "$(stat -c "%i %z" "$sock" 2>/dev/null)" != "$old" ] && break
      kill -0 "$VHOST_PID" 2>/dev/null || break
      sleep 0.05
    done
    if ! [ -S "$sock" ] || [ "$(stat -c "%i %z" "$sock" 2>/dev/null)" = "$old" ]; then
      echo "# vhost backend did not create $sock:"; tail -n 20 "$T/vhost.log" | sed 's/^/#   /'
      return 1
    fi
  done
}

# vm_vhost_stop [SECS]: SIGTERM the backend started last and wait at most SECS (default
# 20) for it; returns its exit status, or 124 after a SIGKILL.
vm_vhost_stop() { stop_within "$VHOST_PID" "${1:-20}" "# vhost backend"; }

# vm_vhost_stats: print, as TAP comments, what `shunt vhost --stats` counted per device
# (written at exit): the data path's bytes and what the backend's CPU copied.
vm_vhost_stats() {
  [ "$VM_VHOST_BACKEND" = shunt ] && [ -s "$T/vhost-stats.json" ] || return 0
  python3 - "$T/vhost-stats.json" <<'PY'
import json, sys
keys = ("requests", "bytes_by_path", "cpu_copied_bytes", "bounce_bytes", "mem_fixed_ios",
        "bad_requests", "broken_queues")
for d in json.load(open(sys.argv[1])).get("devices", []):
    print(f"# stats {d.get('socket')}: " + ", ".join(f"{k} {d[k]}" for k in keys if k in d))
PY
}

# vm_vhost_kill: SIGKILL the backend started last and reap it.
vm_vhost_kill() {
  kill -KILL "$VHOST_PID" 2>/dev/null
  wait "$VHOST_PID" 2>/dev/null
  return 0
}

# vm_send NAME WORD: send WORD to the guest's control port (ttyS2; see g_wait_host).
vm_send() { echo "$2" >"$T/$1.ctl.in"; }

# vm_wait_mark NAME MARK [SECS]: wait until the guest printed "g_mark MARK"; fails
# early when the guest is gone.
vm_wait_mark() {
  local i pid
  eval "pid=\${_vm_pid_$1}"
  for ((i = 0; i < ${3:-$VM_TIMEOUT} * 10; i++)); do
    tr -d '\r' <"$T/$1.results" | grep -qx "VMMARK $2" && return 0
    kill -0 "$pid" 2>/dev/null || return 1
    sleep 0.1
  done
  return 1
}

# vm_report NAME: one TAP line per guest result; a failure if the guest did not finish.
vm_report() {
  local name=$1 line total rc failed=0
  rc=$(cat "$T/$name.rc" 2>/dev/null || echo '?')
  total=$(awk -v a="$(cat "$T/$name.t0")" -v b="$(cat "$T/$name.t1")" 'BEGIN { printf "%.1f", b - a }')
  while IFS= read -r line; do
    line=${line%$'\r'}
    case $line in
      "VMTAP ok - "*) tap_ok "$name: ${line#VMTAP ok - }" ;;
      "VMTAP not ok - "*) tap_fail "$name: ${line#VMTAP not ok - }"; failed=1 ;;
      "VMNOTE "*) echo "# $name: ${line#VMNOTE }" ;;
    esac
  done <"$T/$name.results"
  if [ -n "${VM_REPORT_KILLED:-}" ]; then
    # The host killed it on purpose: its results up to then count, no end is expected.
    if tr -d '\r' <"$T/$name.results" | grep -q '^VMTAP end '; then
      tap_fail "$name: killed by the host before its script ended (it ended first)"; failed=1
    else
      tap_ok "$name: killed by the host before its script ended (${total}s)"
    fi
  elif tr -d '\r' <"$T/$name.results" | grep -q '^VMTAP end rc=0$'; then
    tap_ok "$name: guest ran its script to the end and powered off (${total}s)"
  else
    tap_fail "$name: guest ran its script to the end and powered off (qemu rc $rc after ${total}s; timeout ${VM_TIMEOUT}s)"
    failed=1
  fi
  if [ "$failed" = 1 ]; then
    echo "# --- last 80 console lines of $name ---"
    tr -d '\r' <"$T/$name.console" | tail -n 80 | sed 's/^/#   /'
    sed 's/^/#   qemu: /' "$T/$name.qemu.log" | tail -n 5
  fi
}

# The layout guest/vhost_blk.sh writes on each disk, in MiB (its variables): ext4 on
# [0, FS_MB), the O_DIRECT pattern at PAT_MB, a discarded range at DISC_MB, a zeroed one at
# ZERO_MB, each REGION_MB long. A disk needs at least 64 MiB.
VM_VHOST_BLK_LAYOUT=(FS_MB=40 PAT_MB=40 DISC_MB=48 ZERO_MB=56 REGION_MB=8)

# _vm_hole IMG OFF LEN: the byte range [OFF, OFF+LEN) of IMG holds no data (a hole).
_vm_hole() {
  python3 - "$@" <<'PY'
import errno, os, sys
fd = os.open(sys.argv[1], os.O_RDONLY)
off, n = int(sys.argv[2]), int(sys.argv[3])
try:
    d = os.lseek(fd, off, os.SEEK_DATA)
except OSError as e:
    sys.exit(0 if e.errno == errno.ENXIO else 1)
print(f"data at {d}, inside [{off}, {off + n})")
sys.exit(0 if d >= off + n else 1)
PY
}

# vm_vhost_blk_verify NAME IMG PAT: read the image IMG of guest/vhost_blk.sh's disk NAME on
# the host, with tools the guest did not use (the backend must have stopped): e2fsck, the
# 40 files' checksums through debugfs, the pattern PAT, the discarded range punched and
# the zeroed range zero. One TAP line each.
vm_vhost_blk_verify() {
  local n=$1 img=$2 pat=$3 "${VM_VHOST_BLK_LAYOUT[@]}"
  local r=$((REGION_MB << 20))
  tap_check "host $n: e2fsck -fn of the image is clean" e2fsck -fn "$img"
  rm -rf "$T/out-$n"; mkdir -p "$T/out-$n"
  debugfs -R "rdump /d $T/out-$n" "$img" >/dev/null 2>&1
  debugfs -R "cat /SUMS" "$img" 2>/dev/null >"$T/SUMS-$n"
  tap_check "host $n: the 40 files have the guest's checksums (debugfs)" \
    sh -c "test \$(wc -l <'$T/SUMS-$n') = 40 && cd '$T/out-$n/d' && md5sum -c --quiet '$T/SUMS-$n'"
  tap_check "host $n: the O_DIRECT pattern is in the image at $PAT_MB MiB" \
    cmp -i $((PAT_MB << 20)):0 -n $r "$img" "$pat"
  tap_check "host $n: the discarded range at $DISC_MB MiB is a hole" _vm_hole "$img" $((DISC_MB << 20)) $r
  tap_check "host $n: the zeroed range at $ZERO_MB MiB reads as zeroes" \
    cmp -i $((ZERO_MB << 20)):0 -n $r "$img" /dev/zero
}
