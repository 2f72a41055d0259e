/* stats.h: per-export accounting (requests, bytes, bytes per data path,
 * payload bytes copied by a CPU on the server's behalf, zero-copy sends the
 * kernel copied anyway, arena waits/fallbacks, per-request phase times and
 * disk/network overlap), updated by every worker with relaxed atomics, and
 * written as JSON (format: docs/design.md, "Stats"). */
#ifndef SHUNT_DATAPATH_STATS_H
#define SHUNT_DATAPATH_STATS_H

#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>

typedef _Atomic uint64_t stat_t;

enum { DP_COPY, DP_SPLICE, DP_DIRECT, DP_MMAP, DP_NPATHS };

/* Phase sums (nanoseconds) over the timed requests of one kind. */
struct dp_phase_stats {
  stat_t count;
  stat_t first_disk, first_net, last_disk, last_net, total;   /* from "received" */
  stat_t overlap;            /* time disk and network were both busy */
};

struct dp_stats {
  stat_t requests, reads, writes, other;
  stat_t bytes_read, bytes_written;
  stat_t bytes_path[DP_NPATHS];          /* payload bytes (read + written) per path */
  stat_t auto_reads[DP_NPATHS];          /* datapath=auto: READs per path chosen, */
  stat_t auto_read_bytes[DP_NPATHS];     /* their lengths, */
  stat_t auto_writes[DP_NPATHS];         /* WRITEs per path chosen, */
  stat_t auto_write_bytes[DP_NPATHS];    /* and theirs */
  stat_t copied_read, copied_write;      /* payload byte copies by the server's code/syscalls */
  stat_t memcpy_bytes;                   /* of which memcpy in user space (receive buffer, bounces) */
  stat_t bounce_bytes;                   /* unaligned edges of direct writes, merged into their blocks
                                          * through bounce blocks (read-modify-write) */
  stat_t range_lock_waits;               /* direct writes, TRIMs, zeroes that waited for a conflicting one */
  stat_t rmw_merged;                     /* unaligned edges merged into another's read-modify-write */
  stat_t zc_sends, zc_copied_sends, zc_copied_bytes;   /* SEND_ZC, and those the kernel copied */
  stat_t arena_allocs, arena_waits, arena_fallbacks, pipe_waits;
  stat_t chunks;                         /* chunks of split reads/writes */
  stat_t chunks_out_of_order;            /* structured data chunks sent before a chunk at a lower offset */
  stat_t send_timeouts;                  /* connections cut by --send-timeout */
  stat_t budget_waits;                   /* times a connection paused for --memory-budget */
  stat_t pool_hits, pool_allocs;         /* payload buffers reused from a worker's pool / newly mapped */
  stat_t mem_fixed_ios;                  /* caller-memory direct I/Os on registered memory (fixed buffers) */
  struct dp_phase_stats read_phase, write_phase;
};

static inline void stat_add(stat_t *s, uint64_t v)
{
  atomic_fetch_add_explicit(s, v, memory_order_relaxed);
}

/* One request's phase times (CLOCK_MONOTONIC ns; 0 = did not happen). */
struct dp_times {
  uint64_t recv;             /* header decoded */
  uint64_t disk_begin;       /* first backend operation issued */
  uint64_t first_disk, last_disk;   /* first and last backend completion */
  uint64_t net_begin;        /* reads: first payload send started; writes: = recv */
  uint64_t first_net, last_net;     /* reads: first and last payload send done; writes: payload received */
};

/* Now, in CLOCK_MONOTONIC nanoseconds. */
uint64_t dp_now(void);

/* Note a backend completion / a network event into t. */
void dp_times_disk(struct dp_times *t);
void dp_times_net(struct dp_times *t);

/* Fold a finished request's times into st (is_write picks the kind). */
void dp_stats_account(struct dp_stats *st, const struct dp_times *t, int is_write);

/* Write one export's stats as a JSON object (no trailing newline). */
void dp_stats_json(FILE *f, const struct dp_stats *st);

#endif
