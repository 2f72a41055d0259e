/* stats.h: per-export accounting (requests, bytes, bytes per data path,
 * payload bytes copied by a CPU on the server's behalf, zero-copy sends the
 * kernel copied anyway, arena waits/fallbacks, per-request phase times and
 * disk/network overlap; per command: completions, bytes, errors by errno and
 * a latency histogram), written as JSON (format: docs/design.md, "Stats").
 *
 * Every export keeps one struct dp_stats per worker (a slot): a worker only
 * writes its own slot, with a relaxed load and store (no locked instruction,
 * no cache line shared with another writer); readers on other threads load
 * each counter relaxed and sum the slots (dp_export_stats_sum). */
#ifndef SHUNT_DATAPATH_STATS_H
#define SHUNT_DATAPATH_STATS_H

#include <stdatomic.h>
#include <stdint.h>

#include "common/histogram.h"
#include "common/json.h"

typedef _Atomic uint64_t stat_t;

enum { DP_COPY, DP_SPLICE, DP_DIRECT, DP_MMAP, DP_NPATHS };

/* The commands counted apart (metric label "command"). */
enum dp_cmd { DP_CMD_READ, DP_CMD_WRITE, DP_CMD_FLUSH, DP_CMD_TRIM, DP_CMD_ZERO, DP_CMD_BLOCK_STATUS,
              DP_CMD_CACHE, DP_CMD_OTHER, DP_NCMDS };
/* The NBD errors counted apart (metric label "errno"); DP_ERR_OTHER: any other. */
enum dp_err { DP_ERR_EPERM, DP_ERR_EIO, DP_ERR_ENOMEM, DP_ERR_EINVAL, DP_ERR_ENOSPC, DP_ERR_EOVERFLOW,
              DP_ERR_ENOTSUP, DP_ERR_ESHUTDOWN, DP_ERR_OTHER, DP_NERRS };

/* Phase sums (nanoseconds) over the timed requests of one kind. */
struct dp_phase_stats {
  stat_t count;
  stat_t first_disk, first_net, last_disk, last_net, total;   /* from "received" */
  stat_t overlap;            /* time disk and network were both busy */
};

/* One command's completed requests: from the header decoded to the request
 * freed (its reply sent, or abandoned with its connection). */
struct dp_cmd_stats {
  stat_t count;
  stat_t bytes;                          /* the ranges of those without error */
  stat_t errors[DP_NERRS];               /* by the NBD error of their reply */
  stat_t latency_ns;                     /* sum of their latencies */
  stat_t latency[HIST_BUCKETS + 1];      /* histogram.h's buckets */
};

/* Only stat_t members: dp_export_stats_sum adds slots counter by counter. */
struct dp_stats {
  stat_t requests, reads, writes, other;
  stat_t bytes_read, bytes_written;
  stat_t bytes_path[DP_NPATHS];          /* payload bytes (read + written) per path */
  stat_t auto_reads[DP_NPATHS];          /* datapath=auto: READs per path chosen, */
  stat_t auto_read_bytes[DP_NPATHS];     /* their lengths, */
  stat_t auto_writes[DP_NPATHS];         /* WRITEs per path chosen, */
  stat_t auto_write_bytes[DP_NPATHS];    /* and theirs */
  stat_t auto_cache_misses;              /* small READs auto read from the page cache only
                                          * (RWF_NOWAIT) that found pages missing */
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
  /* TLS: plaintext encrypted (replies, headers included), and its
   * ciphertext pushed straight to the socket / copied by the session (the
   * socket did not take it at once, or a tiny record held for the next
   * send) / sealed by the server straight into its send buffer (not
   * copied: server/tls_seal.h). */
  stat_t tls_encrypted, tls_pushed_direct, tls_buffered, tls_sealed;
  struct dp_phase_stats read_phase, write_phase;
  struct dp_cmd_stats cmd[DP_NCMDS];
};

/* One worker's slot, alone on its cache lines. */
struct dp_stats_slot {
  _Alignas(64) struct dp_stats s;
};

/* Slots per export: at least the number of workers (engine ids 0..n-1);
 * set once at start-up, before any export is set up (default 1).  An engine
 * id beyond it shares a slot, which may then lose counts. */
extern unsigned dp_stats_slots;

/* Add v to counter s of the caller's own slot. */
static inline void stat_add(stat_t *s, uint64_t v)
{
  atomic_store_explicit(s, atomic_load_explicit(s, memory_order_relaxed) + v, memory_order_relaxed);
}

/* A counter's value (from any thread). */
static inline uint64_t stat_get(const stat_t *s)
{
  return atomic_load_explicit(s, memory_order_relaxed);
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

/* The command and error slots of an NBD command type and NBD error. */
enum dp_cmd dp_stats_cmd(uint16_t nbd_cmd);
enum dp_err dp_stats_err(uint32_t nbd_error);
/* Their names: "read", "write", "flush", "trim", "zero", "block-status",
 * "cache", "other"; "EPERM", "EIO", ..., "other". */
const char *dp_cmd_name(enum dp_cmd c);
const char *dp_err_name(enum dp_err e);

/* Count a completed request: command nbd_cmd over bytes bytes (counted when
 * nbd_error is 0), answered with nbd_error (0: success), latency_ns after
 * its header was decoded. */
void dp_stats_complete(struct dp_stats *st, uint16_t nbd_cmd, uint64_t bytes, uint32_t nbd_error,
                       uint64_t latency_ns);

/* Add every counter of the n slots to *out (zero it first). */
void dp_stats_sum(struct dp_stats *out, const struct dp_stats_slot *slots, unsigned n);

/* Command c's latency histogram in st (a sum). */
void dp_stats_hist(const struct dp_stats *st, enum dp_cmd c, struct hist *h);

/* Write one export's stats (a sum) as members of the JSON object open in j:
 * the keys docs/design.md lists, then "commands". */
void dp_stats_json(struct json *j, const struct dp_stats *st);

#endif
