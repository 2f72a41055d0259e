#!/bin/bash
# client_cli.sh: the command-line conventions every subcommand shares (-V, a
# mistyped option costs one line and a hint), the hints where a fix is
# known (an unknown export lists the names, a read-only file suggests ',ro',
# no kernel nbd driver suggests shunt fuse), shunt info's predicates and map
# types against nbdinfo's on the same server, and shunt copy with '-'.
. "$(dirname "$0")/../lib.sh"

for t in nbdinfo; do
  command -v $t >/dev/null || { tap_skip "client command line" "$t not installed"; tap_done; exit; }
done

# -V on every subcommand; a mistyped option on every subcommand.
for cmd in serve info copy bench attach detach list fuse; do
  out=$("$SHUNT" $cmd -V 2>&1); st=$?
  [ "$st" -eq 0 ] && [[ "$out" =~ ^shunt\ [0-9]+\.[0-9]+\.[0-9]+$ ]] && tap_ok "$cmd -V" || tap_fail "$cmd -V: status $st, '$out'"
  "$SHUNT" $cmd --no-such-option x y >"$T/typo" 2>&1; st=$?
  if [ "$st" -eq 2 ] && [ "$(wc -l <"$T/typo")" -eq 2 ] \
     && grep -qx "shunt: error: unknown option '--no-such-option'" "$T/typo" \
     && grep -qx "Try 'shunt $cmd --help' for more information." "$T/typo"; then
    tap_ok "$cmd: a mistyped option gets one line and the hint"
  else
    tap_fail "$cmd: a mistyped option: status $st"; sed 's/^/#   /' "$T/typo"
  fi
done
"$SHUNT" --version | grep -qx 'shunt [0-9.]*' && tap_ok "shunt --version" || tap_fail "shunt --version"

# One message prefix: every tool's error starts with "shunt: error: ".
"$SHUNT" copy "$T/absent" "$T/x" 2>"$T/p1"
"$SHUNT" info "nbd://127.0.0.1:1/" 2>"$T/p2"
tap_check "copy and info errors share the 'shunt: error: ' prefix" \
  bash -c "grep -q '^shunt: error: ' '$T/p1' && grep -q '^shunt: error: ' '$T/p2'"

truncate -s 16M "$T/rw.img"
printf 'data' | dd of="$T/rw.img" bs=1 seek=$((4 << 20)) conv=notrunc status=none
truncate -s 4M "$T/ro.img"
start_shunt_unix rw="$T/rw.img" ro="$T/ro.img,ro" mem=2M,backend=memory \
  || { tap_fail "server starts"; tap_done; exit 1; }
u() { printf 'nbd+unix:///%s?socket=%s' "$1" "$SOCK"; }

# An unknown export: the error lists the exports.
"$SHUNT" info "$(u nope)" >"$T/nope" 2>&1; st=$?
[ "$st" -eq 1 ] && tap_ok "unknown export: exit status 1" || tap_fail "unknown export: exit status $st"
tap_check "... the message lists the server's exports" grep -q "the server's exports: 'rw', 'ro', 'mem'" "$T/nope"
"$SHUNT" copy "$(u nope)" "$T/out" >"$T/nope2" 2>&1
tap_check "... in shunt copy too" grep -q "the server's exports: 'rw', 'ro', 'mem'" "$T/nope2"

# Predicates: the same exit status as nbdinfo for every export and question.
mismatch=0 n=0
for e in rw ro mem; do
  for q in "can cache" "can connect" "can df" "can fast-zero" "can flush" "can fua" "can multi-conn" \
           "can read" "can structured-reply" "can trim" "can write" "can zero" \
           "is read-only" "is rotational" "is tls"; do
    set -- $q
    nbdinfo --$1 $2 "$(u $e)" >/dev/null 2>&1; a=$?
    "$SHUNT" info --$1 $2 "$(u $e)" >/dev/null 2>&1; b=$?
    n=$((n + 1))
    [ "$a" -eq "$b" ] || { mismatch=$((mismatch + 1)); echo "# $e --$1 $2: nbdinfo $a, shunt info $b"; }
  done
  [ "$(nbdinfo --size "$(u $e)")" = "$("$SHUNT" info --size "$(u $e)")" ] \
    && tap_ok "info --size $e equals nbdinfo's" || tap_fail "info --size $e differs from nbdinfo's"
done
[ "$mismatch" -eq 0 ] && tap_ok "$n predicates: exit status as nbdinfo's (0 true, 2 false)" \
  || tap_fail "$mismatch of $n predicates differ from nbdinfo"
"$SHUNT" info --is read-only "$(u ro)"; st1=$?
"$SHUNT" info --is read-only "$(u rw)"; st2=$?
[ "$st1" -eq 0 ] && [ "$st2" -eq 2 ] && tap_ok "--is read-only: 0 on ro, 2 on rw" || tap_fail "--is read-only: $st1 / $st2"
"$SHUNT" info --can block-status "$(u rw)" && tap_ok "--can block-status on a file export" || tap_fail "--can block-status"
"$SHUNT" info --can teleport "$(u rw)" 2>/dev/null; st=$?
[ "$st" -eq 1 ] && tap_ok "an unknown predicate: exit status 1 (not 2, 'false')" || tap_fail "an unknown predicate: status $st"

