#!/bin/bash
# tls_datapath.sh: how READ data moves under TLS (PSK, libnbd's python
# bindings), on exports of a file (auto, the default; and mmap).  Page-cached reads
# are encrypted straight from the export's mapping: counted as mmap bytes,
# one copy per byte (the kernel's, of the ciphertext), the plaintext
# encrypted once, and no memcpy but ciphertext copied by the session
# (tls_buffered_bytes: what the socket did not take at once, and each
# header's tiny record, held to go out with the next push); the records of a
# 1 MiB reply after the first of each batch are sealed by the server (TLS 1.3
# here) straight into the send buffer (tls_sealed_bytes, no copy, far more
# than what is copied); small replies are gathered with their
# headers into one record (their bytes counted as memcpy).  Uncached reads
# at odd offsets and lengths go as copy reads (2 copies per byte).  All
# read back equal to the file.  A file that shrinks under a large reply
# still being encrypted fails that connection (logged), not the server,
# which serves the next one.  Connections that pipeline 1 MiB reads and
# never read a reply leave the server's anonymous memory bounded.
. "$(dirname "$0")/../lib.sh"
. "$(dirname "$0")/tls_lib.sh"
need_tls_tools python3
PY=/usr/bin/python3
"$PY" -c "import nbd" 2>/dev/null || { tap_skip "TLS data path" "python3-libnbd not installed"; tap_done; exit 0; }

anon_kb() { awk '/^RssAnon:/ { print $2 }' "/proc/$1/status" 2>/dev/null; }
# uncache FILE: drop its pages from the page cache (not those a process maps).
uncache() { "$PY" -c 'import os,sys; fd=os.open(sys.argv[1], os.O_RDONLY); os.fsync(fd); os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)' "$1"; }

make_psk "$T/keys.psk" alice
img=$T/disk.img shr=$T/shrink.img
head -c 64M /dev/urandom >"$img"
head -c 64M /dev/urandom >"$shr"
head -c 16M /dev/urandom >"$T/mm.img"
start_shunt -v --tls=require --tls-psk "$T/keys.psk" --stats "$T/st.json" disk="$img" shrink="$shr" \
  mm="$T/mm.img",datapath=mmap \
  || { tap_fail "server starts with --tls=require --tls-psk"; tap_done; exit 1; }
tap_ok "server starts with --tls=require --tls-psk and three file exports"
U="nbds://alice@127.0.0.1:$PORT/disk?tls-psk-file=$T/keys.psk"
US="nbds://alice@127.0.0.1:$PORT/shrink?tls-psk-file=$T/keys.psk"

# Uncached (first: the hot reads below map every page of the image, and
# mapped pages cannot be dropped), odd offsets and lengths.
uncache "$img"
dump_stats "$T/a.json"
tap_check "uncached reads at odd offsets and lengths over TLS equal the file" reads "$U" "$img" odd
dump_stats "$T/b.json"
read -r mm cp cr <<<"$(delta "$T/a.json" "$T/b.json" mmap copy server_copied_read_bytes)"
[ "$cp" -gt 0 ] && [ "$cr" -eq $((2 * cp + mm)) ] \
  && tap_ok "uncached reads went as copy reads, 2 copies per byte (copy $cp, mmap $mm, copied $cr)" \
  || tap_fail "uncached reads: copy $cp, mmap $mm, copied $cr (want copy > 0, copied = 2 x copy + mmap)"

# Hot: the image is in the page cache.
cat "$img" >/dev/null
dump_stats "$T/a.json" || tap_fail "stats file written on SIGUSR1"
tap_check "hot 1 MiB reads of the whole image over TLS equal the file" reads "$U" "$img" seq
dump_stats "$T/b.json"
read -r mm cp cr enc mc buf dir sl <<<"$(delta "$T/a.json" "$T/b.json" mmap copy server_copied_read_bytes \
  tls_encrypted_bytes memcpy_bytes tls_buffered_bytes tls_pushed_direct_bytes tls_sealed_bytes)"
echo "# hot: mmap $mm copy $cp copied $cr encrypted $enc memcpy $mc buffered $buf direct $dir sealed $sl"
# (Another process may drop the page cache meanwhile: a read it made
# uncached goes as a copy read, counted as such.)
[ "$mm" -gt 0 ] && [ $((mm + cp)) -eq $((64 << 20)) ] \
  && tap_ok "hot reads were encrypted from the mapping (mmap bytes $mm, copy $cp)" \
  || tap_fail "hot reads: mmap bytes $mm, copy bytes $cp (want 64 MiB in all, from the mapping)"
[ "$cr" -eq $((mm + 2 * cp)) ] && tap_ok "... one copy per byte counted (the kernel's, of the ciphertext)" \
  || tap_fail "... copies counted $cr (want $mm + 2 x $cp)"
[ "$enc" -ge $((64 << 20)) ] && [ "$enc" -lt $((65 << 20)) ] \
  && tap_ok "... the plaintext encrypted once ($enc bytes with the reply headers)" \
  || tap_fail "... encrypted $enc bytes"
[ "$mc" -eq "$buf" ] && tap_ok "... no memcpy but the ciphertext the socket did not take at once ($mc)" \
  || tap_fail "... memcpy $mc, buffered ciphertext $buf (want equal)"
