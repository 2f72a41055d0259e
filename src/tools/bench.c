/* bench.c: `shunt bench URI`, a load generator over libshunt: random or
 * sequential I/O at a given block size, queue depth, connection count and
 * read/write mix for a fixed duration, optionally verifying every read against
 * what this run wrote.  Reports IOPS, throughput and latency percentiles. */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

#include "common/json.h"
#include "common/macros.h"
#include "common/units.h"
#include "shunt/shunt.h"
#include "common/log.h"
#include "tools/cli.h"
#include "tools/connect.h"
#include "tools/commands.h"

#define GEN_UNKNOWN UINT32_MAX   /* a write failed: content unknown, do not verify */

struct bench;
struct op {
  struct bench *b;
  unsigned char *buf;
  uint64_t block;
  uint32_t gen;             /* generation being written */
  bool write, busy;
  uint64_t t0;
};

struct lat {
  uint32_t *us;
  size_t n, cap;
};

struct bench {
  struct shunt_handle *h;
  uint64_t bs, nblocks, seq_next, rng;
  unsigned read_pct;
  bool random, verify, json;
  bool disconnected;        /* every connection is gone: stop */
  uint32_t *gen;            /* per block: generation last written (0 = never) */
  bool *busy;               /* per block: an op is in flight */
  struct op *ops;
  unsigned qd;
  uint64_t reads, writes, errors, verify_errors, unverified, bytes;
  struct lat lat_r, lat_w;
  char first_error[1024];
};

static void usage(FILE *f)
{
  fprintf(f,
    "usage: shunt bench [OPTIONS] URI\n"
    "\n"
    "Load-test an NBD export and report IOPS, throughput and latency percentiles.\n"
    "\n"
    "      --pattern rand|seq   access pattern (rand)\n"
    "  -b, --block-size N       bytes per request (4K)\n"
    "      --queue-depth N      requests in flight (32)\n"
    "  -C, --connections N      connections, if the server allows multi-conn (1)\n"
    "      --duration T         run time: 10, 10s, 500ms, 1m (10s)\n"
    "      --read-percent N     percentage of reads, the rest writes (100)\n"
    "      --size N             use only the first N bytes of the export\n"
    "      --verify             writes carry a per-block pattern; every read of a\n"
    "                           block written in this run is checked\n"
    "      --reconnect N        after a dropped connection, reconnect up to N times\n"
    "                           (with backoff) and retry the requests in flight\n"
    "      --failover URI       another URI of the same export (another gateway of\n"
    "                           a shared disk; repeat for more): a lost connection\n"
    "                           is re-established on the next URI, round robin, and\n"
    "                           its requests resent (implies --reconnect 10)\n"
    "      --staged             receive reads through a library buffer and copy\n"
    "                           them (to compare with the direct path)\n"
    "      --no-extended        do not ask for extended headers (structured replies\n"
    "                           with compact headers, as with servers that lack them)\n"
    "      --seed N             random seed (default: time)\n"
    "      --json               JSON report on stdout\n"
    "  -V, --version            print the version\n"
    "  -h, --help               this text\n"
    "\n"
    "Exit status: 0 when every request succeeded (and verified), 1 otherwise.\n");
}

