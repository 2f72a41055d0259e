#!/usr/bin/env bash
# tests/interop/layers.sh: the layer check (scripts/check-layers.sh) passes on the
# tree, and, in a scratch copy of src/, catches what it must: an upward include
# (named as file:line), server and client including each other, virtio and
# vhost out of their ranks, and an allowlist entry whose include is gone.
. "$(dirname "$0")/../lib.sh"
check=$SHUNT_TOP/scripts/check-layers.sh

if "$check" >"$T/out" 2>&1; then
  tap_ok "no file includes a layer above its own"
else
  tap_fail "no file includes a layer above its own"; sed 's/^/#   /' "$T/out"
fi

# A copy of src/ (sources and headers only) to break on purpose.
copy() {
  rm -rf "$T/src"
  (cd "$SHUNT_TOP" && find src -type f \( -name '*.c' -o -name '*.h' \) -print0 |
     xargs -0 cp --parents -t "$T") || exit 1
}

# The clean copy passes.
copy
tap_check "the check passes on a copy of src/" "$check" --src "$T/src"

# datapath including server/conn.h: fails and names the file and line.
copy
dp=$(cd "$T" && ls src/datapath/*.c | head -n 1)
printf '#include "server/conn.h"\n' >>"$T/$dp"
line=$(wc -l <"$T/$dp")
if "$check" --src "$T/src" >"$T/out" 2>&1; then
  tap_fail "src/datapath including server/conn.h fails the check"
else
  tap_ok "src/datapath including server/conn.h fails the check"
fi
if grep -qxF "$dp:$line: #include \"server/conn.h\" (datapath includes server)" "$T/out"; then
  tap_ok "the failure names $dp:$line and the include"
else
  tap_fail "the failure names $dp:$line and the include"; sed 's/^/#   /' "$T/out"
fi
[ "$(wc -l <"$T/out")" -eq 1 ] && tap_ok "only that include is reported" ||
  { tap_fail "only that include is reported"; sed 's/^/#   /' "$T/out"; }

# Other upward includes: proto including engine, common including proto.
copy
printf '#include "engine/engine.h"\n' >>"$T/src/proto/request.c"
printf '#include "proto/nbd-protocol.h"\n' >>"$T/src/common/log.c"
"$check" --src "$T/src" >"$T/out" 2>&1
rc=$?
[ $rc -ne 0 ] && grep -q '^src/proto/request.c:[0-9]*: #include "engine/engine.h"' "$T/out" &&
  grep -q '^src/common/log.c:[0-9]*: #include "proto/nbd-protocol.h"' "$T/out" &&
  tap_ok "proto including engine and common including proto both fail" ||
  { tap_fail "proto including engine and common including proto both fail"; sed 's/^/#   /' "$T/out"; }

# virtio (the vhost-user wire format, beside proto) includes neither the data
# paths nor proto; the vhost front end sits above server and client and below
# the tools.
copy
printf '#include "datapath/request.h"\n' >>"$T/src/virtio/vhost_user.c"
printf '#include "proto/nbd-protocol.h"\n' >>"$T/src/virtio/vhost_user.h"
"$check" --src "$T/src" >"$T/out" 2>&1
rc=$?
[ $rc -ne 0 ] && grep -q '^src/virtio/vhost_user.c:[0-9]*: #include "datapath/request.h" (virtio includes datapath)' "$T/out" &&
  grep -q '^src/virtio/vhost_user.h:[0-9]*: #include "proto/nbd-protocol.h" (virtio includes proto)' "$T/out" &&
  tap_ok "virtio including datapath or proto fails" ||
  { tap_fail "virtio including datapath or proto fails"; sed 's/^/#   /' "$T/out"; }
copy
mkdir -p "$T/src/vhost"
printf '#include "server/conn.h"\n#include "client/client.h"\n#include "virtio/vhost_user.h"\n' >"$T/src/vhost/device.c"
tap_check "vhost including server, client and virtio passes" "$check" --src "$T/src"
printf '#include "tools/commands.h"\n' >>"$T/src/vhost/device.c"
printf '#include "vhost/device.h"\n' >>"$T/src/server/conn.c"
"$check" --src "$T/src" >"$T/out" 2>&1
rc=$?
[ $rc -ne 0 ] && grep -q '^src/vhost/device.c:4: #include "tools/commands.h" (vhost includes tools)' "$T/out" &&
  grep -q '^src/server/conn.c:[0-9]*: #include "vhost/device.h" (server includes vhost)' "$T/out" &&
  tap_ok "vhost including tools and server including vhost fail" ||
  { tap_fail "vhost including tools and server including vhost fail"; sed 's/^/#   /' "$T/out"; }

# server and client are side by side: neither includes the other (nor libshunt's
# public header from the server).
copy
printf '#include "client/client.h"\n' >>"$T/src/server/listener.c"
printf '#include "server/conn.h"\n' >>"$T/src/client/iov.c"
printf '#include "shunt/shunt.h"\n' >>"$T/src/server/config.c"
"$check" --src "$T/src" >"$T/out" 2>&1
rc=$?
[ $rc -ne 0 ] && [ "$(grep -cE '^src/(server/listener|client/iov|server/config)\.c:' "$T/out")" -eq 3 ] &&
  tap_ok "server and client including each other fail" ||
  { tap_fail "server and client including each other fail"; sed 's/^/#   /' "$T/out"; }

# Downward includes and tools including anything stay allowed.
copy
printf '#include "common/log.h"\n' >>"$T/src/engine/engine.c"
printf '#include "server/conn.h"\n#include "client/client.h"\n' >>"$T/src/tools/info.c"
tap_check "downward includes and tools including server and client pass" "$check" --src "$T/src"

# An allowed include that is gone leaves a stale allowlist entry: that fails too.
copy
printf '# a comment\nsrc/engine/engine.c: server/conn.h\n' >"$T/allow"
"$check" --src "$T/src" --allow "$T/allow" >"$T/out" 2>&1
rc=$?
[ $rc -ne 0 ] && grep -q 'stale entry "src/engine/engine.c: server/conn.h"' "$T/out" &&
  tap_ok "an allowlist entry whose include is gone fails" ||
  { tap_fail "an allowlist entry whose include is gone fails"; sed 's/^/#   /' "$T/out"; }
# ...and a listed include passes.
printf '#include "server/conn.h"\n' >>"$T/src/engine/engine.c"
tap_check "an allowlisted include passes" "$check" --src "$T/src" --allow "$T/allow"

tap_done
