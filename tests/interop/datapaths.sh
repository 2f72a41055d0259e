#!/usr/bin/env bash
# datapaths.sh: the copy, splice, direct, mmap and auto data paths.  For each
# path, with structured replies on and off and a small chunk size (so large
# reads become many chunks, completing and going out of order): libnbd reads
# and writes at odd offsets/lengths against a local mirror (dp_verify.py),
# qemu-io writes and verifies patterns with large reads; holes stay holes;
# the stats file reports 0 CPU-copied read bytes for splice and direct,
# > 0 for copy, and 1 per byte for mmap's page-cached reads (the kernel's
# copy), whose cold reads go the splice way; a tiny arena, and too few pipes, under many concurrent large
# reads stay correct and count waits/fallbacks; the chunk policy (cold reads
# split, page-cached ones on splice one chunk: dp_chunks.py); pipelined small
# writes from several connections read back as written and, except on
# direct and auto, count 2 copies per byte (dp_smallwrites.py).  auto: a
# cached read goes from the mapping, an uncached one O_DIRECT, each counted
# in auto_choice; with no datapath= an export is auto (a memory one copy).
. "$(dirname "$0")/../lib.sh"
here=$(cd "$(dirname "$0")" && pwd)
PY=/usr/bin/python3

# stat FILE KEY: a top-level number of the first export in a stats file.
stat() { "$PY" -c 'import json,sys; print(json.load(open(sys.argv[1]))["exports"][0][sys.argv[2]])' "$1" "$2"; }
stat_path() { "$PY" -c 'import json,sys; print(json.load(open(sys.argv[1]))["exports"][0]["bytes_by_path"][sys.argv[2]])' "$1" "$2"; }
# dump_stats: SIGUSR1, then wait for the file to be rewritten.
# relay CMD...: run a helper printing "ok - x"/"not ok - x" lines into our TAP stream.
# hole_chunks URI: how many OFFSET_HOLE chunks a structured read of the first
# 24 MiB gets.
hole_chunks() { "$PY" -c 'import nbd,sys
h=nbd.NBD(); h.connect_uri(sys.argv[1]); n=[0]
def cb(buf, off, status, err):
    n[0] += status == nbd.READ_HOLE
    return 0
h.pread_structured(24<<20, 0, cb)
print(n[0]); h.shutdown()' "$1"; }
relay() {
  local line n0=$_tap_n f0=$_tap_failed
  while IFS= read -r line; do
    case "$line" in
      "ok - "*) tap_ok "${line#ok - }" ;;
      "not ok - "*) tap_fail "${line#not ok - }" ;;
      "exit 0") ;;
      "exit "*) tap_fail "$(basename "$2") exited with status ${line#exit }" ;;
      *) echo "# $line" ;;
    esac
  done < <("$@" 2>&1; echo "exit $?")
  [ "$_tap_n" -gt "$n0" ] || tap_fail "$(basename "$2") reported nothing"
}
# delta BEFORE AFTER KEY...: differences of top-level or bytes_by_path numbers.
delta() {
  "$PY" -c 'import json,sys
a,b=(json.load(open(f))["exports"][0] for f in sys.argv[1:3])
g=lambda e,k: e["bytes_by_path"][k] if k in e["bytes_by_path"] else e[k]
print(*(g(b,k)-g(a,k) for k in sys.argv[3:]))' "$@"
}
dump_stats() {
  rm -f "$1"; kill -USR1 "$SHUNT_PID"
  for _ in $(seq 50); do [ -s "$1" ] && return 0; sleep 0.1; done
  return 1
}

# A 24 MiB image with data, a hole in the middle, data at the end.
img=$T/disk.img
head -c 8M /dev/urandom >"$img"
truncate -s 16M "$img"
head -c 8M /dev/urandom >>"$img"
cp "$img" "$T/orig.img"

