/* metrics.c: the server's statistics as JSON and Prometheus text (see
 * metrics.h; names and meanings: docs/metrics.md). */
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/text.h"
#include "datapath/bufpool.h"
#include "datapath/datapath.h"
#include "datapath/dpworker.h"
#include "datapath/qos.h"
#include "datapath/stats.h"
#include "server/metrics.h"
#include "server/server.h"
#include "server/worker.h"

double metrics_uptime(const struct server *srv)
{
  uint64_t now = dp_now();
  return now > srv->start_ns ? (double)(now - srv->start_ns) / 1e9 : 0.0;
}

/* Connections accepted and refused, summed over the workers. */
static void conn_totals(const struct server *srv, uint64_t *total, uint64_t *refused)
{
  *total = *refused = 0;
  for (unsigned i = 0; i < srv->nworkers; i++) {
    *total += stat_get(&srv->workers[i].conns_total);
    *refused += stat_get(&srv->workers[i].refused_total);
  }
}

/* Every export's stats summed over its slots (free() the array); NULL when
 * out of memory or without exports. */
static struct dp_stats *export_sums(const struct server *srv)
{
  size_t n = srv->exports->n;
  struct dp_stats *s = n ? calloc(n, sizeof *s) : NULL;

  for (size_t i = 0; s && i < n; i++)
    dp_export_stats_sum(&srv->exports->exports[i]->dp, &s[i]);
  return s;
}

static void json_locked(struct server *srv, struct json *j)
{
  struct dp_stats *sums = export_sums(srv);
  uint64_t total, refused;

  uint64_t pool_held, pool_idle;

  conn_totals(srv, &total, &refused);
  bufpool_totals(&pool_held, &pool_idle);
  json_object(j, NULL, JSON_BLOCK);
  json_int(j, "pid", (int64_t)getpid());
  json_string(j, "version", SHUNT_VERSION);
  json_double(j, "uptime_seconds", metrics_uptime(srv), 3);
  json_object(j, "connections", JSON_LINE);
  json_uint(j, "open", atomic_load_explicit(&srv->nconns, memory_order_relaxed));
  json_uint(j, "total", total);
  json_uint(j, "refused", refused);
  json_end(j);
  json_object(j, "buffer_pools", JSON_LINE);
  json_uint(j, "bound_per_worker", dp_pool_size);
  json_uint(j, "bytes_held", pool_held);
  json_uint(j, "bytes_idle", pool_idle);
  json_end(j);
  json_array(j, "exports", JSON_BLOCK);
  for (size_t i = 0; sums && i < srv->exports->n; i++) {
    const struct export *ex = srv->exports->exports[i];
    json_object(j, NULL, JSON_BLOCK);
    json_string(j, "name", ex->cfg.name);
    json_string(j, "datapath", ex->dp.datapath->name);
    json_string(j, "configured", ex->cfg.datapath ? ex->cfg.datapath : "auto");
    json_uint(j, "chunk", ex->dp.chunk);
    json_uint(j, "arena_per_worker", dp_arena_size);
    dp_stats_json(j, &sums[i]);
    dp_qos_json(j, &ex->dp);
    json_end(j);
  }
  json_end(j);
  json_end(j);
  if (!sums && srv->exports->n)
    j->error = j->error ? j->error : -ENOMEM;   /* json_finish reports it */
  free(sums);
}

