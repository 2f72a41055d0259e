#!/usr/bin/env bash
# shared_file.sh: two exports of one file on different data paths, one
# connection to each.  For direct + auto, auto + mmap and auto + auto:
# writes through either export (aligned and unaligned, small and large,
# pipelined, WRITE_ZEROES) read back through the other byte for byte, cold
# and cached, and the file holds them all after FLUSH (dp_shared.py); the
# stats show auto's write discipline following the other export (O_DIRECT
# beside direct, buffered beside mmap).  Fixed paths that write one file
# both ways (direct + copy) get a warning at start.  A TLS connection
# (--tls=on, PSK) to an auto export writes as auto's plaintext connections
# do (O_DIRECT where it works), and its writes and theirs read back
# through each other.  The concurrent
# overlapping writers run across two exports of one file in
# overlap_writes.sh.
. "$(dirname "$0")/../lib.sh"
. "$SHUNT_TOP/tests/tools/trust-lib.sh"
. "$(dirname "$0")/tls_lib.sh"
need_deps
here=$(cd "$(dirname "$0")" && pwd)
PY=/usr/bin/python3

dump_stats() {
  rm -f "$1"; kill -USR1 "$SHUNT_PID"
  for _ in $(seq 50); do [ -s "$1" ] && return 0; sleep 0.1; done
  return 1
}
# auto_writes FILE EXPORT PATH: the WRITE requests auto sent on PATH.
auto_writes() {
  "$PY" -c 'import json,sys
e=[x for x in json.load(open(sys.argv[1]))["exports"] if x["name"]==sys.argv[2]][0]
print(e["auto_choice"][sys.argv[3]]["writes"], e["writes"])' "$@"
}

img=$T/disk.img
# 24 MiB, with a hole in the middle.
head -c 8M /dev/urandom >"$img"
truncate -s 16M "$img"
head -c 8M /dev/urandom >>"$img"
direct_ok=1
"$PY" -c 'import os,sys; os.close(os.open(sys.argv[1], os.O_RDONLY | os.O_DIRECT))' "$img" 2>/dev/null || direct_ok=0

for pair in "datapath=direct:" ":datapath=mmap" ":"; do
  a_opts=${pair%%:*} b_opts=${pair#*:}
  label="a=${a_opts:-auto} b=${b_opts:-auto}"
  label=${label//datapath=/}
  : >"$T/shunt.log"
  if ! start_shunt --stats "$T/st.json" "a=$img${a_opts:+,$a_opts},chunk=64K" "b=$img${b_opts:+,$b_opts},chunk=64K"; then
    tap_fail "$label: server starts"; continue
  fi
  relay_args=("nbd://127.0.0.1:$PORT/a" "nbd://127.0.0.1:$PORT/b" "$img" "$label" --seed $RANDOM --rounds 20)
  tap_relay timeout 300 "$PY" "$here/dp_shared.py" "${relay_args[@]}"
  # Beside mmap, auto writes through the page cache: small WRITEs straight
  # from the receive buffer, as the fixed buffered paths do (2 CPU copies
  # per byte, no memcpy).
  if [ "$b_opts" = datapath=mmap ] && [ "$direct_ok" = 1 ]; then
    if dump_stats "$T/st.json" && cp "$T/st.json" "$T/st-before.json"; then
      tap_relay timeout 300 "$PY" "$here/dp_smallwrites.py" "nbd://127.0.0.1:$PORT/a" "$img" --span $((8 << 20)) \
        --seed $RANDOM --label "$label: small writes to a"
      if dump_stats "$T/st.json" && cp "$T/st.json" "$T/st-after.json"; then
        read -r dw dc dm <<<"$("$PY" -c 'import json,sys
a,b=([x for x in json.load(open(f))["exports"] if x["name"]=="a"][0] for f in sys.argv[1:3])
print(*(b[k]-a[k] for k in ("bytes_written","server_copied_write_bytes","memcpy_bytes")))' "$T/st-before.json" "$T/st-after.json")"
        [ "${dw:-0}" -gt 0 ] && [ "$dc" -eq $((2 * dw)) ] && [ "$dm" -eq 0 ] \
          && tap_ok "$label: auto's buffered small writes go from the receive buffer ($dw bytes, $dc copies, no memcpy)" \
          || tap_fail "$label: auto's buffered small writes: $dw bytes, $dc copies (want $((2 * ${dw:-0}))), $dm memcpy (want 0)"
      else
        tap_fail "$label: stats after the small writes"
      fi
    else
      tap_fail "$label: stats before the small writes"
    fi
  fi
  stop_shunt; rc=$?
  [ $rc -eq 0 ] && tap_ok "$label: server exits with status 0" || tap_fail "$label: exit status $rc"
  if grep -q "O_DIRECT and page-cache writes" "$T/shunt.log"; then
    tap_fail "$label: warned about mixed writes, which auto avoids"
  fi
  # Which way auto wrote: O_DIRECT beside a direct export (and beside
  # another auto), buffered (splice's writes) beside mmap.
  if [ "$direct_ok" = 1 ]; then
    case "$b_opts" in
      datapath=mmap) want=splice exp=a ;;
      *) want=direct exp=b ;;
    esac
    read -r n w <<<"$(auto_writes "$T/st.json" "$exp" "$want")"
    [ "${n:-0}" -gt 0 ] && [ "$n" = "$w" ] \
      && tap_ok "$label: auto export $exp wrote $want ($n of $w writes)" \
      || tap_fail "$label: auto export $exp: $n of $w writes went $want"
  else
    tap_skip "$label: auto's write discipline" "O_DIRECT does not work in $T"
  fi
  tap_check "$label: no sanitizer report in the server log" sanitizer_clean "$T/shunt.log"
