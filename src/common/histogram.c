/* histogram.c: log2 latency buckets and their quantiles (see histogram.h). */
#include <math.h>

#include "common/histogram.h"

unsigned hist_bucket(uint64_t ns)
{
  uint64_t us = ns / 1000 + (ns % 1000 != 0);   /* rounded up: bounds are inclusive */
  unsigned k;

  if (us <= 1)
    return 0;
  k = 64 - (unsigned)__builtin_clzll(us - 1);   /* the smallest k with us <= 2^k */
  return k < HIST_BUCKETS ? k : HIST_BUCKETS;
}

double hist_upper_seconds(unsigned k)
{
  return ldexp(1e-6, (int)k);
}

void hist_add(struct hist *h, uint64_t ns)
{
  h->bucket[hist_bucket(ns)]++;
  h->count++;
  h->sum_ns += ns;
}

void hist_merge(struct hist *dst, const struct hist *src)
{
  for (unsigned k = 0; k <= HIST_BUCKETS; k++)
    dst->bucket[k] += src->bucket[k];
  dst->count += src->count;
  dst->sum_ns += src->sum_ns;
}

double hist_quantile(const struct hist *h, double q)
{
  uint64_t total = 0, below = 0, rank;

  for (unsigned k = 0; k <= HIST_BUCKETS; k++)
    total += h->bucket[k];
  if (total == 0 || !(q > 0))
    return 0;
  if (q > 1)
    q = 1;
  rank = (uint64_t)ceil(q * (double)total);
  if (rank == 0)
    rank = 1;
  for (unsigned k = 0; k <= HIST_BUCKETS; k++) {
    uint64_t n = h->bucket[k];
    if (below + n >= rank) {
      double lo = k ? hist_upper_seconds(k - 1) : 0;
      if (k == HIST_BUCKETS)
        return lo;
      double hi = hist_upper_seconds(k);
      return lo + (hi - lo) * (double)(rank - below) / (double)n;
    }
    below += n;
  }
  return hist_upper_seconds(HIST_BUCKETS - 1);   /* not reached: ranks stop at total */
}
