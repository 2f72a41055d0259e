/* test_bufpool.c: the worker's payload buffer pool (src/datapath/bufpool.c):
 * size classes, reuse of a returned buffer, pre-faulted buffers (every page
 * resident at once, mincore(2)), the bound on what it keeps (idle memory
 * never beyond it; above it the idle buffers go first), the process-wide
 * byte counts, trimming, and a buffer returned on another thread. */
#include <pthread.h>
#include <stdint.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "datapath/bufpool.h"
#include "tap.h"

#define KiB ((size_t)1 << 10)
#define MiB ((size_t)1 << 20)

/* All pages of [p, p + len) resident. */
static bool resident(void *p, size_t len)
{
  size_t page = (size_t)sysconf(_SC_PAGESIZE), n = (len + page - 1) / page;
  unsigned char vec[4096];
  if (n > sizeof vec || mincore(p, len, vec) < 0)
    return false;
  for (size_t i = 0; i < n; i++)
    if (!(vec[i] & 1))
      return false;
  return true;
}

struct remote_put { struct bufpool *p; void *buf; size_t len; };

static void *put_elsewhere(void *arg)
{
  struct remote_put *rp = arg;
  bufpool_put(rp->p, rp->buf, rp->len);
  return NULL;
}

static size_t held(struct bufpool *p) { return atomic_load(&p->held); }

int main(void)
{
  struct bufpool p;
  bool hit = true;

  ok(bufpool_size(1) == 4 * KiB && bufpool_size(4 * KiB) == 4 * KiB && bufpool_size(4 * KiB + 1) == 8 * KiB,
     "classes start at 4 KiB and round up to a power of two");
  ok(bufpool_size(MiB) == MiB && bufpool_size(MiB + 1) == 2 * MiB && bufpool_size(32 * MiB) == 32 * MiB,
     "1 MiB is a class of its own; 32 MiB the largest");
  ok(bufpool_size(32 * MiB + 1) == 32 * MiB + 4 * KiB, "beyond the largest class: whole pages");

  bufpool_init(&p, 4 * MiB);
  void *a = bufpool_get(&p, MiB, true, &hit);
  ok(a && !hit && ((uintptr_t)a & 4095) == 0, "a first get maps a new, page-aligned buffer");
  ok(a && resident(a, MiB), "prefault: every page of it is resident at once");
  ok(held(&p) == MiB && p.idle == 0 && p.allocs == 1, "held counts it, nothing idle");
  uint64_t th, ti;
  bufpool_totals(&th, &ti);
  ok(th == MiB && ti == 0, "the process-wide count too");
  memset(a, 0x5a, MiB);
  bufpool_put(&p, a, MiB);
  ok(held(&p) == MiB && p.idle == MiB, "a returned buffer is kept, idle");
  void *b = bufpool_get(&p, 700 * KiB, true, &hit);
  ok(b == a && hit && p.hits == 1, "a request of the same class gets it back");
  ok(resident(b, MiB), "still resident: no page faulted again");
  void *c = bufpool_get(&p, 4 * KiB, false, &hit);
  ok(c && c != b && !hit, "another class: a buffer of its own");
  ok(held(&p) == MiB + 4 * KiB, "held: both");
  bufpool_put(&p, c, 4 * KiB);
  bufpool_put(&p, b, 700 * KiB);
  ok(p.idle == MiB + 4 * KiB && p.nfree[0] == 1 && p.nfree[8] == 1, "both on their class's free list");

  /* Bound: 4 MiB.  Two 2 MiB buffers and the idle ones make 5 MiB held. */
  void *d = bufpool_get(&p, 2 * MiB, true, &hit);
  void *e = bufpool_get(&p, 2 * MiB, true, &hit);
  ok(d && e && held(&p) == 5 * MiB + 4 * KiB, "handed out beyond the bound: requests are charged elsewhere");
  bufpool_put(&p, d, 2 * MiB);
  ok(held(&p) == 4 * MiB && p.idle == 2 * MiB && p.nfree[8] == 0 && p.nfree[0] == 0,
     "above the bound the idle buffers go first (largest first), the returned one is kept");
  bufpool_put(&p, e, 2 * MiB);
  ok(held(&p) == 4 * MiB && p.idle == 4 * MiB && p.idle <= p.max, "at the bound: kept; idle never beyond it");
  void *f = bufpool_get(&p, 8 * MiB, true, &hit);
  ok(f && !hit && held(&p) == 12 * MiB, "a larger request maps its own");
  bufpool_put(&p, f, 8 * MiB);
  ok(held(&p) == 4 * MiB && p.idle == 4 * MiB && p.nfree[9] == 2,
     "one that cannot fit within the bound is unmapped; the idle ones stay");
  void *f1 = bufpool_get(&p, 3 * MiB / 2, true, &hit);
  void *f2 = bufpool_get(&p, MiB, true, &hit);
  ok(f1 && f2 && held(&p) == 5 * MiB && p.idle == 2 * MiB, "a 2 MiB buffer from the idle ones, a new 1 MiB one");
  bufpool_put(&p, f2, MiB);
  ok(held(&p) == 3 * MiB && p.idle == MiB && p.nfree[9] == 0 && p.nfree[8] == 1,
     "above the bound: idle ones given up (as few as needed) to keep the returned one");
  bufpool_put(&p, f1, 3 * MiB / 2);
  ok(held(&p) == 3 * MiB && p.idle == 3 * MiB && p.nfree[9] == 1 && p.nfree[8] == 1,
     "within the bound: kept");
  void *f3 = bufpool_get(&p, 4 * MiB, true, &hit);
  void *f4 = bufpool_get(&p, 4 * KiB, true, &hit);
  bufpool_put(&p, f4, 4 * KiB);
  ok(held(&p) == 7 * MiB && p.nfree[0] == 0,
     "a buffer that cannot fit beside those handed out is unmapped; the idle ones stay");
  bufpool_put(&p, f3, 4 * MiB);
  ok(held(&p) == 4 * MiB && p.idle == 4 * MiB && p.nfree[10] == 1 && p.nfree[9] == 0,
     "the 4 MiB one returned: the idle ones make room for it");

  size_t before = held(&p);
  void *g = bufpool_get(&p, 33 * MiB, false, &hit);
  ok(g != NULL, "beyond the largest class: mapped");
  bufpool_put(&p, g, 33 * MiB);
  ok(held(&p) == before && p.idle <= p.max, "and unmapped when returned");

  /* A buffer returned on another thread: unmapped there, counts adjusted. */
  void *h = bufpool_get(&p, 64 * KiB, true, &hit);
  size_t idle_before = p.idle, held_before = held(&p);
  struct remote_put rp = { &p, h, 64 * KiB };
  pthread_t t;
  pthread_create(&t, NULL, put_elsewhere, &rp);
  pthread_join(t, NULL);
  ok(p.idle == idle_before && held(&p) == held_before - 64 * KiB,
     "returned on another thread: not put on the owner's lists, unmapped");

  bufpool_trim(&p, MiB);
  ok(p.idle <= MiB && held(&p) == p.idle, "trim: idle down to what may stay");
  bufpool_totals(&th, &ti);
  ok(th == held(&p) && ti == p.idle, "the process-wide counts sum the pool's");
  bufpool_fini(&p);
  bufpool_totals(&th, &ti);
  ok(held(&p) == 0 && p.idle == 0 && th == 0 && ti == 0,
     "fini unmaps everything; the process-wide counts back to 0");
  return tap_done();
}
