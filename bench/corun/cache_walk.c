/* cache_walk.c: a dependent random walk over a working set near the last-level cache's size: the
 * cache-sensitive co-runner of bench/compare's interference experiment (the thesis used bzip2).
 * Usage: cache_walk SECONDS [WORKING_SET_MIB]; prints "rate=M-accesses/s cpu_rate=... ". */
#define _GNU_SOURCE
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <time.h>

struct node {
  struct node *next;
  char pad[64 - sizeof(struct node *)]; /* one node per cache line */
};

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

static uint64_t rng_state = 0x9e3779b97f4a7c15ull;

static uint64_t rng(void) /* xorshift64*: deterministic, good enough for a shuffle */
{
  rng_state ^= rng_state >> 12;
  rng_state ^= rng_state << 25;
  rng_state ^= rng_state >> 27;
  return rng_state * 0x2545f4914f6cdd1dull;
}

int main(int argc, char **argv)
{
  if (argc < 2) {
    fprintf(stderr, "usage: cache_walk SECONDS [WORKING_SET_MIB]\n");
    return 2;
  }
  double seconds = atof(argv[1]);
  size_t mib = argc > 2 ? strtoul(argv[2], NULL, 10) : 32;
  size_t n = mib * 1024 * 1024 / sizeof(struct node);
  if (seconds <= 0 || n < 2) {
    fprintf(stderr, "cache_walk: bad arguments\n");
    return 2;
  }
  /* 2 MiB-aligned and on transparent huge pages where possible, so the walk measures the caches
   * rather than TLB misses. */
  const size_t huge = 2u << 20;
  size_t bytes = (n * sizeof(struct node) + huge - 1) & ~(huge - 1);
  struct node *nodes = aligned_alloc(huge, bytes);
  size_t *order = malloc(n * sizeof *order);
  if (!nodes || !order) {
    fprintf(stderr, "cache_walk: out of memory\n");
    return 1;
  }
  madvise(nodes, bytes, MADV_HUGEPAGE); /* advisory: ignore failure */
  /* Sattolo's shuffle gives one cycle through every node, so the walk covers the whole set. */
  for (size_t i = 0; i < n; i++)
    order[i] = i;
  for (size_t i = n - 1; i > 0; i--) {
    size_t j = rng() % i, t = order[i];
    order[i] = order[j];
    order[j] = t;
  }
  for (size_t i = 0; i < n; i++)
    nodes[order[i]].next = &nodes[order[(i + 1) % n]];
  free(order);

  struct node *p = &nodes[0];
  unsigned long long steps = 0;
  double start = now(), cpu_start = clock_s(CLOCK_PROCESS_CPUTIME_ID), end;
  do {
    for (int k = 0; k < 1 << 20; k++)
      p = p->next;
    steps += 1 << 20;
    end = now();
  } while (end - start < seconds);
  double cpu = clock_s(CLOCK_PROCESS_CPUTIME_ID) - cpu_start;
  printf("rate=%.2f cpu_rate=%.2f steps=%llu seconds=%.3f cpu_seconds=%.3f check=%d\n",
         steps / (end - start) / 1e6, steps / cpu / 1e6, steps, end - start, cpu,
         (int)((uintptr_t)p & 1));
  free(nodes);
  return 0;
}