for dp in copy splice direct mmap auto; do
  cp "$T/orig.img" "$img"
  if ! start_shunt --stats "$T/st-$dp.json" "disk=$img,datapath=$dp,chunk=64K"; then
    tap_fail "$dp: server starts"; continue
  fi
  grep -q "data path $dp, chunk 65536" "$T/shunt.log" && tap_ok "$dp: data path logged" || tap_fail "$dp: data path logged"
  uri=nbd://127.0.0.1:$PORT/disk
  # Copy counters first, on a read-only workload.
  if "$PY" -c 'import nbd,sys
h=nbd.NBD(); h.connect_uri(sys.argv[1])
d=h.pread(8<<20,0); h.pread(8<<20, 16<<20); h.shutdown()
sys.exit(d != open(sys.argv[2],"rb").read(8<<20))' "$uri" "$T/orig.img" && dump_stats "$T/st-$dp.json"; then
    copied=$(stat "$T/st-$dp.json" server_copied_read_bytes)
    zc=$(stat "$T/st-$dp.json" zc_copied_bytes)
    if [ "$dp" = copy ]; then
      [ "$copied" -gt 0 ] && tap_ok "copy: reads report CPU-copied bytes ($copied)" || tap_fail "copy: copied bytes $copied"
    elif [ "$dp" = mmap ] || [ "$dp" = auto ]; then
      # The image was just written: page-cached, so all 16 MiB go from the mapping.
      m=$(stat_path "$T/st-$dp.json" mmap)
      [ "$copied" -eq $((16 << 20)) ] && [ "$m" -eq $((16 << 20)) ] \
        && tap_ok "$dp: hot reads sent from the mapping, 1 kernel copy per byte counted ($copied)" \
        || tap_fail "$dp: hot reads: mmap bytes $m, copied bytes $copied (want 16 MiB each)"
    else
      [ "$copied" -eq 0 ] && tap_ok "$dp: reads report 0 CPU-copied bytes (SEND_ZC copied by the kernel: $zc)" \
        || tap_fail "$dp: reads copied $copied bytes"
    fi
    if [ "$dp" = direct ]; then
      [ "$zc" -gt 0 ] && tap_ok "direct: SEND_ZC sends the kernel copied (always, on loopback) are reported ($zc)" \
        || tap_fail "direct: SEND_ZC copies not reported on loopback"
    fi
  else
    tap_fail "$dp: read for the copy counters"
  fi
  # Small reads (< 16 KiB): splice serves them like copy (one read, one
  # gathered send) and counts them as copy bytes, and so does auto when they
  # are cached (here they are: the image was just written); direct reads them
  # O_DIRECT and sends them without SEND_ZC, counting the kernel's copy.
  if [ "$dp" != copy ]; then
    cp "$T/st-$dp.json" "$T/st-$dp-before.json"
    if "$PY" -c 'import nbd,sys,random
h=nbd.NBD(); h.connect_uri(sys.argv[1]); img=open(sys.argv[2],"rb").read(8<<20)
offs=[random.randrange(0, 2047)*4096 for _ in range(64)]
bufs=[]
for o in offs:
    b=nbd.Buffer(4096); h.aio_pread(b, o); bufs.append((b,o))
