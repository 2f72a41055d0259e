/* stream_triad.c: a STREAM-style triad (a[i] = b[i] + s * c[i]) over arrays far larger than the
 * last-level cache: the memory-bandwidth co-runner of bench/compare's interference experiment.
 * Usage: stream_triad SECONDS [MIB_PER_ARRAY]; prints "rate=MB/s cpu_rate=MB/s-of-CPU-time ...". */
#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

static double clock_s(clockid_t id)
{
  struct timespec ts;
  clock_gettime(id, &ts);
  return ts.tv_sec + ts.tv_nsec / 1e9;
}

static double now(void)
{
  return clock_s(CLOCK_MONOTONIC);
}

int main(int argc, char **argv)
{
  if (argc < 2) {
    fprintf(stderr, "usage: stream_triad SECONDS [MIB_PER_ARRAY]\n");
    return 2;
  }
  double seconds = atof(argv[1]);
  size_t mib = argc > 2 ? strtoul(argv[2], NULL, 10) : 128;
  size_t n = mib * 1024 * 1024 / sizeof(double);
  if (seconds <= 0 || n == 0) {
    fprintf(stderr, "stream_triad: bad arguments\n");
    return 2;
  }
  double *a = malloc(n * sizeof *a), *b = malloc(n * sizeof *b), *c = malloc(n * sizeof *c);
  if (!a || !b || !c) {
    fprintf(stderr, "stream_triad: out of memory\n");
    return 1;
  }
  for (size_t i = 0; i < n; i++) { /* fault every page in before the clock starts */
    a[i] = 0.0;
    b[i] = 1.0 + (double)(i & 7);
    c[i] = 2.0;
  }
  const double s = 3.0;
  unsigned long passes = 0;
  double start = now(), cpu_start = clock_s(CLOCK_PROCESS_CPUTIME_ID), end;
  do {
    for (size_t i = 0; i < n; i++)
      a[i] = b[i] + s * c[i];
    passes++;
    end = now();
  } while (end - start < seconds);
  /* STREAM's convention: triad moves 3 words per element (2 loads, 1 store). */
  double bytes = 3.0 * sizeof(double) * (double)n * (double)passes;
  double cpu = clock_s(CLOCK_PROCESS_CPUTIME_ID) - cpu_start;
  printf("rate=%.1f cpu_rate=%.1f passes=%lu seconds=%.3f cpu_seconds=%.3f check=%.1f\n",
         bytes / (end - start) / 1e6, bytes / cpu / 1e6, passes, end - start, cpu, a[n / 2]);
  free(a);
  free(b);
  free(c);
  return 0;
}
