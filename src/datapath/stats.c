/* stats.c: per-export accounting (see stats.h). */
#include <inttypes.h>
#include <time.h>

#include "datapath/stats.h"

static const char *const path_names[DP_NPATHS] = { "copy", "splice", "direct", "mmap" };

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

static uint64_t ld(const stat_t *s)
{
  return atomic_load_explicit(s, memory_order_relaxed);
}

static void phase_json(FILE *f, const char *name, const struct dp_phase_stats *p, int is_write)
{
  uint64_t n = ld(&p->count), total = ld(&p->total);
  double avg = n ? 1e-3 / (double)n : 0;
  fprintf(f, "\"%s\":{\"count\":%" PRIu64 ",\"avg_us\":{\"%s\":%.1f,\"%s\":%.1f,\"%s\":%.1f,\"%s\":%.1f,\"total\":%.1f},"
          "\"overlap\":%.4f}", name, n,
          is_write ? "first_byte_written" : "first_byte_read", (double)ld(&p->first_disk) * avg,
          is_write ? "first_byte_received" : "first_byte_sent", (double)ld(&p->first_net) * avg,
          is_write ? "last_byte_written" : "last_byte_read", (double)ld(&p->last_disk) * avg,
          is_write ? "last_byte_received" : "last_byte_sent", (double)ld(&p->last_net) * avg,
          (double)total * avg, total ? (double)ld(&p->overlap) / (double)total : 0.0);
}

void dp_stats_json(FILE *f, const struct dp_stats *st)
{
  fprintf(f, "\"requests\":%" PRIu64 ",\"reads\":%" PRIu64 ",\"writes\":%" PRIu64 ",\"other\":%" PRIu64
          ",\"bytes_read\":%" PRIu64 ",\"bytes_written\":%" PRIu64 ",\"bytes_by_path\":{",
          ld(&st->requests), ld(&st->reads), ld(&st->writes), ld(&st->other),
          ld(&st->bytes_read), ld(&st->bytes_written));
  for (int i = 0; i < DP_NPATHS; i++)
    fprintf(f, "%s\"%s\":%" PRIu64, i ? "," : "", path_names[i], ld(&st->bytes_path[i]));
  fputs("},\"auto_choice\":{", f);
  for (int i = 0; i < DP_NPATHS; i++)
    fprintf(f, "%s\"%s\":{\"reads\":%" PRIu64 ",\"read_bytes\":%" PRIu64 ",\"writes\":%" PRIu64
            ",\"write_bytes\":%" PRIu64 "}", i ? "," : "", path_names[i], ld(&st->auto_reads[i]),
            ld(&st->auto_read_bytes[i]), ld(&st->auto_writes[i]), ld(&st->auto_write_bytes[i]));
  fprintf(f, "},\"cpu_copied_bytes\":%" PRIu64 ",\"server_copied_read_bytes\":%" PRIu64
          ",\"server_copied_write_bytes\":%" PRIu64 ",\"memcpy_bytes\":%" PRIu64 ",\"bounce_bytes\":%" PRIu64
          ",\"zc_sends\":%" PRIu64 ",\"zc_copied_sends\":%" PRIu64 ",\"zc_copied_bytes\":%" PRIu64
          ",\"arena_allocs\":%" PRIu64 ",\"arena_waits\":%" PRIu64 ",\"arena_fallbacks\":%" PRIu64
          ",\"pipe_waits\":%" PRIu64 ",\"range_lock_waits\":%" PRIu64 ",\"rmw_merged\":%" PRIu64 ",\"chunks\":%" PRIu64
          ",\"chunks_out_of_order\":%" PRIu64 ",\"send_timeouts\":%" PRIu64 ",\"budget_waits\":%" PRIu64 ",",
          ld(&st->copied_read) + ld(&st->copied_write) + ld(&st->zc_copied_bytes),
          ld(&st->copied_read), ld(&st->copied_write), ld(&st->memcpy_bytes), ld(&st->bounce_bytes),
          ld(&st->zc_sends), ld(&st->zc_copied_sends), ld(&st->zc_copied_bytes),
          ld(&st->arena_allocs), ld(&st->arena_waits), ld(&st->arena_fallbacks), ld(&st->pipe_waits),
          ld(&st->range_lock_waits), ld(&st->rmw_merged), ld(&st->chunks), ld(&st->chunks_out_of_order),
          ld(&st->send_timeouts), ld(&st->budget_waits));
  fprintf(f, "\"pool_hits\":%" PRIu64 ",\"pool_allocs\":%" PRIu64 ",", ld(&st->pool_hits), ld(&st->pool_allocs));
  fprintf(f, "\"mem_fixed_ios\":%" PRIu64 ",", ld(&st->mem_fixed_ios));
  phase_json(f, "read_phases", &st->read_phase, 0);
  fputc(',', f);
  phase_json(f, "write_phases", &st->write_phase, 1);
}