while h.aio_in_flight() > 0: h.poll(-1)
h.shutdown()
sys.exit(not all(b.to_bytearray()==img[o:o+4096] for b,o in bufs))' "$uri" "$T/orig.img" && dump_stats "$T/st-$dp.json"; then
      delta=$("$PY" -c 'import json,sys
a,b=(json.load(open(f))["exports"][0] for f in sys.argv[1:3])
print(b["bytes_by_path"]["copy"]-a["bytes_by_path"]["copy"], b["server_copied_read_bytes"]-a["server_copied_read_bytes"], b["zc_sends"]-a["zc_sends"])' "$T/st-$dp-before.json" "$T/st-$dp.json")
      read -r dcopy dcopied dzc <<<"$delta"
      if [ "$dp" = splice ] || [ "$dp" = auto ]; then
        [ "$dcopy" -eq $((64 * 4096)) ] && [ "$dcopied" -eq $((2 * 64 * 4096)) ] \
          && tap_ok "$dp: 64 concurrent 4 KiB reads correct, served and counted as copy ($delta)" \
          || tap_fail "$dp: small reads counted as: copy bytes, copied bytes, zc sends = $delta"
      else   # direct: O_DIRECT, no SEND_ZC; mmap: hot, from the mapping
        [ "$dzc" -eq 0 ] && [ "$dcopied" -eq $((64 * 4096)) ] && [ "$dcopy" -eq 0 ] \
          && tap_ok "$dp: 64 concurrent 4 KiB reads correct, sent without SEND_ZC, kernel copy counted ($delta)" \
          || tap_fail "$dp: small reads counted as: copy bytes, copied bytes, zc sends = $delta"
      fi
    else
      tap_fail "$dp: 64 concurrent 4 KiB reads"
    fi
  fi
  # Small WRITEs (up to 16 KiB), pipelined from 3 connections, reads among
  # them: every byte reads back as written.  On copy, splice and mmap (and
  # auto where it writes buffered) their payload is written straight from
  # the receive buffer: 2 CPU copies per byte (recv, then write(2)), no
  # memcpy; O_DIRECT writes (direct, auto) go from an aligned buffer.
  cp "$T/st-$dp.json" "$T/st-$dp-before.json"
  relay "$PY" "$here/dp_smallwrites.py" "$uri" "$img" --span $((8 << 20)) --seed $RANDOM --label "$dp: small writes"
  if dump_stats "$T/st-$dp.json"; then
    read -r dw dc dm <<<"$(delta "$T/st-$dp-before.json" "$T/st-$dp.json" bytes_written server_copied_write_bytes memcpy_bytes)"
    discipline=$dp
    if [ "$dp" = auto ]; then   # O_DIRECT where the file system takes it, else buffered
      discipline=$("$PY" -c 'import json,sys
a,b=(json.load(open(f))["exports"][0]["auto_choice"] for f in sys.argv[1:3])
print("direct" if b["direct"]["writes"] > a["direct"]["writes"] else "buffered")' "$T/st-$dp-before.json" "$T/st-$dp.json")
    fi
    if [ "$discipline" = direct ]; then
      # Received once (recv into the receive buffer or the aligned buffer);
      # every memcpy on top (what came with the request header, moved into
      # the aligned buffer in place of the page-cache copy a buffered write
      # makes, and unaligned edges merged into their blocks) counted too.
      [ "$dw" -gt 0 ] && [ "$dm" -gt 0 ] && [ "$dc" -eq $((dw + dm)) ] \
        && tap_ok "$dp: small O_DIRECT writes counted as one receive per byte plus each memcpy ($dw bytes, $dc copies, $dm memcpy)" \
        || tap_fail "$dp: small writes: $dw bytes written, $dc copies counted (want $dw + $dm memcpy)"
    else
      [ "$dw" -gt 0 ] && [ "$dc" -eq $((2 * dw)) ] && [ "$dm" -eq 0 ] \
        && tap_ok "$dp: small writes counted as 2 CPU copies per byte, none a memcpy ($dw bytes, $dc copies)" \
        || tap_fail "$dp: small writes: $dw bytes written, $dc copies counted (want $((2 * dw))), $dm memcpy (want 0)"
    fi
  else
    tap_fail "$dp: stats after the small writes"
  fi
  # Large writes (streamed chunk by chunk on splice and mmap) in the same
  # pipelines as small ones.
  relay "$PY" "$here/dp_smallwrites.py" "$uri" "$img" --span $((8 << 20)) --conns 2 --qd 8 --rounds 20 \
    --big 200000 --seed $RANDOM --label "$dp: small and 200000-byte writes"
  dump_stats "$T/st-$dp.json" || tap_fail "$dp: stats after the mixed writes"
  # mmap: a read of pages not in the page cache goes the splice way (nothing
  # faults in the event loop); read again, it is hot: the mapping.  (The
  # never-read hole, with simple replies: pages the server's sends already
  # faulted into its mapping cannot be dropped with POSIX_FADV_DONTNEED.)
  # Holes read once with a simple reply are cached: a structured read of the
  # whole image then goes from the mapping with OFFSET_HOLE chunks.
  if [ "$dp" = mmap ]; then
    for round in cold hot; do
      cp "$T/st-$dp.json" "$T/st-$dp-before.json"
      if "$PY" -c 'import nbd,os,sys
if sys.argv[3] == "cold":
    fd = os.open(sys.argv[2], os.O_RDONLY); os.fsync(fd)
    os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED); os.close(fd)
h=nbd.NBD(); h.set_request_structured_replies(False); h.connect_uri(sys.argv[1]); d=h.pread(4<<20, 8<<20); h.shutdown()
sys.exit(d != bytes(4<<20))' "$uri" "$img" $round && dump_stats "$T/st-$dp.json"; then
        read -r dm ds dc <<<"$(delta "$T/st-$dp-before.json" "$T/st-$dp.json" mmap splice server_copied_read_bytes)"
        if [ $round = cold ]; then
          [ "$ds" -eq $((4 << 20)) ] && [ "$dm" -eq 0 ] && [ "$dc" -eq 0 ] \
            && tap_ok "mmap: a cold 4 MiB read is correct and went the splice way (mmap, splice, copied: $dm $ds $dc)" \
            || tap_fail "mmap: cold read counted as mmap, splice, copied = $dm $ds $dc"
        else
          [ "$dm" -eq $((4 << 20)) ] && [ "$ds" -eq 0 ] && [ "$dc" -eq $((4 << 20)) ] \
            && tap_ok "mmap: read again (now cached) it went from the mapping (mmap, splice, copied: $dm $ds $dc)" \
            || tap_fail "mmap: hot re-read counted as mmap, splice, copied = $dm $ds $dc"
        fi
      else
        tap_fail "mmap: $round read"
      fi
    done
    cp "$T/st-$dp.json" "$T/st-$dp-before.json"
    "$PY" -c 'import nbd,sys
h=nbd.NBD(); h.set_request_structured_replies(False); h.connect_uri(sys.argv[1]); h.pread(8<<20, 8<<20); h.shutdown()' "$uri"
    holes=$(hole_chunks "$uri")
    dump_stats "$T/st-$dp.json"
    read -r dm ds <<<"$(delta "$T/st-$dp-before.json" "$T/st-$dp.json" mmap splice)"
    [ "${holes:-0}" -ge 1 ] && [ "$dm" -eq $((16 << 20)) ] && [ "$ds" -eq $((8 << 20)) ] \
      && tap_ok "mmap: a cached sparse read from the mapping sends OFFSET_HOLE chunks ($holes; mmap, splice bytes: $dm $ds)" \
      || tap_fail "mmap: cached sparse read: $holes hole chunks, mmap, splice bytes: $dm $ds"
  fi
  # auto: a read of pages not in the page cache goes O_DIRECT (and leaves
  # them out of it), counted as direct in auto_choice; once something has
  # read them into the page cache, the same read goes from the mapping.
  # (The never-read hole, as for mmap; simple replies, so it is data.)
  if [ "$dp" = auto ]; then
    for round in cold hot; do
      cp "$T/st-$dp.json" "$T/st-$dp-before.json"
      if "$PY" -c 'import nbd,os,sys
fd = os.open(sys.argv[2], os.O_RDONLY)
if sys.argv[3] == "cold":
    os.fsync(fd); os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
else:
    os.pread(fd, 4<<20, 8<<20)
os.close(fd)
h=nbd.NBD(); h.set_request_structured_replies(False); h.connect_uri(sys.argv[1]); d=h.pread(4<<20, 8<<20); h.shutdown()
sys.exit(d != bytes(4<<20))' "$uri" "$img" $round && dump_stats "$T/st-$dp.json"; then
        got=$("$PY" -c 'import json,sys
a,b=(json.load(open(f))["exports"][0] for f in sys.argv[1:3])
c=lambda e,p,k: e["auto_choice"][p][k]
print(*(c(b,p,k)-c(a,p,k) for p in ("direct","mmap") for k in ("reads","read_bytes")),
      b["bytes_by_path"]["direct"]-a["bytes_by_path"]["direct"], b["bytes_by_path"]["mmap"]-a["bytes_by_path"]["mmap"])' \
          "$T/st-$dp-before.json" "$T/st-$dp.json")
        if [ $round = cold ]; then
          want="1 $((4 << 20)) 0 0 $((4 << 20)) 0" how=O_DIRECT
        else
          want="0 0 1 $((4 << 20)) 0 $((4 << 20))" how="from the mapping"
        fi
        [ "$got" = "$want" ] \
          && tap_ok "auto: a $round 4 MiB read is correct and went $how (direct reads, bytes, mmap reads, bytes, direct bytes, mmap bytes: $got)" \
          || tap_fail "auto: $round read counted as $got (want $want)"
      else
        tap_fail "auto: $round read"
      fi
    done
  fi
  # Holes are reported as holes by every path.
  holes=$(hole_chunks "$uri")
  [ "${holes:-0}" -ge 1 ] && tap_ok "$dp: sparse read sends OFFSET_HOLE chunks ($holes)" || tap_fail "$dp: no hole chunks ($holes)"
  for mode in "" --simple; do
    relay "$PY" "$here/dp_verify.py" "$uri" "$img" $mode --ops 150 --seed $RANDOM
  done
  if command -v qemu-io >/dev/null; then
    out=$(qemu-io -f raw "$uri" -c "write -P 0x5a 1M 7M" -c "write -P 0xa5 17M 5M" \
            -c "read -P 0x5a 1M 7M" -c "read -P 0xa5 17M 5M" -c "read -P 0x5a 1M 4M" 2>&1)
    if [ $? -eq 0 ] && ! grep -qi "fail\|error\|pattern" <<<"$out"; then
      tap_ok "$dp: qemu-io large reads with a 64K chunk verify patterns"
    else
      tap_fail "$dp: qemu-io pattern verify"; sed 's/^/#   /' <<<"$out" | tail -5
    fi
  else
    tap_skip "$dp: qemu-io" "qemu-io not installed"
  fi
  stop_shunt
  rc=$?
  echo "# $dp: $(stat "$T/st-$dp.json" chunks) chunks, $(stat "$T/st-$dp.json" chunks_out_of_order) structured chunks sent out of offset order"
  [ $rc -eq 0 ] && tap_ok "$dp: clean exit, stats written at exit" || tap_fail "$dp: exit status $rc"
  [ -s "$T/st-$dp.json" ] && [ "$(stat "$T/st-$dp.json" datapath)" = "$dp" ] \
    && tap_ok "$dp: stats file names the data path" || tap_fail "$dp: stats file"
done

# mmap: someone truncates the file while it is served.  Reads beyond the new
# end fail (an error, or a cut connection), the server lives on and serves
# what is left (a send racing the truncation gets EFAULT, not SIGBUS:
# tests/unit/test_mmap_truncate.c).
cp "$T/orig.img" "$img"
if start_shunt "disk=$img,datapath=mmap,chunk=64K"; then
  out=$("$PY" -c 'import nbd,os,sys
h=nbd.NBD(); h.connect_uri(sys.argv[1]); h.pread(8<<20, 16<<20)
os.truncate(sys.argv[2], 4<<20)
for simple in (False, True):
    try:
        h=nbd.NBD(); h.set_request_structured_replies(not simple); h.connect_uri(sys.argv[1])
        h.pread(1<<20, 17<<20); print("read beyond the end succeeded")
    except nbd.Error as e:
        print("failed as it should:", e.string.split("\n")[0][:60])
h=nbd.NBD(); h.connect_uri(sys.argv[1])
print("head ok" if h.pread(4<<20, 0) == open(sys.argv[2],"rb").read() else "head differs")' "nbd://127.0.0.1:$PORT/disk" "$img" 2>&1)
  echo "$out" | sed 's/^/# /'
  if [ "$(grep -c "failed as it should" <<<"$out")" -eq 2 ] && grep -q "head ok" <<<"$out" && kill -0 "$SHUNT_PID"; then
    tap_ok "mmap: file truncated under the server: reads beyond the end fail, the server survives and serves the rest"
  else
    tap_fail "mmap: truncation"
  fi
  stop_shunt
else
  tap_fail "mmap: truncation: server starts"
fi

# Chunk policy: cold reads are split at the chunk size on both streaming
# paths; on splice a page-cached read up to 1 MiB is one chunk.
for dp in splice direct; do
  cp "$T/orig.img" "$img"
  if start_shunt --stats "$T/st-ch-$dp.json" "disk=$img,datapath=$dp,chunk=64K"; then
    relay "$PY" "$here/dp_chunks.py" "nbd://127.0.0.1:$PORT/disk" "$img" "$dp"
    stop_shunt
  else
    tap_fail "$dp: chunk policy: server starts"
  fi
done

# Pipe exhaustion: 64K chunks, one worker, 24 concurrent 4 MiB reads of data
# dropped from the page cache (64 chunks each, far more than the pipes):
# chunks wait for pipes first come, first served, reads go in order, and a
# simple reply's held chunks never wait behind a later reply's.
cp "$T/orig.img" "$img"
if start_shunt --threads 1 --stats "$T/st-pipes.json" "disk=$img,datapath=splice,chunk=64K"; then
  relay "$PY" "$here/dp_burst.py" "nbd://127.0.0.1:$PORT/disk" "$img" "pipe exhaustion" --cold
  stop_shunt
  w=$(stat "$T/st-pipes.json" pipe_waits)
  [ "$w" -gt 0 ] && tap_ok "pipe exhaustion: waits counted ($w)" || tap_fail "pipe exhaustion: no pipe waits"
else
  tap_fail "pipe exhaustion: server starts"
fi

# Arena exhaustion: 2 MiB arena, 256 KiB chunks, many concurrent 4 MiB reads.
cp "$T/orig.img" "$img"
if start_shunt --arena 1M --threads 1 --stats "$T/st-arena.json" "disk=$img,datapath=direct"; then
  relay "$PY" "$here/dp_burst.py" "nbd://127.0.0.1:$PORT/disk" "$img" "tiny arena"
  stop_shunt
  w=$(stat "$T/st-arena.json" arena_waits); f=$(stat "$T/st-arena.json" arena_fallbacks)
  [ $((w + f)) -gt 0 ] && tap_ok "tiny arena: waits ($w) and fallbacks ($f) counted" || tap_fail "tiny arena: no waits/fallbacks"
else
  tap_fail "tiny arena: server starts"
fi

# An image whose size is not a multiple of 512 (min block 1): the direct
# path's last block is short; edges at the very end.
head -c 5000123 /dev/urandom >"$T/odd.img"
if start_shunt "odd=$T/odd.img,datapath=direct,chunk=64K"; then
  relay "$PY" "$here/dp_verify.py" "nbd://127.0.0.1:$PORT/odd" "$T/odd.img" --ops 100
  stop_shunt
else
  tap_fail "odd-sized image: server starts"
fi

# No datapath=: auto for a file, copy for the memory backend (no file to
# map or open O_DIRECT), said at start and in the stats file.
: >"$T/shunt.log"
if start_shunt --stats "$T/st-default.json" "disk=$img" "mem=1M,backend=memory"; then
  stop_shunt
  cfg=$("$PY" -c 'import json,sys
print(*(e["datapath"]+"/"+e["configured"] for e in json.load(open(sys.argv[1]))["exports"]))' "$T/st-default.json")
  grep -q "export 'disk':.*data path auto" "$T/shunt.log" && grep -q "export 'mem':.*data path copy" "$T/shunt.log" \
    && [ "$cfg" = "auto/auto copy/auto" ] && ! grep -q "warning" "$T/shunt.log" \
    && tap_ok "no datapath=: a file export is auto, a memory export copy, without a warning ($cfg)" \
    || { tap_fail "no datapath=: exports are $cfg"; sed 's/^/#   /' "$T/shunt.log"; }
else
  tap_fail "default data path: server starts"
fi
tap_done