# The map: types spelled as nbdinfo's.
nbdinfo --map "$(u rw)" | awk '{ print $1, $2, $3, $4 }' >"$T/map.nbdinfo"
"$SHUNT" info --map "$(u rw)" | awk '{ print $1, $2, $3, $4 }' >"$T/map.shunt"
tap_check "info --map equals nbdinfo --map (offsets, lengths, types, names)" diff "$T/map.nbdinfo" "$T/map.shunt"
tap_check "... with a 'hole,zero' extent" grep -q ' 3 hole,zero$' "$T/map.shunt"

# shunt copy with '-'.
head -c 3M /dev/urandom >"$T/src.bin"
"$SHUNT" copy - "$(u rw)" <"$T/src.bin"; st=$?
[ "$st" -eq 0 ] && tap_ok "copy - URI: stdin into the export" || tap_fail "copy - URI: status $st"
tap_check "... the export holds stdin's bytes" cmp -n $((3 << 20)) "$T/src.bin" "$T/rw.img"
"$SHUNT" copy "$(u rw)" - >"$T/out.bin"; st=$?
[ "$st" -eq 0 ] && tap_ok "copy URI -: the export to stdout" || tap_fail "copy URI -: status $st"
tap_check "... stdout got the whole export" cmp "$T/rw.img" "$T/out.bin"
tap_check "... and no file named '-' was written" test ! -e ./-
"$SHUNT" copy "$(u rw)" - | head -c 1M >"$T/head.bin"
tap_check "copy URI - into a pipe" cmp -n $((1 << 20)) "$T/head.bin" "$T/src.bin"
head -c 3M /dev/urandom | "$SHUNT" copy - "$(u mem)" 2>"$T/big"; st=$?
[ "$st" -eq 1 ] && grep -q 'more input than' "$T/big" && tap_ok "stdin larger than the export: an error" \
  || tap_fail "stdin larger than the export: status $st"
"$SHUNT" copy - "$T/from-stdin.bin" <"$T/src.bin" && cmp -s "$T/src.bin" "$T/from-stdin.bin" \
  && tap_ok "copy - FILE" || tap_fail "copy - FILE"
"$SHUNT" copy - - </dev/null 2>/dev/null; st=$?
[ "$st" -eq 2 ] && tap_ok "copy - -: a usage error" || tap_fail "copy - -: status $st"

# --progress=FD: "N/100" lines, rising, ending in one 100/100.
"$SHUNT" copy --progress=3 "$(u rw)" "$T/p.img" 3>"$T/prog"; st=$?
[ "$st" -eq 0 ] && tap_ok "--progress=FD copy succeeds" || tap_fail "--progress=FD: status $st"
tap_check "... every line is N/100" bash -c "! grep -vqE '^[0-9]+/100$' '$T/prog'"
tap_check "... the last is 100/100, once" bash -c "[ \"\$(tail -n1 '$T/prog')\" = 100/100 ] && [ \$(grep -c '^100/100$' '$T/prog') -eq 1 ]"
tap_check "... and the values never fall" bash -c "sort -n -c <(cut -d/ -f1 '$T/prog')"
"$SHUNT" copy --progress=3 - "$T/p2.img" <"$T/src.bin" 3>"$T/prog2"
tap_check "--progress=FD from stdin (size unknown): 100/100 at the end" bash -c "[ \"\$(cat '$T/prog2')\" = 100/100 ]"
"$SHUNT" copy --progress=77 "$(u rw)" "$T/p3.img" 2>"$T/badfd"; st=$?
[ "$st" -eq 2 ] && tap_ok "--progress=FD with a closed descriptor: usage error" || tap_fail "--progress=77: status $st"
# The bar: one final line with the time taken, no ETA guessed at the start.
"$SHUNT" copy --progress "$(u rw)" "$T/p4.img" 2>"$T/bar"
tap_check "the bar ends with one 100% line" bash -c "[ \$(tr '\r' '\n' <'$T/bar' | grep -c '100.0%') -eq 1 ] && tr '\r' '\n' <'$T/bar' | tail -n1 | grep -q '100.0%.* in [0-9.]*s'"
tap_check "... and never shows 'ETA 0s' before the end" bash -c "! tr '\r' '\n' <'$T/bar' | grep -q 'ETA 0s'"
stop_shunt

# A file the server may read but not write: the error suggests ',ro'.
if [ "$(id -u)" -eq 0 ] && id nobody >/dev/null 2>&1 && command -v setpriv >/dev/null; then
  mkdir -p "$T/pub" && chmod 755 "$T" "$T/pub" && truncate -s 1M "$T/pub/r.img" && chmod 444 "$T/pub/r.img"
  setpriv --reuid=nobody --regid="$(id -g nobody)" --clear-groups "$SHUNT" serve -U "$T/pub/x.sock" d="$T/pub/r.img" >"$T/rohint" 2>&1
  tap_check "a read-only file opened writable: the error suggests ',ro'" grep -q "add ',ro' (d=$T/pub/r.img,ro) or -r" "$T/rohint"
else
  tap_skip "read-only file hint" "not root, no nobody user or no setpriv"
fi

# attach without the kernel's nbd driver: the error suggests shunt fuse.
if [ ! -e /sys/module/nbd ] && ! modprobe -n nbd 2>/dev/null; then
  "$SHUNT" attach "nbd://127.0.0.1:1/x" >"$T/attach" 2>&1
  tap_check "attach without an nbd driver suggests shunt fuse" grep -q "shunt fuse URI DIR" "$T/attach"
else
  tap_skip "attach hint" "this kernel has an nbd driver"
fi
tap_finish
