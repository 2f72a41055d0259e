/* vhostfe: a vhost-user-blk frontend acting as the VMM, for tests and benchmarks. It shares
 * memfd guest memory and split rings with a backend (shunt vhost, qemu-storage-daemon) and
 * drives it: verified random I/O (--verify), a benchmark loop (--bench) or hostile guests and
 * messages (--hostile). Each run ends with a one-line JSON summary on stdout. */
#include "vhostfe.h"

#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

uint64_t fe_rand(uint64_t *s)
{
  uint64_t x = *s;
  x ^= x >> 12;
  x ^= x << 25;
  x ^= x >> 27;
  *s = x;
  return x * 0x2545f4914f6cdd1dull;
}

double fe_now(void)
{
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return (double)t.tv_sec + t.tv_nsec / 1e9;
}

static void usage(FILE *f)
{
  fprintf(
      f,
      "usage: vhostfe [OPTION]... --verify|--bench|--hostile KIND SOCKET\n"
      "  a vhost-user-blk frontend (the VMM side) for tests and benchmarks\n"
      "device:\n"
      "  --queues N          queues (default 1)      --queue-size N  ring entries (default 256)\n"
      "  --qd N              requests in flight per queue (default 16)\n"
      "  --mem-mib N         guest memory (default 64)  --regions N  memory regions (default 1)\n"
      "  --indirect          use indirect descriptors  --no-event-idx  do not use RING_EVENT_IDX\n"
      "  --inflight          share an inflight region (INFLIGHT_SHMFD)\n"
      "  --mem-slots         ADD_MEM_REG per region instead of SET_MEM_TABLE\n"
      "  --seed N            random seed (default 1)  --timeout S  longest wait (default 30)\n"
      "  -v                  print the negotiated device\n"
      "--verify: random reads, writes, flushes, discards, write-zeroes, every read checked\n"
      "  --requests N        how many (default 1000)  --max-bs BYTES  largest request (131072)\n"
      "  --assume-zero       the disk starts zeroed (unwritten sectors are checked too)\n"
      "  --expect-ro         the device must be read-only and refuse writes with IOERR\n"
      "  --reconnect         when the backend closes the connection, connect again (same\n"
      "                      memory, inflight area; rings restart at their used index)\n"
      "  --min-reconnects N  go on until N reconnects, then 100 requests more\n"
"  --check-close       when the backend closes the connection, every request it took\n"
"                      (its inflight region: needs --inflight) must have been answered\n"
      "  --ready-file PATH   created once the first request completed\n"
      "  --serial TEXT       GET_ID must answer TEXT\n"
      "--bench: --rw randread|randwrite|read, --bs BYTES (4096), --seconds S (5) or\n"
      "  --requests N, --backend-pid PID (report the backend's CPU time)\n"
      "--hostile KIND: all, fuzz (--requests N rounds of random rings, default 200), or one of:\n"
      "  %s\n"
      "  the backend must refuse it (IOERR, a stopped ring: nothing within 2 s, a failure\n"
      "  ack, a closed connection), then a fresh connection must still do verified I/O\n"
      "  (and --backend-pid must live)\n",
      fe_hostile_kinds);
}

