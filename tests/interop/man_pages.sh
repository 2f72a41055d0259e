#!/usr/bin/env bash
# man_pages.sh: the man pages the build made from docs/man/*.pod (meson option
# docs) render without a groff warning, and cannot fall behind the program:
# every command `shunt --help` lists is described in shunt(1), every option a
# command's --help prints appears in that command's page (shunt-CMD(1) when
# there is one, else shunt(1)), every key the config parser accepts has an item
# in shunt.conf(5), and every function of include/shunt/shunt.h has one in
# libshunt(3).
. "$(dirname "$0")/../lib.sh"
need_deps

: "${SHUNT_BUILD:=$SHUNT_TOP/build}"
man=$SHUNT_BUILD/docs/man

# A build configured with -Ddocs=disabled has no pages: say so, check nothing.
docs_opt=$(meson introspect --buildoptions "$SHUNT_BUILD" 2>/dev/null |
  python3 -c 'import json,sys; print(next((o["value"] for o in json.load(sys.stdin) if o["name"] == "docs"), "?"))')
if [ "$docs_opt" = disabled ]; then
  tap_skip "man pages" "$(basename "$SHUNT_BUILD") is configured with -Ddocs=disabled"
  tap_done; exit
fi

# The pages there are: one per docs/man/NAME.N.pod.
pages=()
for pod in "$SHUNT_TOP"/docs/man/*.pod; do
  pages+=("$(basename "$pod" .pod)")
done
tap_check "docs/man holds the pages shunt.1, shunt-serve.1, shunt.conf.5, libshunt.3" \
  bash -c "cd '$SHUNT_TOP/docs/man' && ls shunt.1.pod shunt-serve.1.pod shunt.conf.5.pod libshunt.3.pod"

# render PAGE: the page as plain text (no hyphenation, no overstriking), so a
# search finds each word as a reader sees it.
render() {
  LC_ALL=C groff -man -Tascii -rHY=0 -P-c -P-b -P-u -P-o "$man/$1" 2>/dev/null
}

for p in "${pages[@]}"; do
  if [ ! -s "$man/$p" ]; then
    tap_fail "$p was built (docs=$docs_opt; is pod2man installed?)"
    continue
  fi
  # -ww: every groff warning; -z: no output, only the diagnostics.
  LC_ALL=C.UTF-8 groff -man -Tutf8 -ww -z "$man/$p" >"$T/warn" 2>&1
  if [ $? -eq 0 ] && [ ! -s "$T/warn" ]; then
    tap_ok "$p renders without warnings (groff -man -ww)"
  else
    tap_fail "$p renders without warnings (groff -man -ww)"
    sed 's/^/#   /' "$T/warn" | head -n 20
  fi
  render "$p" >"$T/$p.txt"
done

# check_options CMD PAGE: every long option in `shunt CMD --help`, every
# "-X, --long" pair of its option list and every short option without a long
# form appear in PAGE's text, as whole words.
check_options() {
  local cmd=$1 page=$2 help missing=() o n=0
  help=$("$SHUNT" "$cmd" --help 2>&1)
  [ -s "$T/$page.txt" ] || { tap_fail "shunt $cmd --help options in $page (no $page)"; return; }
  while read -r o; do
    [ -n "$o" ] || continue
    n=$((n + 1))
    grep -qE -- "(^|[^a-zA-Z0-9-])$o([^a-zA-Z0-9-]|\$)" "$T/$page.txt" || missing+=("$o")
  done < <(printf '%s\n' "$help" | grep -oE -- '--[a-z][a-z0-9-]*' | sort -u
           printf '%s\n' "$help" | grep -oE -- '^ +-[a-zA-Z], --[a-z][a-z0-9-]*' | sed 's/^ *//' | sort -u
           printf '%s\n' "$help" | grep -oE -- '^ +-[a-zA-Z] [A-Z]' | sed 's/^ *//; s/ .*//' | sort -u)
  if [ "$n" -eq 0 ] && [ "$cmd" != detach ]; then
    tap_fail "shunt $cmd --help prints options to look for"
  elif [ ${#missing[@]} -eq 0 ]; then
    tap_ok "$page names all $n options of shunt $cmd --help"
  else
    tap_fail "$page names every option of shunt $cmd --help; missing: ${missing[*]}"
  fi
}

commands=$("$SHUNT" --help | sed -n 's/^  \([a-z][a-z-]*\)  .*/\1/p')
[ -n "$commands" ] && tap_ok "shunt --help lists commands: $(echo $commands)" ||
  tap_fail "shunt --help lists commands"
for c in $commands; do
  if grep -qE "^ +shunt $c( |$)" "$T/shunt.1.txt"; then tap_ok "shunt(1) describes shunt $c"
  else tap_fail "shunt(1) describes shunt $c (a section starting 'shunt $c')"; fi
  page=shunt.1
  [ -e "$SHUNT_TOP/docs/man/shunt-$c.1.pod" ] && page=shunt-$c.1
  check_options "$c" "$page"
done

# shunt.conf(5): every key the server's config parser compares against is an
# item of the page (the built roff's .IP lines, bold: "\fBKEY" or "\fBKEY =").
keys=$(cat "$SHUNT_TOP"/src/server/*.c | grep -oE 'strcmp\(key, "[a-z-]+"\)' |
  sed 's/.*"\(.*\)".*/\1/' | sort -u)
nkeys=$(echo $keys | wc -w)
missing=()
sed 's/\\-/-/g' "$man/shunt.conf.5" >"$T/conf.roff" 2>/dev/null
for k in $keys; do
  grep -qE "^\.IP \".*\\\\fB$k( =)?\\\\fR" "$T/conf.roff" || missing+=("$k")
done
if [ "$nkeys" -lt 20 ]; then
  tap_fail "config keys found in src/server/*.c (only $nkeys: has the parser moved?)"
elif [ ${#missing[@]} -eq 0 ]; then
  tap_ok "shunt.conf.5 has an item for each of the $nkeys config keys"
else
  tap_fail "shunt.conf.5 has an item for every config key; missing: ${missing[*]}"
fi

# libshunt(3): every function declared in the public header.
funcs=$(grep -oE '\bshunt_[a-z_]+\(' "$SHUNT_TOP/include/shunt/shunt.h" | tr -d '(' | sort -u)
nfuncs=$(echo $funcs | wc -w)
missing=()
sed 's/\\-/-/g' "$man/libshunt.3" >"$T/lib.roff" 2>/dev/null
for f in $funcs; do
  grep -qE "^\.IP \".*\\\\fB$f\\\\fR\(" "$T/lib.roff" || missing+=("$f")
done
if [ "$nfuncs" -lt 30 ]; then
  tap_fail "functions found in shunt.h (only $nfuncs)"
elif [ ${#missing[@]} -eq 0 ]; then
  tap_ok "libshunt.3 has an item for each of the $nfuncs functions of shunt.h"
else
  tap_fail "libshunt.3 has an item for every function of shunt.h; missing: ${missing[*]}"
fi

# man(1) itself, where man-db is installed, shows each page without a warning.
if command -v man >/dev/null; then
  for p in "${pages[@]}"; do
    [ -s "$man/$p" ] || continue
    tap_check "man -l $p shows the page without warnings" bash -c \
      "LC_ALL=C.UTF-8 MANWIDTH=80 man --warnings -l '$man/$p' 2>&1 >/dev/null | grep . && exit 1
       LC_ALL=C.UTF-8 MANWIDTH=80 man -l '$man/$p' | grep -q '^NAME'"
  done
else
  tap_skip "man -l on each page" "man-db is not installed (groff checked them above)"
fi
tap_done
