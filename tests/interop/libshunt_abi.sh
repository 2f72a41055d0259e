#!/usr/bin/env bash
# libshunt_abi.sh: the shared library's dynamic symbols are exactly the
# functions include/shunt/shunt.h declares, every one versioned with the node
# LIBSHUNT_1.0 of src/client/lib/libshunt.map (and nothing else exported: no
# internal sh_*, proto_* or common helper leaks into the ABI).
. "$(dirname "$0")/../lib.sh"
: "${SHUNT_BUILD:=$SHUNT_TOP/build}"
so=$SHUNT_BUILD/src/client/lib/libshunt.so

nm -D --defined-only "$so" >"$T/nm" 2>"$T/nm.err" || { tap_fail "nm -D $so: $(cat "$T/nm.err")"; tap_done; exit 1; }
# Declared functions: "type name(" at the start of a declaration in shunt.h.
grep -oE '^[a-z0-9_ ]+[ *]+(shunt_[a-z0-9_]+)\(' "$SHUNT_TOP/include/shunt/shunt.h" |
  sed -E 's/.*(shunt_[a-z0-9_]+)\($/\1/' | sort -u >"$T/declared"
awk '$3 != "LIBSHUNT_1.0" {print $3}' "$T/nm" >"$T/exported"

tap_check "libshunt.so exports only shunt_* symbols" \
  bash -c "! grep -v '^shunt_' '$T/exported' | grep -q ."
tap_check "every exported symbol carries the version node LIBSHUNT_1.0" \
  bash -c "! grep -v '@@LIBSHUNT_1.0\$' '$T/exported' | grep -q ."
tap_check "the only absolute symbol is the version node itself" \
  bash -c "[ \"\$(awk '\$2 == \"A\" {print \$3}' '$T/nm')\" = LIBSHUNT_1.0 ]"
sed 's/@@LIBSHUNT_1.0$//' "$T/exported" | sort -u >"$T/names"
echo "# $(wc -l <"$T/declared") functions declared, $(wc -l <"$T/names") exported"
if diff "$T/declared" "$T/names" >"$T/diff"; then
  tap_ok "the exported functions are exactly the ones shunt.h declares"
else
  tap_fail "exported functions differ from shunt.h's (< declared only, > exported only)"
  sed 's/^/#   /' "$T/diff"
fi
tap_check "the header compiles as C++ too (extern \"C\")" \
  bash -c "! command -v g++ >/dev/null || echo '#include <shunt/shunt.h>' | g++ -x c++ -fsyntax-only -I'$SHUNT_TOP/include' -"
tap_done