int main(int argc, char **argv)
{
  struct fe_opts o = { .queues = 1,
                       .queue_size = 256,
                       .qd = 16,
                       .regions = 1,
                       .mem_size = 64ull << 20,
                       .event_idx = true,
                       .seed = 1,
                       .timeout_s = 30 };
  struct fe_verify_opts v = { .requests = 1000, .max_bs = 131072 };
  struct fe_bench_opts b = { .rw = "randread", .bs = 4096, .seconds = 5 };
  const char *hostile = NULL;
  enum { NONE, VERIFY, BENCH, HOSTILE } mode = NONE;
  bool have_requests = false;
  static const struct option opts[] = {
    { "queues", 1, 0, 'Q' },       { "queue-size", 1, 0, 'N' },
    { "qd", 1, 0, 'd' },           { "mem-mib", 1, 0, 'm' },
    { "regions", 1, 0, 'R' },      { "indirect", 0, 0, 'I' },
    { "no-event-idx", 0, 0, 'E' }, { "inflight", 0, 0, 'F' },
    { "mem-slots", 0, 0, 'S' },    { "seed", 1, 0, 's' },
    { "timeout", 1, 0, 't' },      { "verify", 0, 0, 'V' },
    { "requests", 1, 0, 'n' },     { "max-bs", 1, 0, 'M' },
    { "assume-zero", 0, 0, 'Z' },  { "expect-ro", 0, 0, 'O' },
    { "bench", 0, 0, 'B' },        { "rw", 1, 0, 'w' },
    { "bs", 1, 0, 'b' },           { "seconds", 1, 0, 'T' },
    { "backend-pid", 1, 0, 'p' },  { "hostile", 1, 0, 'H' },
    { "reconnect", 0, 0, 'C' },    { "check-close", 0, 0, 'X' },    { "min-reconnects", 1, 0, 'K' },
    { "ready-file", 1, 0, 'Y' },   { "serial", 1, 0, 'D' },
    { "help", 0, 0, 'h' },         { 0, 0, 0, 0 }
  };
  int c;
  while ((c = getopt_long(argc, argv, "vh", opts, NULL)) != -1) {
    switch (c) {
    case 'Q': o.queues = (unsigned)atoi(optarg); break;
    case 'N': o.queue_size = (unsigned)atoi(optarg); break;
    case 'd': o.qd = (unsigned)atoi(optarg); break;
    case 'm': o.mem_size = strtoull(optarg, NULL, 0) << 20; break;
    case 'R': o.regions = (unsigned)atoi(optarg); break;
    case 'I': o.indirect = true; break;
    case 'E': o.event_idx = false; break;
    case 'F': o.inflight = true; break;
    case 'S': o.mem_slots = true; break;
    case 's': o.seed = strtoull(optarg, NULL, 0); break;
    case 't': o.timeout_s = atoi(optarg); break;
    case 'V': mode = VERIFY; break;
    case 'n':
      v.requests = b.requests = strtoull(optarg, NULL, 0);
      have_requests = true;
      break;
    case 'M': v.max_bs = (uint32_t)strtoul(optarg, NULL, 0); break;
    case 'Z': o.assume_zero = true; break;
    case 'O': v.expect_ro = true; break;
    case 'B': mode = BENCH; break;
    case 'w': b.rw = optarg; break;
    case 'b': b.bs = (uint32_t)strtoul(optarg, NULL, 0); break;
    case 'T': b.seconds = atof(optarg); break;
    case 'p': b.backend_pid = atoi(optarg); break;
    case 'H':
      mode = HOSTILE;
      hostile = optarg;
      break;
    case 'C': o.reconnect = true; break;
    case 'X': o.check_close = true; break;
    case 'K':
      v.min_reconnects = (unsigned)atoi(optarg);
      o.reconnect = true;
      break;
    case 'Y': v.ready_file = optarg; break;
    case 'D': v.serial = optarg; break;
    case 'v': o.verbose = true; break;
    case 'h': usage(stdout); return 0;
    default: usage(stderr); return 2;
    }
  }
  if (optind + 1 != argc || mode == NONE) {
    usage(stderr);
    return 2;
  }
  o.socket = argv[optind];
  if (o.queues == 0 || o.queues > FE_MAX_QUEUES || o.qd == 0 || o.qd > o.queue_size ||
      o.queue_size < 4 || o.queue_size > 32768 || (o.queue_size & (o.queue_size - 1)) ||
      o.regions == 0 || o.regions > FE_MAX_REGIONS || o.timeout_s <= 0 || v.requests == 0 ||
      (mode == BENCH && !have_requests && b.seconds <= 0)) {
    FE_ERR("bad option values: --queues 1..%d, --queue-size a power of 2 in 4..32768, "
           "--qd 1..queue-size, --regions 1..%d, "
           "--timeout and --requests above 0",
           FE_MAX_QUEUES, FE_MAX_REGIONS);
    return 2;
  }
  if (o.reconnect && !o.inflight && o.qd != 1) {
    /* Without an inflight area the backend restarts each ring at its used index: only
     * in-order completion (one request in flight per queue) makes that the right place. */
    FE_ERR("--reconnect needs --inflight, or --qd 1");
    return 2;
  }
  if (o.check_close && !o.inflight) {
    FE_ERR("--check-close needs --inflight (the backend marks what it took there)");
    return 2;
  }
  if (mode == HOSTILE)
    return fe_hostile(&o, hostile, b.backend_pid, have_requests ? v.requests : 200);

  struct fe_dev d;
  if (fe_connect(&d, &o) < 0 || fe_setup(&d) < 0) {
    printf("{\"mode\":\"%s\",\"result\":\"fail\",\"stage\":\"setup\"}\n",
           mode == VERIFY ? "verify" : "bench");
    fe_close(&d);
    return 1;
  }
  int rc = mode == VERIFY ? fe_verify(&d, &v) : fe_bench(&d, &b);
  /* after a failure too: what was in flight has been waited for, the rings are stopped */
  if (fe_teardown(&d) < 0 && rc == 0)
    rc = 1;
  return rc;
}
