/* pagetable.c: the memory backend's sparse radix tree of pages (see
 * pagetable.h).  A node's bitmap says which slots are in use, so a walk finds
 * the next used (or free) slot with a few word scans instead of looking at
 * every slot, and never descends into an absent subtree. */
#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>

#include "backend/pagetable.h"

#define PT_BITS 9u
#define PT_FAN  (1u << PT_BITS)   /* slots per node */

struct pt_node {
  uint64_t used[PT_FAN / 64];   /* bit i: slot[i] is not NULL */
  unsigned count;               /* slots in use */
  void *slot[PT_FAN];           /* level 0: pages; above: child nodes */
};

const size_t pt_node_size = sizeof(struct pt_node);

/* Pages under one slot of a node at level. */
static uint64_t slot_span(unsigned level)
{
  return UINT64_C(1) << (PT_BITS * level);
}

static void slot_fill(struct pt_node *n, unsigned i, void *p)
{
  n->slot[i] = p;
  n->used[i / 64] |= UINT64_C(1) << (i % 64);
  n->count++;
}

static void slot_clear(struct pt_node *n, unsigned i)
{
  n->slot[i] = NULL;
  n->used[i / 64] &= ~(UINT64_C(1) << (i % 64));
  n->count--;
}

/* The first slot >= i that is used (set) or free (!set); PT_FAN if none. */
static unsigned next_slot(const struct pt_node *n, unsigned i, bool set)
{
  while (i < PT_FAN) {
    uint64_t w = set ? n->used[i / 64] : ~n->used[i / 64];
    w &= ~UINT64_C(0) << (i % 64);
    if (w)
      return (i & ~63u) + (unsigned)__builtin_ctzll(w);
    i = (i & ~63u) + 64;
  }
  return PT_FAN;
}

/* The slot of node n (level, first page base) that holds page pg >= base. */
static unsigned slot_of(uint64_t pg, unsigned level, uint64_t base)
{
  return pg > base ? (unsigned)((pg - base) / slot_span(level)) : 0;
}

int pt_init(struct pagetable *t, uint64_t npages)
{
  t->depth = 1;
  while (t->depth < 8 && slot_span(t->depth) < npages)
    t->depth++;
  t->npages = npages;
  t->pages = 0;
  atomic_init(&t->steps, 0);
  t->root = calloc(1, sizeof *t->root);
  t->nodes = 1;
  return t->root ? 0 : -ENOMEM;
}

static void free_node(struct pt_node *n, unsigned level)
{
  for (unsigned i = next_slot(n, 0, true); i < PT_FAN; i = next_slot(n, i + 1, true)) {
    if (level == 0)
      free(n->slot[i]);
    else
      free_node(n->slot[i], level - 1);
  }
  free(n);
}

void pt_fini(struct pagetable *t)
{
  if (t->root)
    free_node(t->root, t->depth - 1);
  t->root = NULL;
  t->pages = t->nodes = 0;
}

void *pt_get(struct pagetable *t, uint64_t pg)
{
  struct pt_node *n = t->root;

  for (unsigned level = t->depth - 1; level > 0 && n; level--)
    n = n->slot[(pg >> (PT_BITS * level)) & (PT_FAN - 1)];
  return n ? n->slot[pg & (PT_FAN - 1)] : NULL;
}

int pt_set(struct pagetable *t, uint64_t pg, void *p)
{
  struct pt_node *n = t->root;

  for (unsigned level = t->depth - 1; level > 0; level--) {
    unsigned i = (pg >> (PT_BITS * level)) & (PT_FAN - 1);
    if (!n->slot[i]) {
      /* An empty node left behind by a later failure is freed by the next
       * pt_free_range over it. */
      struct pt_node *c = calloc(1, sizeof *c);
      if (!c)
        return -ENOMEM;
      slot_fill(n, i, c);
      t->nodes++;
    }
    n = n->slot[i];
  }
  slot_fill(n, pg & (PT_FAN - 1), p);
  t->pages++;
  return 0;
}

static uint64_t free_in(struct pagetable *t, struct pt_node *n, unsigned level, uint64_t base,
                        uint64_t first, uint64_t end)
{
  uint64_t freed = 0;

  atomic_fetch_add_explicit(&t->steps, 1, memory_order_relaxed);
  for (unsigned i = next_slot(n, slot_of(first, level, base), true); i < PT_FAN;
       i = next_slot(n, i + 1, true)) {
    uint64_t cb = base + i * slot_span(level);
    if (cb >= end)
      break;
    if (level == 0) {
      free(n->slot[i]);
      slot_clear(n, i);
      freed++;
    } else {
      struct pt_node *c = n->slot[i];
      freed += free_in(t, c, level - 1, cb, first, end);
      if (c->count == 0) {   /* an empty node goes too: walks never meet one */
        free(c);
        slot_clear(n, i);
        t->nodes--;
      }
    }
  }
  return freed;
}

uint64_t pt_free_range(struct pagetable *t, uint64_t first, uint64_t end)
{
  uint64_t freed;

  if (end > t->npages)
    end = t->npages;
  if (first >= end)
    return 0;
  freed = free_in(t, t->root, t->depth - 1, 0, first, end);
  t->pages -= freed;
  return freed;
}

static uint64_t data_in(struct pagetable *t, struct pt_node *n, unsigned level, uint64_t base,
                        uint64_t pg, uint64_t end)
{
  atomic_fetch_add_explicit(&t->steps, 1, memory_order_relaxed);
  for (unsigned i = next_slot(n, slot_of(pg, level, base), true); i < PT_FAN;
       i = next_slot(n, i + 1, true)) {
    uint64_t cb = base + i * slot_span(level);
    if (cb >= end)
      break;
    if (level == 0)
      return cb;
    uint64_t r = data_in(t, n->slot[i], level - 1, cb, pg, end);
    if (r < end)
      return r;
  }
  return end;
}

uint64_t pt_next_data(struct pagetable *t, uint64_t pg, uint64_t end)
{
  if (end > t->npages)
    end = t->npages;
  return pg >= end ? end : data_in(t, t->root, t->depth - 1, 0, pg, end);
}

/* The first absent page in [pg, end) under n, or end when n has none there. */
static uint64_t hole_in(struct pagetable *t, struct pt_node *n, unsigned level, uint64_t base,
                        uint64_t pg, uint64_t end)
{
  atomic_fetch_add_explicit(&t->steps, 1, memory_order_relaxed);
  if (level == 0) {
    unsigned i = next_slot(n, slot_of(pg, 0, base), false);
    return i < PT_FAN && base + i < end ? base + i : end;
  }
  for (unsigned i = slot_of(pg, level, base); i < PT_FAN; i++) {
    uint64_t cb = base + i * slot_span(level);
    if (cb >= end)
      break;
    if (!n->slot[i])
      return cb > pg ? cb : pg;
    uint64_t r = hole_in(t, n->slot[i], level - 1, cb, pg, end);
    if (r < end)
      return r;
  }
  return end;
}

uint64_t pt_next_hole(struct pagetable *t, uint64_t pg, uint64_t end)
{
  if (end > t->npages)
    end = t->npages;
  return pg >= end ? end : hole_in(t, t->root, t->depth - 1, 0, pg, end);
}