static uint64_t now_ns(void)
{
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static uint64_t rnd(struct bench *b)
{
  b->rng ^= b->rng << 13;
  b->rng ^= b->rng >> 7;
  b->rng ^= b->rng << 17;
  return b->rng;
}

static void lat_add(struct lat *l, uint64_t ns)
{
  if (l->n == l->cap) {
    size_t c = l->cap ? l->cap * 2 : 65536;
    uint32_t *p = realloc(l->us, c * sizeof *p);
    if (!p)
      return;
    l->us = p;
    l->cap = c;
  }
  uint64_t us = ns / 1000;
  l->us[l->n++] = us > UINT32_MAX ? UINT32_MAX : (uint32_t)us;
}

static int cmp_u32(const void *a, const void *b)
{
  uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
  return x < y ? -1 : x > y;
}

static uint32_t pct(const struct lat *l, double p)
{
  if (!l->n)
    return 0;
  size_t i = (size_t)(p / 100.0 * (double)(l->n - 1) + 0.5);
  return l->us[i < l->n ? i : l->n - 1];
}

/* The content of block `block` at generation `gen`: 8-byte words that name
 * both, so a misplaced or stale block is caught. */
static void fill_pattern(unsigned char *buf, uint64_t bs, uint64_t block, uint32_t gen)
{
  uint64_t *w = (uint64_t *)buf;
  uint64_t base = (block * UINT64_C(0x9E3779B97F4A7C15)) ^ ((uint64_t)gen << 40);
  for (uint64_t i = 0; i < bs / 8; i++)
    w[i] = base + i;
}

static bool check_pattern(const unsigned char *buf, uint64_t bs, uint64_t block, uint32_t gen)
{
  const uint64_t *w = (const uint64_t *)buf;
  uint64_t base = (block * UINT64_C(0x9E3779B97F4A7C15)) ^ ((uint64_t)gen << 40);
  for (uint64_t i = 0; i < bs / 8; i++)
    if (w[i] != base + i)
      return false;
  return true;
}

static void note_error(struct bench *b, const char *msg)
{
  b->errors++;
  if (!b->first_error[0])
    snprintf(b->first_error, sizeof b->first_error, "%s", msg);
}

static void on_done(const struct shunt_result *r)
{
  struct op *o = r->user;
  struct bench *b = o->b;
  uint64_t dt = now_ns() - o->t0;
  o->busy = false;
  b->busy[o->block] = false;
  if (r->error) {
    note_error(b, r->message);
    if (o->write)
      b->gen[o->block] = GEN_UNKNOWN;
    return;
  }
  b->bytes += b->bs;
  if (o->write) {
    b->writes++;
    lat_add(&b->lat_w, dt);
    b->gen[o->block] = o->gen;
    return;
  }
  b->reads++;
  lat_add(&b->lat_r, dt);
  if (b->verify) {
    uint32_t g = b->gen[o->block];
    if (g == 0 || g == GEN_UNKNOWN)
      b->unverified++;
    else if (!check_pattern(o->buf, b->bs, o->block, g)) {
      b->verify_errors++;
      if (!b->first_error[0])
        snprintf(b->first_error, sizeof b->first_error,
                 "verify: block %llu (offset %llu) does not hold generation %u",
                 (unsigned long long)o->block, (unsigned long long)(o->block * b->bs), g);
    }
  }
}

static void start_op(struct bench *b, struct op *o)
{
  uint64_t blk = 0;
  int tries;
  for (tries = 0; tries < 8; tries++) {
    blk = b->random ? rnd(b) % b->nblocks : b->seq_next++ % b->nblocks;
    if (!b->busy[blk])
      break;
  }
  if (tries == 8)
    return; /* every pick busy; try again next round */
  o->block = blk;
  o->write = (rnd(b) % 100) >= b->read_pct;
  if (o->write) {
    o->gen = b->gen[blk] == GEN_UNKNOWN ? 1 : b->gen[blk] + 1;
    if (o->gen == GEN_UNKNOWN)
      o->gen = 1;
    if (b->verify)
      fill_pattern(o->buf, b->bs, blk, o->gen);
  }
  struct iovec v = { o->buf, b->bs };
  o->t0 = now_ns();
  int64_t c = o->write ? shunt_aio_pwrite(b->h, &v, 1, blk * b->bs, 0, on_done, o)
                       : shunt_aio_pread(b->h, &v, 1, blk * b->bs, 0, on_done, o);
  if (c < 0) {
    note_error(b, shunt_last_error(b->h));
    if (c == -ENOTCONN)
      b->disconnected = true;
    return;
  }
  o->busy = true;
  b->busy[blk] = true;
}

static void report(struct bench *b, const char *uri, double secs, unsigned conns)
{
  uint64_t reconnects = shunt_get_stat(b->h, SHUNT_STAT_RECONNECTS);
  uint64_t retried = shunt_get_stat(b->h, SHUNT_STAT_RETRIED);
  uint64_t copied = shunt_get_stat(b->h, SHUNT_STAT_PAYLOAD_BYTES_COPIED);
  struct rusage ru;
  getrusage(RUSAGE_SELF, &ru);
  double cpu = (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6 +
               (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec / 1e6;
  double gib = (double)b->bytes / (1 << 30);
  if (b->lat_r.n)
    qsort(b->lat_r.us, b->lat_r.n, sizeof(uint32_t), cmp_u32);
  if (b->lat_w.n)
    qsort(b->lat_w.us, b->lat_w.n, sizeof(uint32_t), cmp_u32);
  struct lat all = { 0 };
  all.n = b->lat_r.n + b->lat_w.n;
  all.us = malloc((all.n ? all.n : 1) * sizeof(uint32_t));
  if (all.us) {
    if (b->lat_r.n)
      memcpy(all.us, b->lat_r.us, b->lat_r.n * sizeof(uint32_t));
    if (b->lat_w.n)
      memcpy(all.us + b->lat_r.n, b->lat_w.us, b->lat_w.n * sizeof(uint32_t));
    if (all.n)
      qsort(all.us, all.n, sizeof(uint32_t), cmp_u32);
  } else {
    all.n = 0;
  }
  uint64_t ops = b->reads + b->writes;
  double iops = secs > 0 ? (double)ops / secs : 0;
  double mibs = secs > 0 ? (double)b->bytes / secs / 1048576 : 0;
  if (b->json) {
    struct json j;
    json_init_file(&j, stdout);
    json_object(&j, NULL, JSON_BLOCK);
    json_string(&j, "uri", uri);
    json_string(&j, "pattern", b->random ? "rand" : "seq");
    json_uint(&j, "block_size", b->bs);
    json_uint(&j, "queue_depth", b->qd);
    json_uint(&j, "connections", conns);
    json_string(&j, "replies", shunt_get_flag(b->h, SHUNT_HAS_EXTENDED_HEADERS) == 1 ? "extended"
                               : shunt_get_flag(b->h, SHUNT_HAS_STRUCTURED_REPLIES) == 1 ? "structured"
                               : "simple");
    json_uint(&j, "read_percent", b->read_pct);
    json_bool(&j, "verify", b->verify);
    json_double(&j, "seconds", secs, 3);
    json_uint(&j, "ops", ops);
    json_uint(&j, "reads", b->reads);
    json_uint(&j, "writes", b->writes);
    json_uint(&j, "errors", b->errors);
    json_uint(&j, "verify_errors", b->verify_errors);
    json_uint(&j, "unverified_reads", b->unverified);
    json_uint(&j, "reconnects", reconnects);
    json_uint(&j, "retried", retried);
    json_uint(&j, "failovers", shunt_get_stat(b->h, SHUNT_STAT_FAILOVERS));
    json_uint(&j, "payload_bytes_copied", copied);
    json_uint(&j, "receive_calls", shunt_get_stat(b->h, SHUNT_STAT_RECEIVE_CALLS));
    json_double(&j, "cpu_seconds", cpu, 3);
    json_double(&j, "cpu_seconds_per_gib", gib > 0 ? cpu / gib : 0, 3);
    json_double(&j, "iops", iops, 1);
    json_double(&j, "mib_per_second", mibs, 2);
    const struct { const char *name; struct lat *l; } L[] = {
      { "latency_us", &all }, { "read_latency_us", &b->lat_r }, { "write_latency_us", &b->lat_w },
    };
    for (int i = 0; i < 3; i++) {
      json_object(&j, L[i].name, JSON_LINE);
      json_uint(&j, "p50", pct(L[i].l, 50));
      json_uint(&j, "p99", pct(L[i].l, 99));
      json_uint(&j, "p99.9", pct(L[i].l, 99.9));
      json_uint(&j, "max", pct(L[i].l, 100));
      json_end(&j);
    }
    json_string(&j, "first_error", b->first_error[0] ? b->first_error : NULL);
    json_end(&j);
    if (json_finish(&j) < 0)
      log_msg(LOG_ERROR, NULL, NULL, "writing the JSON report failed");
  } else {
    printf("shunt bench: %s: %s, block size %llu, queue depth %u, %u connection(s), %u%% reads%s\n",
           uri, b->random ? "random" : "sequential", (unsigned long long)b->bs, b->qd, conns,
           b->read_pct, b->verify ? ", verified" : "");
    printf("  %.2f s: %llu ops (%llu reads, %llu writes), %llu errors",
           secs, (unsigned long long)ops, (unsigned long long)b->reads,
           (unsigned long long)b->writes, (unsigned long long)b->errors);
    if (b->verify)
      printf(", %llu verify errors (%llu reads of unwritten blocks not checked)",
             (unsigned long long)b->verify_errors, (unsigned long long)b->unverified);
    if (reconnects)
      printf(", %llu reconnects (%llu to another URI, %llu requests retried)",
             (unsigned long long)reconnects,
             (unsigned long long)shunt_get_stat(b->h, SHUNT_STAT_FAILOVERS),
             (unsigned long long)retried);
    printf("\n  %.0f IOPS, %.2f MiB/s, client CPU %.2f s (%.3f s/GiB), %llu payload bytes copied\n",
           iops, mibs, cpu, gib > 0 ? cpu / gib : 0, (unsigned long long)copied);
    printf("  latency us: p50 %u, p99 %u, p99.9 %u, max %u\n", pct(&all, 50), pct(&all, 99),
           pct(&all, 99.9), pct(&all, 100));
    if (b->first_error[0])
      printf("  first error: %s\n", b->first_error);
  }
  free(all.us);
}

int cmd_bench(int argc, char **argv)
{
  enum { O_VERIFY = 256, O_SEED, O_JSON, O_RECONNECT, O_STAGED, O_NO_EXTENDED, O_FAILOVER };
  static const struct option lo[] = {
    { "pattern", required_argument, NULL, 'p' }, { "block-size", required_argument, NULL, 'b' },
    { "queue-depth", required_argument, NULL, 'q' }, { "connections", required_argument, NULL, 'C' },
    { "duration", required_argument, NULL, 't' }, { "read-percent", required_argument, NULL, 'r' },
    { "size", required_argument, NULL, 's' }, { "verify", no_argument, NULL, O_VERIFY },
    { "seed", required_argument, NULL, O_SEED }, { "json", no_argument, NULL, O_JSON },
    { "reconnect", required_argument, NULL, O_RECONNECT },
    { "staged", no_argument, NULL, O_STAGED },
    { "no-extended", no_argument, NULL, O_NO_EXTENDED },
    { "failover", required_argument, NULL, O_FAILOVER },
    { "version", no_argument, NULL, 'V' },
    { "help", no_argument, NULL, 'h' }, { NULL, 0, NULL, 0 },
  };
  struct bench b = { .bs = 4096, .qd = 32, .read_pct = 100, .random = true };
  bool staged = false, no_extended = false;
  struct tools_failover failover = { .n = 0 };
  uint64_t conns = 1, dur_ms = 10000, qd = 32, rp = 100, limit = 0, seed = 0, reconnect = 0;
  int c;
  /* --pattern, --queue-depth, --duration, --read-percent and --size have
   * no letter: -p, -q, -t, -r and -s mean port, quiet, threads, read-only
   * and stdio across the subcommands (docs/cli.md). */
  while ((c = cli_getopt(argc, argv, "b:C:Vh", lo)) != -1) {
    bool bad = false;
    switch (c) {
    case 'p':
      if (!strcmp(optarg, "rand") || !strcmp(optarg, "random")) b.random = true;
      else if (!strcmp(optarg, "seq") || !strcmp(optarg, "sequential")) b.random = false;
      else bad = true;
      break;
    case 'b': bad = units_parse_size(optarg, &b.bs) < 0 || b.bs < 8 || b.bs % 8 || b.bs > (UINT64_C(32) << 20); break;
    case 'q': bad = units_parse_size(optarg, &qd) < 0 || qd < 1 || qd > 4096; break;
    case 'C': bad = units_parse_size(optarg, &conns) < 0 || conns < 1 || conns > 64; break;
    case 't': bad = units_parse_duration_ms(optarg, &dur_ms) < 0 || dur_ms == 0; break;
    case 'r': bad = units_parse_size(optarg, &rp) < 0 || rp > 100; break;
    case 's': bad = units_parse_size(optarg, &limit) < 0 || limit == 0; break;
    case O_VERIFY: b.verify = true; break;
    case O_SEED: bad = units_parse_size(optarg, &seed) < 0; break;
    case O_RECONNECT: bad = units_parse_size(optarg, &reconnect) < 0 || reconnect > 1000; break;
    case O_JSON: b.json = true; break;
    case O_STAGED: staged = true; break;
    case O_NO_EXTENDED: no_extended = true; break;
    case O_FAILOVER:
      if (tools_failover_add(&failover, "bench", "--failover", optarg))
        return 2;
      break;
    case 'V': return cli_version();
    case 'h': usage(stdout); return 0;
    default: return 2;
    }
    if (bad)
      return cli_usage_error("bench", "bad value '%s' for --%s", optarg, cli_option_name(lo, c));
  }
  if (optind != argc - 1)
    return cli_usage_error("bench", optind == argc ? "no URI given" : "one URI expected, not %d arguments", argc - optind);
  const char *uri = argv[optind];
  b.qd = (unsigned)qd;
  b.read_pct = (unsigned)rp;
  b.rng = seed ? seed : (uint64_t)time(NULL) ^ (uint64_t)now_ns();
  if (!b.rng)
    b.rng = 1;
  struct tools_conn_opts o = { .connections = (unsigned)conns, .reconnect = (unsigned)reconnect,
                               .copy_reads = staged, .no_extended = no_extended,
                               .failover = &failover };
  char err[512];
  if (tools_connect(&b.h, uri, &o, err, sizeof err) < 0) {
    log_msg(LOG_ERROR, NULL, NULL, "%s", err);
    return 1;
  }
  uint64_t esize = (uint64_t)shunt_get_size(b.h);
  uint64_t min_block = (uint64_t)shunt_get_block_size(b.h, SHUNT_BLOCK_MIN);
  uint64_t max_block = (uint64_t)shunt_get_block_size(b.h, SHUNT_BLOCK_MAX);
  uint64_t region = limit && limit < esize ? limit : esize;
  int rc = 1;
  if (b.read_pct < 100 && shunt_get_flag(b.h, SHUNT_IS_READ_ONLY) == 1) {
    log_msg(LOG_ERROR, NULL, NULL, "%s is read-only; use --read-percent 100", uri);
    goto out;
  }
  if (b.bs > max_block || b.bs % min_block) {
    log_msg(LOG_ERROR, NULL, NULL, "block size %llu does not suit the server (min %llu, max %llu)",
            (unsigned long long)b.bs, (unsigned long long)min_block, (unsigned long long)max_block);
    goto out;
  }
  b.nblocks = region / b.bs;
  if (b.nblocks == 0) {
    log_msg(LOG_ERROR, NULL, NULL, "export smaller than one block");
    goto out;
  }
  b.gen = calloc(b.nblocks, sizeof *b.gen);
  b.busy = calloc(b.nblocks, sizeof *b.busy);
  b.ops = calloc(b.qd, sizeof *b.ops);
  if (!b.gen || !b.busy || !b.ops)
    goto oom;
  for (unsigned i = 0; i < b.qd; i++) {
    b.ops[i].b = &b;
    if (!(b.ops[i].buf = aligned_alloc(4096, ROUND_UP(b.bs, 4096))))
      goto oom;
    memset(b.ops[i].buf, 0xa5, b.bs);
  }
  uint64_t t0 = now_ns(), end = t0 + dur_ms * 1000000;
  while (now_ns() < end && !b.disconnected) {
    for (unsigned i = 0; i < b.qd && !b.disconnected; i++)
      if (!b.ops[i].busy)
        start_op(&b, &b.ops[i]);
    if (shunt_in_flight(b.h) == 0)
      continue;
    int r = shunt_poll(b.h, 100);
    if (r < 0) {
      note_error(&b, strerror(-r));
      break;
    }
  }
  while (shunt_in_flight(b.h) && shunt_poll(b.h, 1000) >= 0)
    ;
  double secs = (double)(now_ns() - t0) / 1e9;
  report(&b, uri, secs, shunt_get_connections(b.h));
  rc = b.errors || b.verify_errors ? 1 : 0;
  goto out;
oom:
  log_msg(LOG_ERROR, NULL, NULL, "out of memory");
out:
  shunt_close(b.h);
  for (unsigned i = 0; b.ops && i < b.qd; i++)
    free(b.ops[i].buf);
  free(b.ops);
  free(b.gen);
  free(b.busy);
  free(b.lat_r.us);
  free(b.lat_w.us);
  return rc;
}