static int text_locked(struct server *srv, FILE *f)
{
  struct dp_stats *sums = export_sums(srv);
  uint64_t total, refused;

  if (!sums && srv->exports->n)
    return -ENOMEM;
  conn_totals(srv, &total, &refused);
  fprintf(f, "shunt %s, pid %d, up %.0f s\n", SHUNT_VERSION, (int)getpid(), metrics_uptime(srv));
  fprintf(f, "connections: %u open, %" PRIu64 " served, %" PRIu64 " refused\n",
          atomic_load_explicit(&srv->nconns, memory_order_relaxed), total, refused);
  for (size_t i = 0; i < srv->exports->n; i++) {
    const struct export *ex = srv->exports->exports[i];
    fputs("\nexport ", f);
    text_json_string(f, ex->cfg.name);
    fprintf(f, " (data path %s)\n", ex->dp.datapath->name);
    fprintf(f, "  %-13s %10s %14s %7s %9s %9s %9s %9s\n", "command", "count", "bytes", "errors",
            "avg_us", "p50_us", "p99_us", "p99.9_us");
    for (int c = 0; c < DP_NCMDS; c++) {
      const struct dp_cmd_stats *cs = &sums[i].cmd[c];
      uint64_t n = stat_get(&cs->count), errs = 0;
      struct hist h;
      if (!n)
        continue;
      for (int e = 0; e < DP_NERRS; e++)
        errs += stat_get(&cs->errors[e]);
      dp_stats_hist(&sums[i], (enum dp_cmd)c, &h);
      fprintf(f, "  %-13s %10" PRIu64 " %14" PRIu64 " %7" PRIu64 " %9.1f %9.1f %9.1f %9.1f\n",
              dp_cmd_name((enum dp_cmd)c), n, stat_get(&cs->bytes), errs, (double)h.sum_ns / 1e3 / (double)n,
              hist_quantile(&h, 0.5) * 1e6, hist_quantile(&h, 0.99) * 1e6, hist_quantile(&h, 0.999) * 1e6);
      for (int e = 0; e < DP_NERRS; e++)
        if (stat_get(&cs->errors[e]))
          fprintf(f, "  %-13s %10s %14s %7" PRIu64 " %s\n", "", "", "", stat_get(&cs->errors[e]),
                  dp_err_name((enum dp_err)e));
    }
  }
  free(sums);
  return ferror(f) ? -EIO : 0;
}

/* ---- Prometheus ---- */

/* A plain per-export counter of struct dp_stats. */
struct counter {
  const char *name, *help;
  size_t off;
  uint64_t scale;                        /* 0: as is */
};

#define C(n, h, f) { "shunt_" n, h, offsetof(struct dp_stats, f), 0 }
static const struct counter counters[] = {
  C("requests_received_total", "Requests decoded (each counted again in shunt_requests_total once done).", requests),
  C("auto_cache_misses_total", "datapath=auto: small READs read from the page cache only (RWF_NOWAIT) that found "
    "pages missing.", auto_cache_misses),
  C("memcpy_bytes_total", "Payload bytes copied by memcpy in user space (receive buffer, bounce blocks).", memcpy_bytes),
  C("bounce_bytes_total", "Unaligned edges of direct writes merged through bounce blocks (read-modify-write).",
    bounce_bytes),
  C("zerocopy_sends_total", "Payload sends with MSG_ZEROCOPY (SEND_ZC).", zc_sends),
  C("zerocopy_copied_sends_total", "Zero-copy sends the kernel copied anyway.", zc_copied_sends),
  C("zerocopy_copied_bytes_total", "Bytes of zero-copy sends the kernel copied anyway.", zc_copied_bytes),
  C("arena_allocs_total", "Buffers taken from a worker's registered arena (direct path).", arena_allocs),
  C("arena_waits_total", "Times a chunk waited for its connection's share of the arena.", arena_waits),
  C("arena_fallbacks_total", "Buffers taken outside the arena (it was full or absent).", arena_fallbacks),
  C("pipe_waits_total", "Times a chunk waited for one of its connection's pipes (splice path).", pipe_waits),
  C("range_lock_waits_total", "Direct writes, TRIMs and zeroes that waited for a conflicting one.",
    range_lock_waits),
  C("rmw_merged_total", "Unaligned edges merged into another write's read-modify-write.", rmw_merged),
  C("chunks_total", "Chunks of split reads and writes.", chunks),
  C("chunks_out_of_order_total", "Structured data chunks sent before a chunk at a lower offset.",
    chunks_out_of_order),
  C("send_timeouts_total", "Connections cut by --send-timeout.", send_timeouts),
  C("budget_waits_total", "Times a connection paused for --memory-budget.", budget_waits),
  C("pool_hits_total", "Payload buffers reused from a worker's pool.", pool_hits),
  C("pool_allocs_total", "Payload buffers newly mapped for a worker's pool.", pool_allocs),
  C("mem_fixed_ios_total", "Caller-memory direct I/Os on registered memory (fixed buffers).", mem_fixed_ios),
  C("tls_encrypted_bytes_total", "Plaintext bytes of replies encrypted for TLS connections (headers included).",
    tls_encrypted),
  C("tls_pushed_direct_bytes_total", "TLS ciphertext bytes the socket took at once, straight from GnuTLS.",
    tls_pushed_direct),
  C("tls_buffered_bytes_total", "TLS ciphertext bytes copied: the socket did not take them at once, or a tiny record held for the next send.",
    tls_buffered),
  C("tls_sealed_bytes_total", "TLS ciphertext bytes of large replies encrypted by the server straight into its send buffer (not copied).",
    tls_sealed),
};
#undef C

