/* test_stats.c: the per-worker request counters (src/datapath/stats.c):
 * commands and NBD errors land in their slots, bytes count only without
 * error, latencies in their histogram buckets; workers counting into their
 * own slots at the same time lose nothing once the slots are summed, and a
 * reader summing meanwhile never sees a count go back. */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "datapath/stats.h"
#include "proto/nbd-protocol.h"
#include "tap.h"

#define PER_THREAD 200000u

static struct dp_stats_slot *slots;
static atomic_bool done;

static void *worker(void *arg)
{
  struct dp_stats *st = &slots[(uintptr_t)arg].s;
  for (unsigned i = 0; i < PER_THREAD; i++)
    dp_stats_complete(st, NBD_CMD_READ, 4096, i % 100 == 0 ? NBD_EIO : 0, 1500);
  return NULL;
}

static void test_mapping(void)
{
  struct dp_stats st;
  struct hist h;

  memset(&st, 0, sizeof st);
  ok(dp_stats_cmd(NBD_CMD_WRITE_ZEROES) == DP_CMD_ZERO && dp_stats_cmd(NBD_CMD_BLOCK_STATUS) == DP_CMD_BLOCK_STATUS
     && dp_stats_cmd(NBD_CMD_CACHE) == DP_CMD_CACHE && dp_stats_cmd(0x7777) == DP_CMD_OTHER, "commands map to their slots");
  ok(!strcmp(dp_cmd_name(DP_CMD_BLOCK_STATUS), "block-status") && !strcmp(dp_cmd_name(DP_CMD_ZERO), "zero"),
     "command names");
  ok(dp_stats_err(NBD_EPERM) == DP_ERR_EPERM && dp_stats_err(NBD_ESHUTDOWN) == DP_ERR_ESHUTDOWN
     && dp_stats_err(12345) == DP_ERR_OTHER && !strcmp(dp_err_name(DP_ERR_ENOSPC), "ENOSPC"), "errors map to their slots");

  dp_stats_complete(&st, NBD_CMD_WRITE, 65536, 0, 3000);
  dp_stats_complete(&st, NBD_CMD_WRITE, 65536, NBD_ENOSPC, 900);
  dp_stats_complete(&st, NBD_CMD_TRIM, 1 << 20, 0, 5000000);
  ok(stat_get(&st.cmd[DP_CMD_WRITE].count) == 2 && stat_get(&st.cmd[DP_CMD_WRITE].bytes) == 65536,
     "two writes, bytes of the one without error");
  ok(stat_get(&st.cmd[DP_CMD_WRITE].errors[DP_ERR_ENOSPC]) == 1, "its error under ENOSPC");
  dp_stats_hist(&st, DP_CMD_WRITE, &h);
  ok(h.count == 2 && h.bucket[0] == 1 && h.bucket[2] == 1 && h.sum_ns == 3900, "latencies in their buckets, summed");
  dp_stats_hist(&st, DP_CMD_TRIM, &h);
  ok(h.count == 1 && h.bucket[13] == 1 && stat_get(&st.cmd[DP_CMD_TRIM].bytes) == 1 << 20,
     "a 5 ms trim: bucket 13, (4096, 8192] us");
}

static void test_slots(void)
{
  enum { N = 4 };
  pthread_t t[N];
  struct dp_stats sum;
  uint64_t last = 0;
  int monotonic = 1;

  slots = aligned_alloc(_Alignof(struct dp_stats_slot), N * sizeof *slots);
  memset(slots, 0, N * sizeof *slots);
  ok(_Alignof(struct dp_stats_slot) >= 64 && sizeof(struct dp_stats_slot) % 64 == 0, "slots fill whole cache lines");
  for (uintptr_t i = 0; i < N; i++)
    pthread_create(&t[i], NULL, worker, (void *)i);
  while (!atomic_load(&done)) {
    memset(&sum, 0, sizeof sum);
    dp_stats_sum(&sum, slots, N);
    uint64_t n = stat_get(&sum.cmd[DP_CMD_READ].count);
    monotonic &= n >= last;
    last = n;
    if (n == (uint64_t)N * PER_THREAD)
      atomic_store(&done, true);
  }
  for (int i = 0; i < N; i++)
    pthread_join(t[i], NULL);
  ok(monotonic, "a reader summing while the workers count never sees the count go back");
  memset(&sum, 0, sizeof sum);
  dp_stats_sum(&sum, slots, N);
  const struct dp_cmd_stats *r = &sum.cmd[DP_CMD_READ];
  ok(stat_get(&r->count) == (uint64_t)N * PER_THREAD, "every completion of every worker counted");
  ok(stat_get(&r->errors[DP_ERR_EIO]) == (uint64_t)N * PER_THREAD / 100
     && stat_get(&r->bytes) == (uint64_t)N * (PER_THREAD - PER_THREAD / 100) * 4096, "errors and bytes exact");
  ok(stat_get(&r->latency[1]) == (uint64_t)N * PER_THREAD && stat_get(&r->latency_ns) == (uint64_t)N * PER_THREAD * 1500,
     "histogram and latency sum exact");
  free(slots);
}

int main(void)
{
  test_mapping();
  test_slots();
  return tap_done();
}
