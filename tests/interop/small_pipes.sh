#!/usr/bin/env bash
# small_pipes.sh: the splice data path when the server's user is not
# privileged and its pipes come out small (a read must never fail or hang
# for that reason).  `shunt serve` runs as user nobody with
# fs.pipe-user-pages-soft lowered: past it the kernel gives a new pipe 2
# pages and refuses F_SETPIPE_SZ (pipe(7)).  Another process of nobody takes
# the pipe pages after the server has learned big pipes, so the next pipes
# are smaller than the chunks planned for them (the hang this guards
# against: a splice into a full pipe waiting forever).  Then several
# clients with large reads, hot and cold, splice and mmap (whose cold reads
# go the splice way), and nbdcopy with 4 MiB requests over 4 connections:
# every byte is compared with the image, and the server must still answer.
# The sysctls are put back on any exit.  Needs root (sysctls, setpriv).
. "$(dirname "$0")/../lib.sh"
here=$(cd "$(dirname "$0")" && pwd)
PY=/usr/bin/python3
SOFT=/proc/sys/fs/pipe-user-pages-soft

if [ "$(id -u)" -ne 0 ] || ! command -v setpriv >/dev/null || ! id nobody >/dev/null 2>&1 \
   || ! [ -w "$SOFT" ]; then
  tap_skip "small pipes" "needs root, setpriv, user nobody and a writable $SOFT"
  tap_done; exit
fi
old_soft=$(cat "$SOFT")
restore() { echo "$old_soft" >"$SOFT"; }
trap 'restore; _cleanup' EXIT
trap 'exit 143' TERM INT HUP

# The image where nobody can read it (the scratch directory $T is 0700).
D=$(mktemp -d "$T/pub.XXXXXX")
chmod 755 "$T" "$D"
img=$D/disk.img
head -c 32M /dev/urandom >"$img"
chown nobody "$img"
cat "$img" >/dev/null
NOBODY=(setpriv --reuid=nobody --regid=nogroup --clear-groups)   # not a function: $! is the process
# hog: a process of nobody holding one pipe of PAGES pages (the pages count
# against the user's limit as long as it lives).
hog() {
  "${NOBODY[@]}" "$PY" -c 'import fcntl, os, sys, time
r, w = os.pipe()
try:
    fcntl.fcntl(w, 1031, int(sys.argv[1]) * 4096)   # F_SETPIPE_SZ
except OSError:
    pass   # past the limit already: holds what it got
print("hog", fcntl.fcntl(w, 1032), flush=True)   # F_GETPIPE_SZ
time.sleep(600)' "$1" >"$T/hog.out" 2>&1 &
  HOG=$!
  _cleanup_pids+=("$HOG")
  for _ in $(seq 50); do grep -q hog "$T/hog.out" && { sed 's/^/# /' "$T/hog.out"; return 0; }; sleep 0.1; done
  cat "$T/hog.out"; return 1
}
# readcheck LEN OFF: one read through a fresh connection, compared with the image.
readcheck() {
  timeout 30 "$PY" -c 'import nbd, sys
h = nbd.NBD(); h.connect_uri(sys.argv[1]); n, o = int(sys.argv[3]), int(sys.argv[4])
sys.exit(0 if h.pread(n, o) == open(sys.argv[2], "rb").read()[o:o + n] else 1)' \
    "nbd://127.0.0.1:$PORT/disk" "$img" "$1" "$2"
}
start_nobody() { # start_nobody THREADS EXPORT_OPTS
  PORT=$(free_port)
  "${NOBODY[@]}" "$SHUNT" serve -t "$1" --listen "127.0.0.1:$PORT" "disk=$img,$2" >>"$T/shunt.log" 2>&1 &
  SHUNT_PID=$!
  _cleanup_pids+=("$SHUNT_PID")
  wait_port "$PORT" 10
}
stop_all() { stop_shunt_within 20 >/dev/null; kill "${HOG:-}" 2>/dev/null; wait "${HOG:-}" 2>/dev/null; HOG=; }

# 1. Learn 64 KiB pipes (the 16-page default: F_SETPIPE_SZ is refused), then
# a hog takes the user's 16 pages: the next pipes have 2 pages, fewer than a
# 32 KiB chunk spans.
echo 16 >"$SOFT"
if start_nobody 1 datapath=splice; then
  tap_check "64K pipes: 1 MiB read right" readcheck 1048576 12288
  hog 16 || tap_fail "hog started"
  tap_check "2-page pipes after 64K ones: 1 MiB read completes, right" readcheck 1048576 12288
  tap_check "2-page pipes: 3 MiB read at an odd offset completes, right" readcheck 3145728 1536
  shunt_alive && tap_ok "server alive" || tap_fail "server alive"
  stop_all
else
  tap_fail "server starts as nobody"
fi

# 2. Learn 1 MiB pipes, then a hog takes 256 of 300 pages: new pipes stay at
# 16 pages, and a page-cached 1 MiB read planned as one chunk (DP_HOT_MAX)
# gets a 64 KiB pipe.
echo 300 >"$SOFT"
if start_nobody 1 datapath=splice; then
  tap_check "1 MiB pipes: hot 1 MiB read right" readcheck 1048576 4096
  hog 256 || tap_fail "hog started"
  tap_check "64K pipe for a hot one-chunk 1 MiB read: completes, right" readcheck 1048576 4096
  tap_check "64K pipes: hot 1 MiB read at an odd offset, right" readcheck 1048576 512
  shunt_alive && tap_ok "server alive" || tap_fail "server alive"
  stop_all
else
  tap_fail "server starts as nobody"
fi

# 3. Several clients at once on 2 workers, 64 pages for all of nobody's
# pipes (and a hog holding 16 of them): pipes of every size come and go.
echo 64 >"$SOFT"
for dp in splice mmap; do
  for temp in hot cold; do
    if ! start_nobody 2 "datapath=$dp"; then
      tap_fail "$dp: server starts as nobody"; continue
    fi
    readcheck 1048576 0 >/dev/null   # learn the pipe size first
    hog 16 || tap_fail "hog started"
    args=(90)
    [ "$temp" = cold ] && args+=(--cold)
    tap_relay "$PY" "$here/dp_smallpipes.py" "nbd://127.0.0.1:$PORT/disk" "$img" "$dp $temp" "${args[@]}"
    if [ "$dp$temp" = splicecold ]; then
      rm -f "$D/out.img"
      tap_check "nbdcopy, 4 connections, 4 MiB requests: a copy equal to the image" \
        sh -c "timeout 120 nbdcopy --connections=4 --request-size=4194304 nbd://127.0.0.1:$PORT/disk '$D/out.img' && cmp '$img' '$D/out.img'"
    fi
    tap_check "$dp $temp: server still answers" readcheck 65536 0
    shunt_alive && tap_ok "$dp $temp: server alive" || tap_fail "$dp $temp: server alive"
    stop_all
  done
done

restore
tap_check "fs.pipe-user-pages-soft restored" test "$(cat "$SOFT")" = "$old_soft"
tap_finish
