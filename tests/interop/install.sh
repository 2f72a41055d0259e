#!/usr/bin/env bash
# install.sh: `meson install --destdir` of the build under test puts the shunt
# binary, libshunt (shared and static), its header and pkg-config file and
# every man page (one per docs/man/*.pod) where the build's prefix, bindir,
# libdir, includedir and mandir say, plus everything else meson's install plan
# names; the installed binary runs, and a program builds against the installed
# header and library through the installed libshunt.pc and talks to a server.
. "$(dirname "$0")/../lib.sh"
need_deps

: "${SHUNT_BUILD:=$SHUNT_TOP/build}"
D=$T/dest
if meson install -C "$SHUNT_BUILD" --no-rebuild --destdir "$D" >"$T/install.log" 2>&1; then
  tap_ok "meson install --destdir into a scratch directory"
else
  tap_fail "meson install --destdir into a scratch directory"
  tail -n 20 "$T/install.log" | sed 's/^/#   /'
  tap_done; exit 1
fi

# The build's directories (absolute prefix, the others relative to it).
eval "$(meson introspect --buildoptions "$SHUNT_BUILD" | python3 -c '
import json, sys
o = {x["name"]: x["value"] for x in json.load(sys.stdin)}
for k in ("prefix", "bindir", "libdir", "includedir", "mandir", "docs", "b_sanitize"):
    print("%s=%s" % (k, o[k]))')"
P=$D$prefix
echo "# prefix $prefix, bindir $bindir, libdir $libdir, includedir $includedir, mandir $mandir"

expect() { # description path...
  local what=$1 f missing=(); shift
  for f in "$@"; do [ -e "$f" ] || missing+=("${f#$D}"); done
  if [ ${#missing[@]} -eq 0 ]; then tap_ok "$what: ${*#$D}"
  else tap_fail "$what; missing: ${missing[*]}"; fi
}
expect "the shunt binary" "$P/$bindir/shunt"
tap_check "the installed binary is executable and prints its version" \
  bash -c "'$P/$bindir/shunt' --version | grep -q '^shunt [0-9]'"
so=$(cd "$P/$libdir" 2>/dev/null && ls libshunt.so.*.*.* 2>/dev/null | head -n 1)
expect "libshunt, shared (with its soname link) and static" \
  "$P/$libdir/libshunt.so" "$P/$libdir/libshunt.so.${so#libshunt.so.}" "$P/$libdir/libshunt.a"
tap_check "libshunt.so.N links to the versioned library" \
  bash -c "[ -n '$so' ] && ls '$P/$libdir'/libshunt.so.[0-9] && [ -L '$P/$libdir/libshunt.so' ]"
expect "the public header" "$P/$includedir/shunt/shunt.h"
expect "the pkg-config file" "$P/$libdir/pkgconfig/libshunt.pc"
tap_check "the pkg-config module is named libshunt (no shunt.pc beside it)" \
  bash -c "[ ! -e '$P/$libdir/pkgconfig/shunt.pc' ] && grep -q '^Name: libshunt' '$P/$libdir/pkgconfig/libshunt.pc'"
tap_check "the installed libshunt.so exports only shunt_* symbols, each versioned LIBSHUNT_1.0" \
  bash -c "nm -D --defined-only '$P/$libdir/libshunt.so' | awk '\$3 != \"LIBSHUNT_1.0\" {print \$3}' >'$T/syms' && [ -s '$T/syms' ] && ! grep -v '^shunt_[a-z0-9_]*@@LIBSHUNT_1.0\$' '$T/syms'"

if [ "$docs" = disabled ]; then
  tap_skip "man pages installed" "$(basename "$SHUNT_BUILD") is configured with -Ddocs=disabled"
else
  pages=()
  for pod in "$SHUNT_TOP"/docs/man/*.pod; do
    p=$(basename "$pod" .pod)
    pages+=("$P/$mandir/man${p##*.}/$p")
  done
  expect "the man pages (${#pages[@]}, one per docs/man/*.pod)" "${pages[@]}"
fi

# Everything meson's install plan names is there (units and configs included).
meson introspect --installed "$SHUNT_BUILD" |
  python3 -c 'import json, sys; print("\n".join(json.load(sys.stdin).values()))' >"$T/plan"
missing=()
while read -r f; do [ -e "$D$f" ] || [ -L "$D$f" ] || missing+=("$f"); done <"$T/plan"
if [ -s "$T/plan" ] && [ ${#missing[@]} -eq 0 ]; then
  tap_ok "every one of the $(wc -l <"$T/plan") files of meson's install plan is installed"
else
  tap_fail "every file of meson's install plan is installed; missing: ${missing[*]:-the plan is empty}"
fi
echo "# installed:"
(cd "$D" && find . -type f -o -type l | sort | sed 's/^\./#   /')

# A program built against the installed files only: header and flags through
# the installed libshunt.pc, found first (PKG_CONFIG_SYSROOT_DIR prefixes the
# paths it gives with $D; gnutls, which it requires, comes from the system),
# linked with the installed shared library, run against a server.
export PKG_CONFIG_PATH=$P/$libdir/pkgconfig PKG_CONFIG_SYSROOT_DIR=$D
: >"$T/cc.err"
# A sanitized build's library needs its runtime in the program too.
san=
[ "$b_sanitize" != none ] && san=-fsanitize=$b_sanitize
if flags=$(pkg-config --cflags --libs libshunt 2>"$T/pc.err") &&
   cc -o "$T/example" "$SHUNT_TOP/docs/examples/shunt-example.c" $flags $san 2>"$T/cc.err"; then
  tap_ok "docs/examples/shunt-example.c builds with the installed libshunt.pc ($flags)"
else
  tap_fail "docs/examples/shunt-example.c builds with the installed libshunt.pc"
  cat "$T/pc.err" "$T/cc.err" | head -n 20 | sed 's/^/#   /'
fi
tap_check "pkg-config --modversion libshunt gives the library's version" \
  bash -c "pkg-config --modversion libshunt | grep -qE '^[0-9]+\.[0-9]+'"
unset PKG_CONFIG_PATH PKG_CONFIG_SYSROOT_DIR
if [ -x "$T/example" ]; then
  tap_check "the example links the installed libshunt.so" \
    bash -c "LD_LIBRARY_PATH='$P/$libdir' ldd '$T/example' | grep -q '$P/$libdir/libshunt.so'"
  start_shunt "disk=64M,backend=memory" || { tap_fail "shunt serve starts"; tap_done; exit 1; }
  tap_check "the example talks to shunt serve through the installed library" \
    env LD_LIBRARY_PATH="$P/$libdir" "$T/example" "nbd://127.0.0.1:$PORT/disk"
  tap_check "shunt serve stops cleanly" stop_shunt_within
fi
tap_finish
