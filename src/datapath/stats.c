/* stats.c: per-export accounting (see stats.h). */
#include <string.h>
#include <time.h>

#include "datapath/stats.h"
#include "proto/nbd-protocol.h"

static const char *const path_names[DP_NPATHS] = { "copy", "splice", "direct", "mmap" };
static const char *const cmd_names[DP_NCMDS] = {
  [DP_CMD_READ] = "read", [DP_CMD_WRITE] = "write", [DP_CMD_FLUSH] = "flush", [DP_CMD_TRIM] = "trim",
  [DP_CMD_ZERO] = "zero", [DP_CMD_BLOCK_STATUS] = "block-status", [DP_CMD_CACHE] = "cache",
  [DP_CMD_OTHER] = "other",
};
static const char *const err_names[DP_NERRS] = {
  [DP_ERR_EPERM] = "EPERM", [DP_ERR_EIO] = "EIO", [DP_ERR_ENOMEM] = "ENOMEM", [DP_ERR_EINVAL] = "EINVAL",
  [DP_ERR_ENOSPC] = "ENOSPC", [DP_ERR_EOVERFLOW] = "EOVERFLOW", [DP_ERR_ENOTSUP] = "ENOTSUP",
  [DP_ERR_ESHUTDOWN] = "ESHUTDOWN", [DP_ERR_OTHER] = "other",
};

unsigned dp_stats_slots = 1;

