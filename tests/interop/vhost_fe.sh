#!/usr/bin/env bash
# vhost_fe.sh: the in-tree vhost-user frontend (tests/tools/vhostfe, acting as the
# VMM) against `shunt vhost`: random verified I/O with 1 and 2 queues (indirect
# descriptors, several memory regions, ADD_MEM_REG, an in-flight region, without
# RING_EVENT_IDX, a ring smaller than the queue depth), on the direct and copy data
# paths; a read-only device refuses writes and its image stays unchanged; every
# hostile mode (bad descriptors, loops, absurd chains, ring indices, malformed
# messages, memory past the end of its fd, random rings) is refused while another
# device of the same process does verified I/O meanwhile, and the process lives; a
# frontend whose memory file is truncated under the back end does not kill it;
# --stats counts requests and bytes per device;
# SIGTERM exits 0.  Bounded by request counts, never by time.
. "$(dirname "$0")/../lib.sh"
need_deps
. "$(dirname "$0")/vhost_lib.sh"

img=$T/disk.img copyimg=$T/copy.img roimg=$T/ro.img evil=$T/evil.img
truncate -s 64M "$img" "$copyimg" "$evil"
truncate -s 16M "$roimg"
stats=$T/stats.json
start_vhost --threads 2 --stats "$stats" \
  "$T/d.sock=$img,queues=2,serial=shunt-disk-1" \
  "$T/c.sock=$copyimg,datapath=copy,queues=2" \
  "$T/ro.sock=$roimg,ro" \
  "$T/evil.sock=$evil" || { tap_fail "shunt vhost started (4 sockets)"; tap_done; exit; }
tap_check "the log names the data paths (direct by default, copy as asked)" \
  bash -c "grep -q 'd.sock.*data path direct' '$T/shunt.log' || grep -q 'd.sock.*using datapath=copy' '$T/shunt.log'"

sock=$T/d.sock
tap_check "1 queue: 3000 verified requests on a zeroed disk (unwritten sectors must read zero)" \
  fe q1 --verify --requests 3000 --assume-zero --seed 21 "$sock"
tap_check "1 queue: reads and writes happened, summary ok" verified q1
tap_check "1 queue: flush, discard and write-zeroes were offered and used" \
  bash -c "[ $(json_num q1 flushes) -gt 0 ] && [ $(json_num q1 discards) -gt 0 ] && [ $(json_num q1 write_zeroes) -gt 0 ]"
tap_check "2 queues, QD 32 each: 4000 verified requests" \
  fe q2 --verify --queues 2 --qd 32 --requests 4000 --seed 22 "$sock"
tap_check "2 queues: summary ok" verified q2
tap_check "2 queues, indirect descriptors, 3 memory regions: 3000 verified requests" \
  fe q2ind --verify --queues 2 --indirect --regions 3 --requests 3000 --seed 23 "$sock"
tap_check "2 queues, ADD_MEM_REG for 4 regions, an in-flight region: 3000 verified requests" \
  fe q2slots --verify --queues 2 --mem-slots --regions 4 --inflight --requests 3000 --seed 24 "$sock"
tap_check "no RING_EVENT_IDX: 2000 verified requests" \
  fe noevent --verify --no-event-idx --requests 2000 --seed 25 "$sock"
tap_check "a ring of 16 entries with 16 requests in flight: 2000 verified requests" \
  fe small --verify --queue-size 16 --qd 16 --requests 2000 --seed 26 "$sock"
tap_check "the checker reports a mismatch when the disk is not what it expects" \
  bash -c "! '$FE' --verify --assume-zero --requests 3000 --seed 27 '$sock' >'$T/neg.json' 2>'$T/neg.err' && grep -q MISMATCH '$T/neg.err'"

tap_check "datapath=copy, 2 queues: 3000 verified requests on a zeroed disk" \
  fe copy --verify --queues 2 --requests 3000 --assume-zero --seed 28 "$T/c.sock"
tap_check "datapath=copy: summary ok" verified copy

tap_check "read-only device: reads verified, writes refused with IOERR" \
  fe ro --verify --expect-ro --assume-zero --requests 1000 --seed 29 "$T/ro.sock"
tap_check "read-only device: some writes were tried and refused" verified ro
tap_check "read-only device: without --expect-ro the frontend refuses to run" \
  bash -c "! '$FE' --verify --requests 10 '$T/ro.sock' 2>&1 | grep -q '\"result\":\"ok\"'"
tap_check "read-only device: the image is still all zeroes" cmp -s "$roimg" <(head -c 16M /dev/zero)

# Every hostile mode on one device while another device of the same process does
# verified I/O: the hostile one is refused, the other one is not disturbed.
fe busy --verify --queues 2 --requests 20000 --seed 30 "$sock" >/dev/null &
busy=$!
tap_check "hostile modes (all kinds): each refused, the process lives, a fresh connection verifies" \
  fe hostile --hostile all --backend-pid "$SHUNT_PID" "$T/evil.sock"