[ $((dir + buf + sl)) -gt "$enc" ] && tap_ok "... all of the ciphertext pushed (direct $dir, buffered $buf, sealed $sl)" \
  || tap_fail "... ciphertext pushed: direct $dir, buffered $buf, sealed $sl (want more than $enc)"
[ "$sl" -gt $((enc * 3 / 4)) ] && [ "$sl" -gt $((4 * buf)) ] \
  && tap_ok "... most of it sealed by the server, not copied (sealed $sl, copied $buf)" \
  || tap_fail "... sealed $sl, copied $buf (want more than 3/4 of $enc sealed, and 4x what was copied)"

# The same on an export whose path is mmap (no O_DIRECT writes).
cat "$T/mm.img" >/dev/null
dump_stats "$T/a.json"
tap_check "hot reads of a datapath=mmap export over TLS equal the file" \
  reads "nbds://alice@127.0.0.1:$PORT/mm?tls-psk-file=$T/keys.psk" "$T/mm.img" seq
dump_stats "$T/b.json"
read -r mm sp cr mc buf <<<"$(EXPORT=mm delta "$T/a.json" "$T/b.json" mmap copy server_copied_read_bytes \
  memcpy_bytes tls_buffered_bytes)"
[ "$mm" -gt 0 ] && [ $((mm + sp)) -eq $((16 << 20)) ] && [ "$cr" -eq $((mm + 2 * sp)) ] && [ "$mc" -eq "$buf" ] \
  && tap_ok "... encrypted from the mapping, one copy per byte, no memcpy but buffered ciphertext ($mm bytes)" \
  || tap_fail "... mmap bytes $mm, uncached $sp, copied $cr, memcpy $mc, buffered $buf"

# Small hot reads: each reply (header and 4 KiB) is one record.
dump_stats "$T/a.json"
tap_check "hot 4 KiB reads over TLS equal the file" reads "$U" "$img" small
dump_stats "$T/b.json"
read -r mm cp mc buf <<<"$(delta "$T/a.json" "$T/b.json" mmap copy memcpy_bytes tls_buffered_bytes)"
g=$((mc - buf))
[ $((mm + cp)) -eq $((64 * 4096)) ] && [ "$g" -ge $((64 * 4096)) ] && [ "$g" -le $((64 * (4096 + 64))) ] \
  && tap_ok "small replies gathered into records with their headers (gathered $g bytes)" \
  || tap_fail "small replies: mmap $mm, gathered $g bytes (want $((64 * 4096)) and 64 x 4 KiB plus headers)"

# A file that shrinks under a 32 MiB reply the client does not read yet: once
# the socket is full the server waits with most of the reply still to
# encrypt from the mapping; then the file is cut to 1 MiB.
cat "$shr" >/dev/null
tap_relay timeout 60 "$PY" - "$US" "$shr" <<'PY'
import os, sys, time, nbd
uri, img = sys.argv[1:3]
h = nbd.NBD()
h.set_uri_allow_local_file(True)
h.connect_uri(uri)
buf = nbd.Buffer(32 << 20)
c = h.aio_pread(buf, 16 << 20)
time.sleep(1.5)
os.truncate(img, 1 << 20)
try:
    while not h.aio_command_completed(c):
        h.poll(-1)
    print("not ok - the read of a range cut off under the reply fails (it completed)")
except nbd.Error as e:
    print("ok - the read of a range cut off under the reply fails (%s)" % e)
PY
tap_check "the server lives on" shunt_alive
tap_check "... logged why it dropped that connection" grep -q "reply data unreadable" "$T/shunt.log"
tap_check "... and serves the next connection" reads "$U" "$img" small

# Stalled readers: 4 connections pipelining 32 x 1 MiB hot reads each and
# never reading a reply hold at most what the caps allow.
cat "$img" >/dev/null
before=$(anon_kb "$SHUNT_PID")
"$PY" - "$U" >"$T/stalled.out" 2>&1 <<'PY' &
import sys, time, nbd
hs = []
for _ in range(4):
    h = nbd.NBD(); h.set_uri_allow_local_file(True); h.connect_uri(sys.argv[1]); hs.append(h)
bufs = []
for h in hs:
    for i in range(32):
        b = nbd.Buffer(1 << 20); bufs.append(b); h.aio_pread(b, i << 20)
print("queued", flush=True)
time.sleep(30)
PY
stalled=$!
for _ in $(seq 100); do grep -q queued "$T/stalled.out" && break; sleep 0.1; done
sleep 2
after=$(anon_kb "$SHUNT_PID")
echo "# anonymous memory: $before KiB before, $after KiB with the stalled readers"
grep -q queued "$T/stalled.out" && [ -n "$after" ] && [ $((after - before)) -lt $((48 << 10)) ] \
  && tap_ok "stalled TLS readers (128 MiB of replies claimed) grow the server's anonymous memory by less than 48 MiB" \
  || tap_fail "stalled TLS readers: anonymous memory $before -> $after KiB"
tap_check "other clients are served meanwhile" reads "$U" "$img" small
kill "$stalled" 2>/dev/null; wait "$stalled" 2>/dev/null

stop_shunt_within 20; rc=$?
[ "$rc" -eq 0 ] && tap_ok "server exits 0" || tap_fail "server exit status $rc"
tap_finish