static const char *const path_names[DP_NPATHS] = { "copy", "splice", "direct", "mmap" };

static uint64_t field(const struct dp_stats *s, size_t off)
{
  return stat_get((const stat_t *)((const char *)s + off));
}

struct prom_ctx {
  struct prom *p;
  struct server *srv;
  const struct dp_stats *sums;
};

static const char *ex_name(const struct prom_ctx *x, size_t i)
{
  return x->srv->exports->exports[i]->cfg.name;
}

static void per_command(const struct prom_ctx *x)
{
  struct prom *p = x->p;
  size_t n = x->srv->exports->n;

  prom_family(p, "shunt_requests_total", "counter", "Requests completed (reply sent), by export and command.");
  for (size_t i = 0; i < n; i++)
    for (int c = 0; c < DP_NCMDS; c++) {
      struct prom_label l[2] = { { "export", ex_name(x, i) }, { "command", dp_cmd_name((enum dp_cmd)c) } };
      prom_uint(p, "shunt_requests_total", l, 2, stat_get(&x->sums[i].cmd[c].count));
    }
  prom_family(p, "shunt_request_bytes_total", "counter",
              "Bytes of the ranges of requests completed without error, by export and command.");
  for (size_t i = 0; i < n; i++)
    for (int c = 0; c < DP_NCMDS; c++) {
      struct prom_label l[2] = { { "export", ex_name(x, i) }, { "command", dp_cmd_name((enum dp_cmd)c) } };
      prom_uint(p, "shunt_request_bytes_total", l, 2, stat_get(&x->sums[i].cmd[c].bytes));
    }
  prom_family(p, "shunt_request_errors_total", "counter",
              "Requests completed with an error reply, by export, command and NBD error.");
  for (size_t i = 0; i < n; i++)
    for (int c = 0; c < DP_NCMDS; c++)
      for (int e = 0; e < DP_NERRS; e++) {
        uint64_t v = stat_get(&x->sums[i].cmd[c].errors[e]);
        struct prom_label l[3] = { { "export", ex_name(x, i) }, { "command", dp_cmd_name((enum dp_cmd)c) },
                                   { "errno", dp_err_name((enum dp_err)e) } };
        if (v)
          prom_uint(p, "shunt_request_errors_total", l, 3, v);
      }
  prom_family(p, "shunt_request_duration_seconds", "histogram",
              "Request latency from its header decoded to its reply sent, by export and command.");
  for (size_t i = 0; i < n; i++)
    for (int c = 0; c < DP_NCMDS; c++) {
      struct hist h;
      uint64_t cum = 0;
      char le[32];
      struct prom_label l[3] = { { "export", ex_name(x, i) }, { "command", dp_cmd_name((enum dp_cmd)c) },
                                 { "le", le } };
      dp_stats_hist(&x->sums[i], (enum dp_cmd)c, &h);
      for (unsigned k = 0; k < HIST_BUCKETS; k++) {
        cum += h.bucket[k];
        snprintf(le, sizeof le, "%.9g", hist_upper_seconds(k));   /* 2^k us: exact in 9 digits */
        prom_uint(p, "shunt_request_duration_seconds_bucket", l, 3, cum);
      }
      snprintf(le, sizeof le, "+Inf");
      prom_uint(p, "shunt_request_duration_seconds_bucket", l, 3, h.count);
      prom_double(p, "shunt_request_duration_seconds_sum", l, 2, (double)h.sum_ns / 1e9);
      prom_uint(p, "shunt_request_duration_seconds_count", l, 2, h.count);
    }
}

