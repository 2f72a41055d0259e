/* test_histogram.c: the latency histogram (src/common/histogram.c): bucket
 * bounds, merging, and the quantiles estimated from the buckets; and the
 * Prometheus text writer (src/common/prom.c): lines and label escaping. */
#include <math.h>
#include <stdint.h>
#include <string.h>

#include "common/histogram.h"
#include "common/prom.h"
#include "tap.h"

static int near(double a, double b)
{
  return fabs(a - b) <= 1e-12 + 1e-9 * fabs(b);
}

static void test_buckets(void)
{
  ok(hist_bucket(0) == 0 && hist_bucket(1) == 0 && hist_bucket(1000) == 0, "up to 1 us: bucket 0");
  ok(hist_bucket(1001) == 1 && hist_bucket(2000) == 1, "(1, 2] us: bucket 1");
  ok(hist_bucket(2001) == 2 && hist_bucket(4000) == 2 && hist_bucket(4001) == 3, "(2, 4] us: bucket 2");
  ok(hist_bucket(1000000) == 10 && hist_bucket(1000000000) == 20, "1 ms lies in (2^9, 2^10] us, 1 s in (2^19, 2^20] us");
  ok(hist_bucket(1000ull << 25) == HIST_BUCKETS - 1, "2^25 us: the last finite bucket");
  ok(hist_bucket((1000ull << 25) + 1) == HIST_BUCKETS && hist_bucket(UINT64_MAX) == HIST_BUCKETS,
     "beyond: the unbounded bucket");
  ok(near(hist_upper_seconds(0), 1e-6) && near(hist_upper_seconds(10), 1024e-6), "upper bounds in seconds");
  /* Every bucket's upper bound is in that bucket; one nanosecond more is not. */
  int good = 1;
  for (unsigned k = 0; k < HIST_BUCKETS; k++) {
    uint64_t ns = 1000ull << k;
    good &= hist_bucket(ns) == k && hist_bucket(ns + 1) == k + 1;
  }
  ok(good, "bounds are inclusive for every bucket");
}

static void test_quantiles(void)
{
  struct hist h, h2;

  memset(&h, 0, sizeof h);
  ok(hist_quantile(&h, 0.5) == 0, "an empty histogram: 0");

  /* 100 latencies of 3 us: all in bucket 2, (2, 4] us. */
  for (int i = 0; i < 100; i++)
    hist_add(&h, 3000);
  ok(h.count == 100 && h.bucket[2] == 100 && h.sum_ns == 300000, "count, bucket and sum");
  ok(near(hist_quantile(&h, 0.5), 3e-6), "p50 interpolated in (2, 4] us: 3 us");
  ok(near(hist_quantile(&h, 1.0), 4e-6), "p100: the bucket's upper bound");
  ok(near(hist_quantile(&h, 0.01), 2.02e-6), "p1: one rank into the bucket");

  /* 990 fast (bucket 0) and 10 slow (1 s: bucket 20). */
  memset(&h, 0, sizeof h);
  for (int i = 0; i < 990; i++)
    hist_add(&h, 500);
  for (int i = 0; i < 10; i++)
    hist_add(&h, 1000000000);
  ok(near(hist_quantile(&h, 0.5), 1e-6 * 500 / 990), "p50: rank 500 of the 990 in [0, 1] us");
  ok(near(hist_quantile(&h, 0.99), 1e-6), "p99: rank 990, the top of bucket 0");
  double lo = hist_upper_seconds(19), hi = hist_upper_seconds(20);
  ok(near(hist_quantile(&h, 0.999), lo + (hi - lo) * 9 / 10), "p99.9: rank 999, 9 of 10 into bucket 20");

  /* Merging two halves gives the whole. */
  memset(&h2, 0, sizeof h2);
  struct hist a, b;
  memset(&a, 0, sizeof a);
  memset(&b, 0, sizeof b);
  for (int i = 0; i < 990; i++)
    hist_add(i % 2 ? &a : &b, 500);
  for (int i = 0; i < 10; i++)
    hist_add(&a, 1000000000);
  hist_merge(&h2, &a);
  hist_merge(&h2, &b);
  ok(memcmp(&h2, &h, sizeof h) == 0, "merged halves equal the whole");

  /* Past the finite buckets: the quantile is the last finite bound. */
  memset(&h, 0, sizeof h);
  hist_add(&h, UINT64_MAX / 2);
  ok(h.bucket[HIST_BUCKETS] == 1 && near(hist_quantile(&h, 0.5), hist_upper_seconds(HIST_BUCKETS - 1)),
     "an overflowed latency: the last finite bound");
}

static void test_prom(void)
{
  struct prom p;
  struct prom_label l[2] = { { "export", "a\"b\\c\nd" }, { "le", "+Inf" } };

  prom_init(&p);
  prom_family(&p, "x_total", "counter", "a help\\text\nline");
  prom_uint(&p, "x_total", l, 1, 42);
  prom_double(&p, "x_bucket", l, 2, 0.5);
  prom_double(&p, "y", NULL, 0, INFINITY);
  prom_double(&p, "z", NULL, 0, NAN);
  ok(p.error == 0, "no error");
  ok(p.buf && !strcmp(p.buf,
     "# HELP x_total a help\\\\text\\nline\n"
     "# TYPE x_total counter\n"
     "x_total{export=\"a\\\"b\\\\c\\nd\"} 42\n"
     "x_bucket{export=\"a\\\"b\\\\c\\nd\",le=\"+Inf\"} 0.5\n"
     "y +Inf\n"
     "z NaN\n"), "lines, escapes and special values as the format says");
  prom_free(&p);

  prom_init(&p);
  struct prom_label bad = { "export", "a\xff" "b" };
  prom_uint(&p, "n", &bad, 1, 0);
  ok(p.buf && !strcmp(p.buf, "n{export=\"a\xef\xbf\xbd" "b\"} 0\n"), "bytes that are not UTF-8 become U+FFFD");
  prom_free(&p);
}

int main(void)
{
  test_buckets();
  test_quantiles();
  test_prom();
  return tap_done();
}