tap_check "... every kind reported ok" bash -c "[ \$(grep -c '\"result\":\"ok\"' '$T/hostile.json') -ge 19 ] && ! grep -q '\"result\":\"fail' '$T/hostile.json'"
tap_check "... among them memory and in-flight areas past the end of their fd (no SIGBUS)" \
  bash -c "grep -q '\"kind\":\"mem-beyond-fd\",\"result\":\"ok\"' '$T/hostile.json' && grep -q '\"kind\":\"inflight-beyond-fd\",\"result\":\"ok\"' '$T/hostile.json'"
tap_check "hostile fuzz: 200 rounds of random rings, the process lives, a fresh connection verifies" \
  fe fuzz --hostile fuzz --requests 200 --seed 31 --backend-pid "$SHUNT_PID" "$T/evil.sock"
wait "$busy"
tap_check "meanwhile another device's 20000 requests on 2 queues verified" verified busy
tap_check "shunt vhost is still running" shunt_alive
tap_check "the hostile device's broken rings were counted and logged" grep -q "queue 0 broken" "$T/shunt.log"

# A frontend whose memory file shrinks under the back end (an unsealed memfd,
# truncated through /proc): the frontend is stopped first (SIGSTOP), its memory
# file truncated, then its eventfds signalled (pidfd_getfd): the back end,
# kicked, reads a ring in pages that are gone.  It must not die of SIGBUS.
"$FE" --verify --requests 2000000 --timeout 30 "$T/evil.sock" >"$T/shrink.json" 2>"$T/shrink.err" &
shrink=$!
memfd=
for ((i = 0; i < 100; i++)); do
  memfd=$(ls -l "/proc/$shrink/fd" 2>/dev/null | awk '/memfd:/ { print $9; exit }')
  [ -n "$memfd" ] && break
  sleep 0.05
done
sleep 0.5
kill -STOP "$shrink"
tap_check "a stopped frontend's guest memory file is truncated" \
  python3 -c "import os,sys; f=os.open(sys.argv[1], os.O_RDWR); os.ftruncate(f, 0)" "/proc/$shrink/fd/$memfd"
tap_check "... and its eventfds signalled (the back end is kicked)" python3 -c "
import ctypes, os, sys
libc = ctypes.CDLL(None, use_errno=True)
pid = int(sys.argv[1]); pidfd = os.pidfd_open(pid); n = 0
for name in os.listdir('/proc/%d/fd' % pid):
    if os.readlink('/proc/%d/fd/%s' % (pid, name)) == 'anon_inode:[eventfd]':
        fd = libc.syscall(438, pidfd, int(name), 0)   # pidfd_getfd
        if fd >= 0:
            os.write(fd, (1).to_bytes(8, 'little')); os.close(fd); n += 1
assert n > 0
" "$shrink"
lost=0
for ((i = 0; i < 50; i++)); do
  rm -f "$stats"
  kill -USR1 "$SHUNT_PID"
  for ((j = 0; j < 20; j++)); do [ -s "$stats" ] && break; sleep 0.05; done
  lost=$(python3 -c "import json,sys; print(json.load(open(sys.argv[1]))['guest_pages_lost'])" "$stats" 2>/dev/null || echo 0)
  [ "$lost" -gt 0 ] && break
  sleep 0.1
done
tap_check "... the back end's writes into the vanished pages were repaired (--stats guest_pages_lost $lost)" test "$lost" -gt 0
kill -KILL "$shrink"; wait "$shrink" 2>/dev/null
tap_check "... shunt vhost lives" shunt_alive
tap_check "... and says guest pages vanished once the frontend is gone" \
  bash -c "for i in \$(seq 50); do grep -q 'pages of guest memory vanished' '$T/shunt.log' && exit 0; sleep 0.1; done; exit 1"
tap_check "... a fresh connection to that device verifies" fe aftershrink --verify --requests 500 --seed 32 "$T/evil.sock"

# --stats: SIGUSR1 writes it; per device requests and bytes from the data path counters.
rm -f "$stats"
kill -USR1 "$SHUNT_PID"
for i in $(seq 50); do [ -s "$stats" ] && break; sleep 0.1; done
tap_check "SIGUSR1 writes --stats" test -s "$stats"
tap_check "--stats is JSON with the four devices" \
  python3 -c "import json,sys; d=json.load(open(sys.argv[1])); assert len(d['devices']) == 4" "$stats"
tap_check "--stats counts the first device's requests and bytes, and its copies" \
  python3 -c "
import json,sys
d = json.load(open(sys.argv[1]))['devices'][0]
assert d['socket'].endswith('d.sock'), d
assert d['requests'] > 10000 and d['bytes_read'] > 0 and d['bytes_written'] > 0, d
assert 'cpu_copied_bytes' in d and 'mem_fixed_ios' in d, d
" "$stats"
tap_check "--stats counts the hostile device's bad requests" \
  python3 -c "import json,sys; d=json.load(open(sys.argv[1]))['devices'][3]; assert d['bad_requests'] > 0 and d['broken_queues'] > 0, d" "$stats"

tap_check "SIGTERM exits 0" stop_shunt_within 20
tap_check "the sockets are removed at exit" bash -c "! ls '$T'/*.sock 2>/dev/null | grep -q ."
tap_check "no sanitizer report in the log" bash -c "! grep -qE 'Sanitizer|runtime error:' '$T/shunt.log'"
tap_finish