static void per_path(const struct prom_ctx *x)
{
  struct prom *p = x->p;
  size_t n = x->srv->exports->n;

  prom_family(p, "shunt_payload_bytes_total", "counter", "Payload bytes read from or written to the backend.");
  for (size_t i = 0; i < n; i++) {
    struct prom_label l[2] = { { "export", ex_name(x, i) }, { "direction", "read" } };
    prom_uint(p, "shunt_payload_bytes_total", l, 2, stat_get(&x->sums[i].bytes_read));
    l[1].value = "write";
    prom_uint(p, "shunt_payload_bytes_total", l, 2, stat_get(&x->sums[i].bytes_written));
  }
  prom_family(p, "shunt_datapath_bytes_total", "counter", "Payload bytes (read and written) by the data path that moved them.");
  for (size_t i = 0; i < n; i++)
    for (int d = 0; d < DP_NPATHS; d++) {
      struct prom_label l[2] = { { "export", ex_name(x, i) }, { "path", path_names[d] } };
      prom_uint(p, "shunt_datapath_bytes_total", l, 2, stat_get(&x->sums[i].bytes_path[d]));
    }
  prom_family(p, "shunt_auto_choice_requests_total", "counter", "datapath=auto: requests handed to each path.");
  for (size_t i = 0; i < n; i++)
    for (int d = 0; d < DP_NPATHS; d++) {
      struct prom_label l[3] = { { "export", ex_name(x, i) }, { "path", path_names[d] }, { "command", "read" } };
      prom_uint(p, "shunt_auto_choice_requests_total", l, 3, stat_get(&x->sums[i].auto_reads[d]));
      l[2].value = "write";
      prom_uint(p, "shunt_auto_choice_requests_total", l, 3, stat_get(&x->sums[i].auto_writes[d]));
    }
  prom_family(p, "shunt_auto_choice_bytes_total", "counter", "datapath=auto: bytes of the requests handed to each path.");
  for (size_t i = 0; i < n; i++)
    for (int d = 0; d < DP_NPATHS; d++) {
      struct prom_label l[3] = { { "export", ex_name(x, i) }, { "path", path_names[d] }, { "command", "read" } };
      prom_uint(p, "shunt_auto_choice_bytes_total", l, 3, stat_get(&x->sums[i].auto_read_bytes[d]));
      l[2].value = "write";
      prom_uint(p, "shunt_auto_choice_bytes_total", l, 3, stat_get(&x->sums[i].auto_write_bytes[d]));
    }
  prom_family(p, "shunt_server_copied_bytes_total", "counter",
              "Payload byte copies the server causes (read(2), memcpy, send from a buffer; recv, buffered write(2)).");
  for (size_t i = 0; i < n; i++) {
    struct prom_label l[2] = { { "export", ex_name(x, i) }, { "direction", "read" } };
    prom_uint(p, "shunt_server_copied_bytes_total", l, 2, stat_get(&x->sums[i].copied_read));
    l[1].value = "write";
    prom_uint(p, "shunt_server_copied_bytes_total", l, 2, stat_get(&x->sums[i].copied_write));
  }
  for (size_t k = 0; k < sizeof counters / sizeof counters[0]; k++) {
    prom_family(p, counters[k].name, "counter", counters[k].help);
    for (size_t i = 0; i < n; i++) {
      struct prom_label l[1] = { { "export", ex_name(x, i) } };
      prom_uint(p, counters[k].name, l, 1, field(&x->sums[i], counters[k].off));
    }
  }
}