uint64_t dp_now(void)
{
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

void dp_times_disk(struct dp_times *t)
{
  uint64_t now = dp_now();
  if (!t->first_disk)
    t->first_disk = now;
  t->last_disk = now;
}

void dp_times_net(struct dp_times *t)
{
  uint64_t now = dp_now();
  if (!t->first_net)
    t->first_net = now;
  t->last_net = now;
}

static uint64_t since(uint64_t t0, uint64_t t)
{
  return t > t0 ? t - t0 : 0;
}

void dp_stats_account(struct dp_stats *st, const struct dp_times *t, int is_write)
{
  struct dp_phase_stats *p = is_write ? &st->write_phase : &st->read_phase;
  uint64_t end, db, de, nb, ne, ov = 0;

  if (!t->recv || !t->last_disk || !t->last_net)
    return;
  end = t->last_disk > t->last_net ? t->last_disk : t->last_net;
  db = t->disk_begin ? t->disk_begin : t->recv;
  de = t->last_disk;
  nb = t->net_begin ? t->net_begin : t->first_net;
  ne = t->last_net;
  if (de > nb && ne > db)
    ov = (de < ne ? de : ne) - (db > nb ? db : nb);
  if ((int64_t)ov < 0)
    ov = 0;
  stat_add(&p->count, 1);
  stat_add(&p->first_disk, since(t->recv, t->first_disk));
  stat_add(&p->first_net, since(t->recv, t->first_net));
  stat_add(&p->last_disk, since(t->recv, t->last_disk));
  stat_add(&p->last_net, since(t->recv, t->last_net));
  stat_add(&p->total, since(t->recv, end));
  stat_add(&p->overlap, ov);
}

enum dp_cmd dp_stats_cmd(uint16_t nbd_cmd)
{
  switch (nbd_cmd) {
  case NBD_CMD_READ: return DP_CMD_READ;
  case NBD_CMD_WRITE: return DP_CMD_WRITE;
  case NBD_CMD_FLUSH: return DP_CMD_FLUSH;
  case NBD_CMD_TRIM: return DP_CMD_TRIM;
  case NBD_CMD_WRITE_ZEROES: return DP_CMD_ZERO;
  case NBD_CMD_BLOCK_STATUS: return DP_CMD_BLOCK_STATUS;
  case NBD_CMD_CACHE: return DP_CMD_CACHE;
  default: return DP_CMD_OTHER;
  }
}

enum dp_err dp_stats_err(uint32_t nbd_error)
{
  switch (nbd_error) {
  case NBD_EPERM: return DP_ERR_EPERM;
  case NBD_EIO: return DP_ERR_EIO;
  case NBD_ENOMEM: return DP_ERR_ENOMEM;
  case NBD_EINVAL: return DP_ERR_EINVAL;
  case NBD_ENOSPC: return DP_ERR_ENOSPC;
  case NBD_EOVERFLOW: return DP_ERR_EOVERFLOW;
  case NBD_ENOTSUP: return DP_ERR_ENOTSUP;
  case NBD_ESHUTDOWN: return DP_ERR_ESHUTDOWN;
  default: return DP_ERR_OTHER;
  }
}

const char *dp_cmd_name(enum dp_cmd c)
{
  return (unsigned)c < DP_NCMDS ? cmd_names[c] : "other";
}

const char *dp_err_name(enum dp_err e)
{
  return (unsigned)e < DP_NERRS ? err_names[e] : "other";
}

void dp_stats_complete(struct dp_stats *st, uint16_t nbd_cmd, uint64_t bytes, uint32_t nbd_error,
                       uint64_t latency_ns)
{
  struct dp_cmd_stats *c = &st->cmd[dp_stats_cmd(nbd_cmd)];

  stat_add(&c->count, 1);
  if (nbd_error)
    stat_add(&c->errors[dp_stats_err(nbd_error)], 1);
  else
    stat_add(&c->bytes, bytes);
  stat_add(&c->latency_ns, latency_ns);
  stat_add(&c->latency[hist_bucket(latency_ns)], 1);
}

/* struct dp_stats is nothing but stat_t members: add it as an array. */
_Static_assert(sizeof(struct dp_stats) % sizeof(stat_t) == 0, "dp_stats holds only counters");

void dp_stats_sum(struct dp_stats *out, const struct dp_stats_slot *slots, unsigned n)
{
  stat_t *o = (stat_t *)out;
  const size_t ncounters = sizeof(struct dp_stats) / sizeof(stat_t);

  for (unsigned i = 0; i < n; i++) {
    const stat_t *in = (const stat_t *)&slots[i].s;
    for (size_t k = 0; k < ncounters; k++)
      atomic_store_explicit(&o[k], stat_get(&o[k]) + stat_get(&in[k]), memory_order_relaxed);
  }
}

void dp_stats_hist(const struct dp_stats *st, enum dp_cmd c, struct hist *h)
{
  const struct dp_cmd_stats *cs = &st->cmd[c];

  memset(h, 0, sizeof *h);
  for (unsigned k = 0; k <= HIST_BUCKETS; k++) {
    h->bucket[k] = stat_get(&cs->latency[k]);
    h->count += h->bucket[k];
  }
  h->sum_ns = stat_get(&cs->latency_ns);
}

static void phase_json(struct json *j, const char *name, const struct dp_phase_stats *p, int is_write)
{
  uint64_t n = stat_get(&p->count), total = stat_get(&p->total);
  double avg = n ? 1e-3 / (double)n : 0;

  json_object(j, name, JSON_LINE);
  json_uint(j, "count", n);
  json_object(j, "avg_us", JSON_LINE);
  json_double(j, is_write ? "first_byte_written" : "first_byte_read", (double)stat_get(&p->first_disk) * avg, 1);
  json_double(j, is_write ? "first_byte_received" : "first_byte_sent", (double)stat_get(&p->first_net) * avg, 1);
  json_double(j, is_write ? "last_byte_written" : "last_byte_read", (double)stat_get(&p->last_disk) * avg, 1);
  json_double(j, is_write ? "last_byte_received" : "last_byte_sent", (double)stat_get(&p->last_net) * avg, 1);
  json_double(j, "total", (double)total * avg, 1);
  json_end(j);
  json_double(j, "overlap", total ? (double)stat_get(&p->overlap) / (double)total : 0.0, 4);
  json_end(j);
}

static void commands_json(struct json *j, const struct dp_stats *st)
{
  json_object(j, "commands", JSON_BLOCK);
  for (int c = 0; c < DP_NCMDS; c++) {
    const struct dp_cmd_stats *cs = &st->cmd[c];
    struct hist h;
    uint64_t count = stat_get(&cs->count);

    dp_stats_hist(st, (enum dp_cmd)c, &h);
    json_object(j, cmd_names[c], JSON_LINE);
    json_uint(j, "count", count);
    json_uint(j, "bytes", stat_get(&cs->bytes));
    json_object(j, "errors", JSON_LINE);
    for (int e = 0; e < DP_NERRS; e++)
      if (stat_get(&cs->errors[e]))
        json_uint(j, err_names[e], stat_get(&cs->errors[e]));
    json_end(j);
    json_double(j, "latency_avg_us", count ? (double)h.sum_ns / 1e3 / (double)count : 0.0, 1);
    json_double(j, "latency_p50_us", hist_quantile(&h, 0.5) * 1e6, 1);
    json_double(j, "latency_p99_us", hist_quantile(&h, 0.99) * 1e6, 1);
    json_double(j, "latency_p999_us", hist_quantile(&h, 0.999) * 1e6, 1);
    json_array(j, "latency_log2_us", JSON_LINE);   /* bucket k: (2^(k-1), 2^k] us */
    for (unsigned k = 0; k <= HIST_BUCKETS; k++)
      json_uint(j, NULL, h.bucket[k]);
    json_end(j);
    json_end(j);
  }
  json_end(j);
}

void dp_stats_json(struct json *j, const struct dp_stats *st)
{
  json_uint(j, "requests", stat_get(&st->requests));
  json_uint(j, "reads", stat_get(&st->reads));
  json_uint(j, "writes", stat_get(&st->writes));
  json_uint(j, "other", stat_get(&st->other));
  json_uint(j, "bytes_read", stat_get(&st->bytes_read));
  json_uint(j, "bytes_written", stat_get(&st->bytes_written));
  json_object(j, "bytes_by_path", JSON_LINE);
  for (int i = 0; i < DP_NPATHS; i++)
    json_uint(j, path_names[i], stat_get(&st->bytes_path[i]));
  json_end(j);
  json_object(j, "auto_choice", JSON_BLOCK);
  for (int i = 0; i < DP_NPATHS; i++) {
    json_object(j, path_names[i], JSON_LINE);
    json_uint(j, "reads", stat_get(&st->auto_reads[i]));
    json_uint(j, "read_bytes", stat_get(&st->auto_read_bytes[i]));
    json_uint(j, "writes", stat_get(&st->auto_writes[i]));
    json_uint(j, "write_bytes", stat_get(&st->auto_write_bytes[i]));
    json_end(j);
  }
  json_end(j);
  json_uint(j, "auto_cache_misses", stat_get(&st->auto_cache_misses));
  json_uint(j, "cpu_copied_bytes", stat_get(&st->copied_read) + stat_get(&st->copied_write)
            + stat_get(&st->zc_copied_bytes));
  json_uint(j, "server_copied_read_bytes", stat_get(&st->copied_read));
  json_uint(j, "server_copied_write_bytes", stat_get(&st->copied_write));
  json_uint(j, "memcpy_bytes", stat_get(&st->memcpy_bytes));
  json_uint(j, "bounce_bytes", stat_get(&st->bounce_bytes));
  json_uint(j, "tls_encrypted_bytes", stat_get(&st->tls_encrypted));
  json_uint(j, "tls_pushed_direct_bytes", stat_get(&st->tls_pushed_direct));
  json_uint(j, "tls_buffered_bytes", stat_get(&st->tls_buffered));
  json_uint(j, "tls_sealed_bytes", stat_get(&st->tls_sealed));
  json_uint(j, "zc_sends", stat_get(&st->zc_sends));
  json_uint(j, "zc_copied_sends", stat_get(&st->zc_copied_sends));
  json_uint(j, "zc_copied_bytes", stat_get(&st->zc_copied_bytes));
  json_uint(j, "arena_allocs", stat_get(&st->arena_allocs));
  json_uint(j, "arena_waits", stat_get(&st->arena_waits));
  json_uint(j, "arena_fallbacks", stat_get(&st->arena_fallbacks));
  json_uint(j, "pipe_waits", stat_get(&st->pipe_waits));
  json_uint(j, "range_lock_waits", stat_get(&st->range_lock_waits));
  json_uint(j, "rmw_merged", stat_get(&st->rmw_merged));
  json_uint(j, "chunks", stat_get(&st->chunks));
  json_uint(j, "chunks_out_of_order", stat_get(&st->chunks_out_of_order));
  json_uint(j, "send_timeouts", stat_get(&st->send_timeouts));
  json_uint(j, "budget_waits", stat_get(&st->budget_waits));
  json_uint(j, "pool_hits", stat_get(&st->pool_hits));
  json_uint(j, "pool_allocs", stat_get(&st->pool_allocs));
  json_uint(j, "mem_fixed_ios", stat_get(&st->mem_fixed_ios));
  phase_json(j, "read_phases", &st->read_phase, 0);
  phase_json(j, "write_phases", &st->write_phase, 1);
  commands_json(j, st);
}
