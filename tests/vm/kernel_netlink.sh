#!/usr/bin/env bash
# tests/vm/kernel_netlink.sh: tools/nbd-netlink.c against the kernel nbd driver in a
# guest: CONNECT (2 sockets, block size, flags, backend), STATUS, a link drop repaired
# with LINK_DEAD + RECONFIGURE under I/O, refusals, DISCONNECT. The server side is the
# in-guest fixture tests/vm/nbd_fixture.c (a memory disk on socketpairs).
. "$(dirname "$0")/lib.sh"
vm_require
FX=${SHUNT_BUILD:-$SHUNT_TOP/build}/tests/vm/nbd-fixture
[ -x "$FX" ] || { tap_fail "nbd-fixture built ($FX)"; tap_done; exit 1; }
VM_EXTRA_BINS=$FX vm_boot netlink "$VM_DIR/guest/kernel_netlink.sh" FX="$FX"
vm_report netlink
tap_done