/* The phase sums of timed READs and WRITEs (docs/design.md, "Stats"). */
static void phases(const struct prom_ctx *x)
{
  static const struct { const char *name; size_t off; } ph[] = {
    { "first_disk", offsetof(struct dp_phase_stats, first_disk) },
    { "first_net", offsetof(struct dp_phase_stats, first_net) },
    { "last_disk", offsetof(struct dp_phase_stats, last_disk) },
    { "last_net", offsetof(struct dp_phase_stats, last_net) },
    { "total", offsetof(struct dp_phase_stats, total) },
    { "overlap", offsetof(struct dp_phase_stats, overlap) },
  };
  struct prom *p = x->p;
  size_t n = x->srv->exports->n;

  prom_family(p, "shunt_phase_requests_total", "counter", "READs and WRITEs whose phase times were measured.");
  for (size_t i = 0; i < n; i++)
    for (int w = 0; w < 2; w++) {
      const struct dp_phase_stats *ps = w ? &x->sums[i].write_phase : &x->sums[i].read_phase;
      struct prom_label l[2] = { { "export", ex_name(x, i) }, { "command", w ? "write" : "read" } };
      prom_uint(p, "shunt_phase_requests_total", l, 2, stat_get(&ps->count));
    }
  prom_family(p, "shunt_phase_seconds_total", "counter",
              "Sums over measured requests of the time from the header to each phase (overlap: disk and network both busy).");
  for (size_t i = 0; i < n; i++)
    for (int w = 0; w < 2; w++)
      for (size_t k = 0; k < sizeof ph / sizeof ph[0]; k++) {
        const struct dp_phase_stats *ps = w ? &x->sums[i].write_phase : &x->sums[i].read_phase;
        struct prom_label l[3] = { { "export", ex_name(x, i) }, { "command", w ? "write" : "read" },
                                   { "phase", ph[k].name } };
        uint64_t ns = stat_get((const stat_t *)((const char *)ps + ph[k].off));
        prom_double(p, "shunt_phase_seconds_total", l, 3, (double)ns / 1e9);
      }
}

static void prometheus_locked(struct server *srv, struct prom *p)
{
  struct dp_stats *sums = export_sums(srv);
  struct prom_ctx x = { p, srv, sums };
  uint64_t total, refused;
  struct prom_label v = { "version", SHUNT_VERSION };

  conn_totals(srv, &total, &refused);
  prom_family(p, "shunt_build_info", "gauge", "The server's version (always 1).");
  prom_uint(p, "shunt_build_info", &v, 1, 1);
  prom_family(p, "shunt_uptime_seconds", "gauge", "Seconds since the server started.");
  prom_double(p, "shunt_uptime_seconds", NULL, 0, metrics_uptime(srv));
  prom_family(p, "shunt_connections", "gauge", "Client connections open now.");
  prom_uint(p, "shunt_connections", NULL, 0, atomic_load_explicit(&srv->nconns, memory_order_relaxed));
  prom_family(p, "shunt_connections_total", "counter", "Client connections accepted and served.");
  prom_uint(p, "shunt_connections_total", NULL, 0, total);
  prom_family(p, "shunt_connections_refused_total", "counter", "Connections closed at once over --max-connections.");
  prom_uint(p, "shunt_connections_refused_total", NULL, 0, refused);
  prom_family(p, "shunt_buffer_pool_bytes", "gauge", "Bytes the workers' payload buffer pools hold (held: handed out and idle; idle: of which idle).");
  struct prom_label st = { "state", "held" };
  uint64_t pool_held, pool_idle;
  bufpool_totals(&pool_held, &pool_idle);
  prom_uint(p, "shunt_buffer_pool_bytes", &st, 1, pool_held);
  st.value = "idle";
  prom_uint(p, "shunt_buffer_pool_bytes", &st, 1, pool_idle);
  if (!sums) {
    if (srv->exports->n && !p->error)
      p->error = -ENOMEM;
    return;
  }
  per_command(&x);
  per_path(&x);
  phases(&x);
  free(sums);
}

/* ---- the entry points: the export table is read under srv->stats_lock ---- */

void metrics_json(struct server *srv, struct json *j)
{
  pthread_mutex_lock(&srv->stats_lock);
  json_locked(srv, j);
  pthread_mutex_unlock(&srv->stats_lock);
}

int metrics_text(struct server *srv, FILE *f)
{
  pthread_mutex_lock(&srv->stats_lock);
  int r = text_locked(srv, f);
  pthread_mutex_unlock(&srv->stats_lock);
  return r;
}

void metrics_prometheus(struct server *srv, struct prom *p)
{
  pthread_mutex_lock(&srv->stats_lock);
  prometheus_locked(srv, p);
  pthread_mutex_unlock(&srv->stats_lock);
}