done

# TLS and plaintext connections to one auto export and to a direct export
# of the same file.
if command -v certtool >/dev/null; then
  make_psk "$T/keys.psk" alice
  : >"$T/shunt.log"
  if start_shunt --tls=on --tls-psk "$T/keys.psk" --stats "$T/st.json" "a=$img,chunk=64K" \
       "d=$img,datapath=direct,chunk=64K"; then
    for other in a d; do
      tap_relay timeout 300 "$PY" "$here/dp_shared.py" "nbds://alice@127.0.0.1:$PORT/a?tls-psk-file=$T/keys.psk" \
        "nbd://127.0.0.1:$PORT/$other" "$img" "TLS to auto, plaintext to $other" --seed $RANDOM --rounds 10
    done
    if [ "$direct_ok" = 1 ]; then
      # Writes over TLS (unaligned, small and large) go the direct path's
      # way: counted as direct bytes, none as copy (buffered) bytes.
      dump_stats "$T/st.json" && cp "$T/st.json" "$T/st0.json"
      "$PY" -c 'import nbd,os,sys
h=nbd.NBD(); h.set_strict_mode(0); h.set_uri_allow_local_file(True); h.connect_uri(sys.argv[1])
h.pwrite(os.urandom(1536), 512); h.pwrite(os.urandom((1<<20)+1024), 3*4096+512); h.shutdown()' \
        "nbds://alice@127.0.0.1:$PORT/a?tls-psk-file=$T/keys.psk" && dump_stats "$T/st.json" && cp "$T/st.json" "$T/st1.json"
      got=$("$PY" -c 'import json,sys
a,b=([x for x in json.load(open(f))["exports"] if x["name"]=="a"][0] for f in sys.argv[1:3])
print(*(b["bytes_by_path"][k]-a["bytes_by_path"][k] for k in ("direct","copy","splice")))' "$T/st0.json" "$T/st1.json")
      [ "$got" = "$((1536 + (1 << 20) + 1024)) 0 0" ] \
        && tap_ok "TLS: writes to an auto export go O_DIRECT like its plaintext ones (direct, copy, splice bytes: $got)" \
        || tap_fail "TLS: writes to an auto export counted as direct, copy, splice bytes: $got"
    fi
    stop_shunt; rc=$?
    [ $rc -eq 0 ] && tap_ok "TLS: server exits with status 0" || tap_fail "TLS: exit status $rc"
    tap_check "TLS: no sanitizer report in the server log" sanitizer_clean "$T/shunt.log"
  else
    tap_fail "TLS: server starts"
  fi
else
  tap_skip "TLS to an auto export" "certtool not installed"
fi

# Fixed paths writing one file through O_DIRECT and the page cache: warned.
: >"$T/shunt.log"
if start_shunt "a=$img,datapath=direct" "b=$img,datapath=copy"; then
  stop_shunt
  grep -q "O_DIRECT and page-cache writes" "$T/shunt.log" \
    && tap_ok "direct + copy on one file: warned at start" || tap_fail "direct + copy on one file: no warning"
else
  tap_fail "direct + copy on one file: server starts"
fi
tap_finish
