/* histogram.h: latency histograms with log2 buckets of microseconds, as the
 * server's request statistics keep them, and the quantiles (p50, p99,
 * p99.9) estimated from one.  Bucket k (0 <= k < HIST_BUCKETS) counts the
 * latencies in (2^(k-1), 2^k] microseconds (bucket 0: up to 1 us); bucket
 * HIST_BUCKETS counts everything above 2^(HIST_BUCKETS-1) us (about 34 s).
 * Pure arithmetic: the counters themselves live with their writer. */
#ifndef SHUNT_COMMON_HISTOGRAM_H
#define SHUNT_COMMON_HISTOGRAM_H

#include <stdint.h>

#define HIST_BUCKETS 26                  /* finite buckets: 1 us .. 2^25 us */

/* A histogram's counts, summed over its writers (a snapshot). */
struct hist {
  uint64_t bucket[HIST_BUCKETS + 1];     /* the last one: above the finite bounds */
  uint64_t count;                        /* sum of bucket[] */
  uint64_t sum_ns;                       /* sum of the latencies, nanoseconds */
};

/* The bucket of a latency of ns nanoseconds (0..HIST_BUCKETS). */
unsigned hist_bucket(uint64_t ns);

/* The upper bound of bucket k in seconds (k < HIST_BUCKETS): 2^k us. */
double hist_upper_seconds(unsigned k);

/* Add one latency of ns nanoseconds to h. */
void hist_add(struct hist *h, uint64_t ns);

/* Add every count of src to dst. */
void hist_merge(struct hist *dst, const struct hist *src);

/* The q-quantile (0 < q <= 1) of h in seconds, interpolated linearly inside
 * the bucket that holds the rank ceil(q * count) (as Prometheus's
 * histogram_quantile() does); a rank in the last, unbounded bucket gives
 * that bucket's lower bound.  0 when h is empty. */
double hist_quantile(const struct hist *h, double q);

#endif
