/* bufpool.c: per-worker payload buffer pool (see bufpool.h).  Buffers are
 * anonymous mappings of their class's size; an idle buffer's first word
 * links it into its class's free list. */
#include <sys/mman.h>

#include "datapath/bufpool.h"

/* Every pool of the process, for bufpool_totals. */
static pthread_mutex_t pools_lock = PTHREAD_MUTEX_INITIALIZER;
static struct bufpool *pools;

#define PAGE 4096u

static unsigned class_of(size_t len)
{
  unsigned c = 0;
  while (c < BUFPOOL_CLASSES && ((size_t)1 << (BUFPOOL_MIN_SHIFT + c)) < len)
    c++;
  return c;   /* BUFPOOL_CLASSES: beyond the largest class */
}

size_t bufpool_size(size_t len)
{
  unsigned c = class_of(len);
  if (c < BUFPOOL_CLASSES)
    return (size_t)1 << (BUFPOOL_MIN_SHIFT + c);
  return (len + PAGE - 1) & ~(size_t)(PAGE - 1);
}

void bufpool_init(struct bufpool *p, size_t max)
{
  for (unsigned c = 0; c < BUFPOOL_CLASSES; c++) {
    p->free[c] = NULL;
    p->nfree[c] = 0;
  }
  atomic_init(&p->held, 0);
  atomic_init(&p->idle, 0);
  p->max = max;
  p->hits = p->allocs = 0;
  p->owner = pthread_self();
  pthread_mutex_lock(&pools_lock);
  p->next_pool = pools;
  p->prev_pool = &pools;
  if (pools)
    pools->prev_pool = &p->next_pool;
  pools = p;
  pthread_mutex_unlock(&pools_lock);
}

void bufpool_totals(uint64_t *held, uint64_t *idle)
{
  *held = *idle = 0;
  pthread_mutex_lock(&pools_lock);
  for (struct bufpool *p = pools; p; p = p->next_pool) {
    *held += atomic_load_explicit(&p->held, memory_order_relaxed);
    *idle += atomic_load_explicit(&p->idle, memory_order_relaxed);
  }
  pthread_mutex_unlock(&pools_lock);
}

/* The owner's view of its idle bytes (it is their only writer). */
static size_t idle_of(const struct bufpool *p)
{
  return atomic_load_explicit(&p->idle, memory_order_relaxed);
}

static void held_sub(struct bufpool *p, size_t n)
{
  atomic_fetch_sub_explicit(&p->held, n, memory_order_relaxed);
}

static void idle_change(struct bufpool *p, size_t n, bool add)
{
  atomic_store_explicit(&p->idle, add ? idle_of(p) + n : idle_of(p) - n, memory_order_relaxed);
}

/* Unmap idle buffers of class c until keep bytes are idle or the list is empty. */
static void trim_class(struct bufpool *p, unsigned c, size_t keep)
{
  size_t size = (size_t)1 << (BUFPOOL_MIN_SHIFT + c);
  while (p->free[c] && idle_of(p) > keep) {
    void *b = p->free[c];
    p->free[c] = *(void **)b;
    p->nfree[c]--;
    idle_change(p, size, false);
    held_sub(p, size);
    munmap(b, size);
  }
}

void bufpool_trim(struct bufpool *p, size_t keep)
{
  for (unsigned c = BUFPOOL_CLASSES; c-- > 0 && idle_of(p) > keep;)
    trim_class(p, c, keep);
}

void bufpool_fini(struct bufpool *p)
{
  bufpool_trim(p, 0);
  pthread_mutex_lock(&pools_lock);
  if (p->prev_pool) {
    *p->prev_pool = p->next_pool;
    if (p->next_pool)
      p->next_pool->prev_pool = p->prev_pool;
    p->prev_pool = NULL;
  }
  pthread_mutex_unlock(&pools_lock);
}

void *bufpool_get(struct bufpool *p, size_t len, bool prefault, bool *hit)
{
  unsigned c = class_of(len);
  size_t size = bufpool_size(len);
  void *b;

  if (c < BUFPOOL_CLASSES && p->free[c]) {
    b = p->free[c];
    p->free[c] = *(void **)b;
    p->nfree[c]--;
    idle_change(p, size, false);
    p->hits++;
    if (hit)
      *hit = true;
    return b;
  }
  b = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | (prefault ? MAP_POPULATE : 0), -1, 0);
  if (b == MAP_FAILED)
    return NULL;
  atomic_fetch_add_explicit(&p->held, size, memory_order_relaxed);
  p->allocs++;
  if (hit)
    *hit = false;
  return b;
}

void bufpool_put(struct bufpool *p, void *buf, size_t len)
{
  unsigned c = class_of(len);
  size_t size = bufpool_size(len);

  if (!buf)
    return;
  if (c >= BUFPOOL_CLASSES || !pthread_equal(pthread_self(), p->owner)) {
    held_sub(p, size);
    munmap(buf, size);
    return;
  }
  /* Above the bound: keep buf if giving up idle buffers (largest first)
   * makes room for it, else unmap it; handed-out buffers stay charged to
   * their requests. */
  size_t now = atomic_load_explicit(&p->held, memory_order_relaxed);
  if (now > p->max) {
    if (now - idle_of(p) > p->max) {
      held_sub(p, size);
      munmap(buf, size);
      return;
    }
    for (unsigned k = BUFPOOL_CLASSES; k-- > 0;)
      while (p->free[k] && atomic_load_explicit(&p->held, memory_order_relaxed) > p->max)
        trim_class(p, k, idle_of(p) - ((size_t)1 << (BUFPOOL_MIN_SHIFT + k)));
  }
  *(void **)buf = p->free[c];
  p->free[c] = buf;
  p->nfree[c]++;
  idle_change(p, size, true);
}
