#!/usr/bin/env bash
# Install the Debian packages shunt needs to build, test and benchmark.
# Idempotent: only packages that are missing are installed.
# Usage: scripts/deps.sh [build|test|bench|vm|ceph|format|all]   (default: all)
# build: what building and serving need (`make run`); test: that and what
# `make check` needs; ceph: a one-node Ceph cluster for the rbd tests and
# bench/rbd (tests/ceph/cluster.sh); all: test, the VM tier and ceph.
set -euo pipefail

build_pkgs=(build-essential pkg-config meson ninja-build liburing-dev libgnutls28-dev
            libfuse3-dev librbd-dev librados-dev)
test_pkgs=(clang libclang-rt-14-dev   # the libFuzzer harnesses (tests/fuzz)
           qemu-utils nbdkit libnbd-bin python3-libnbd nbd-server fio gnutls-bin
           xxd procps iproute2 util-linux e2fsprogs)
test_pkgs+=(libfuse3-dev fuse3 dmsetup)  # tests/tools/eiofs; faults_backend.sh; shunt fuse
test_pkgs+=(groff-base)   # man_pages.sh renders the man pages
test_pkgs+=(qemu-system-common)  # qemu-storage-daemon: tests/interop/vhostfe_qsd.sh
test_pkgs+=(curl python3-prometheus-client)  # metrics.sh: GET /metrics, parsed as Prometheus does
test_pkgs+=(qemu-system-x86)     # tests/interop/vhost_qemu_boot.sh boots a TCG machine
bench_pkgs=(iperf3 fio python3 gcc)
format_pkgs=(clang-format)   # make format
# ceph-mon/mgr/osd: the daemons of tests/ceph/cluster.sh; ceph-common: ceph, rbd,
# rados; qemu-block-extra: qemu's rbd driver (qemu-io/qemu-img/qemu-nbd rbd:...).
ceph_pkgs=(ceph-mon ceph-mgr ceph-osd ceph-common qemu-block-extra)
vm_pkgs=(qemu-system-x86 busybox-static linux-image-amd64 cpio kmod nbd-client nbdkit e2fsprogs
         ocfs2-tools)   # tests/vm/ocfs2_two.sh

# SHUNT_DEPS_LOG=FILE: append the set asked for to FILE (a test checks that
# `make run` asks for the build set only).
[ -n "${SHUNT_DEPS_LOG:-}" ] && echo "${1:-all}" >>"$SHUNT_DEPS_LOG"

want=()
case "${1:-all}" in
  build) want=("${build_pkgs[@]}") ;;
  test)  want=("${build_pkgs[@]}" "${test_pkgs[@]}") ;;
  bench) want=("${build_pkgs[@]}" "${test_pkgs[@]}" "${bench_pkgs[@]}") ;;
  vm)    want=("${vm_pkgs[@]}") ;;
  ceph)  want=("${ceph_pkgs[@]}") ;;
  format) want=("${format_pkgs[@]}") ;;
  all)   want=("${build_pkgs[@]}" "${test_pkgs[@]}" "${vm_pkgs[@]}" "${ceph_pkgs[@]}") ;;
  *) echo "usage: $0 [build|test|bench|vm|ceph|format|all]" >&2; exit 2 ;;
esac

missing=()
for p in "${want[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed'; then
    missing+=("$p")
  fi
done
[ ${#missing[@]} -eq 0 ] && exit 0

echo "deps: installing ${missing[*]}" >&2
if [ "$(id -u)" -ne 0 ]; then
  echo "deps: not root; install these packages and retry: ${missing[*]}" >&2
  exit 1
fi
export DEBIAN_FRONTEND=noninteractive
# Refresh the package lists once per day at most (a fresh machine has none).
stamp=/var/lib/apt/periodic/shunt-update-stamp
if [ ! -e "$stamp" ] || [ -n "$(find "$stamp" -mmin +1440 2>/dev/null)" ]; then
  apt-get update -qq
  mkdir -p "$(dirname "$stamp")" && touch "$stamp"
fi
apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
