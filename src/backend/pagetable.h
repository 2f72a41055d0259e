/* pagetable.h: a sparse table of pages for the memory backend: a radix tree
 * of 512-slot nodes with a bitmap of the used slots in each, so that every
 * walk (the next data or hole, freeing a range) skips absent subtrees at
 * once: its cost grows with what is allocated in the range and with the
 * tree's depth (at most 4 for 16 TiB of 4 KiB pages), never with the range's
 * length.  Not thread-safe: the caller locks. */
#ifndef SHUNT_BACKEND_PAGETABLE_H
#define SHUNT_BACKEND_PAGETABLE_H

#include <stdatomic.h>
#include <stdint.h>

struct pt_node;

struct pagetable {
  struct pt_node *root;   /* always present */
  unsigned depth;         /* node levels; level 0 nodes hold pages */
  uint64_t npages;        /* pages the table covers: [0, npages) */
  uint64_t pages;         /* pages present */
  uint64_t nodes;         /* nodes allocated, root included */
  /* Nodes visited by walks so far (their cost, for tests and stats);
   * atomic: walks under a shared lock count too. */
  _Atomic uint64_t steps;
};

/* Bytes of one node (bookkeeping: about 0.2% of the pages it holds). */
extern const size_t pt_node_size;

/* An empty table for npages pages.  Returns 0 or -ENOMEM. */
int pt_init(struct pagetable *t, uint64_t npages);

/* Free every page (with free()) and node. */
void pt_fini(struct pagetable *t);

/* The page at index pg (< npages), or NULL when absent. */
void *pt_get(struct pagetable *t, uint64_t pg);

/* Put page p (from malloc) at the absent index pg.  Returns 0, or -ENOMEM
 * when a node cannot be allocated (p is then not taken). */
int pt_set(struct pagetable *t, uint64_t pg, void *p);

/* Free (with free()) every page in [first, end).  Returns how many. */
uint64_t pt_free_range(struct pagetable *t, uint64_t first, uint64_t end);

/* The first present page in [pg, end), or end when there is none. */
uint64_t pt_next_data(struct pagetable *t, uint64_t pg, uint64_t end);

/* The first absent page in [pg, end), or end when there is none. */
uint64_t pt_next_hole(struct pagetable *t, uint64_t pg, uint64_t end);

#endif
