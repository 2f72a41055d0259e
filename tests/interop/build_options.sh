#!/usr/bin/env bash
# build_options.sh: the smallest build still makes the shunt command: a fresh
# meson setup of this source tree with -Dfuse=disabled -Dtests=false (and
# -Dwerror=true, so code compiled out leaves no unused-function warning behind)
# in a scratch directory builds the binary, which runs and has no `fuse`
# command, and no test program. One full compile, without optimisation.
. "$(dirname "$0")/../lib.sh"
need_deps

B=$T/build-min
if meson setup "$B" "$SHUNT_TOP" -Dfuse=disabled -Dtests=false -Dwerror=true \
     -Dbuildtype=plain >"$T/setup.log" 2>&1; then
  tap_ok "meson setup -Dfuse=disabled -Dtests=false"
else
  tap_fail "meson setup -Dfuse=disabled -Dtests=false"
  tail -n 20 "$T/setup.log" | sed 's/^/#   /'; tap_done; exit 1
fi
if nice ninja -C "$B" -j 2 >"$T/ninja.log" 2>&1; then
  tap_ok "ninja builds it (-Werror)"
else
  tap_fail "ninja builds it (-Werror)"
  grep -E 'error|warning' "$T/ninja.log" | head -n 20 | sed 's/^/#   /'; tap_done; exit 1
fi
tap_check "the shunt binary runs: shunt --version" bash -c "'$B/shunt' --version | grep -q '^shunt [0-9]'"
tap_check "shunt serve works: --help" bash -c "'$B/shunt' serve --help | grep -q -- '--listen'"
tap_check "shunt --help lists no fuse command" bash -c "! '$B/shunt' --help | grep -q '^  fuse '"
tap_check "shunt fuse is an unknown command (exit 2)" bash -c "'$B/shunt' fuse x y 2>/dev/null; [ \$? = 2 ]"
tap_check "no test program was built" bash -c "[ ! -e '$B/tests' ] && [ \"\$(meson introspect --tests '$B')\" = '[]' ]"
tap_check "libshunt was built" bash -c "ls '$B'/src/client/lib/libshunt.so.* '$B/src/client/lib/libshunt.a'"
tap_done
