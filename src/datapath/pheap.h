/* pheap.h: an intrusive pairing heap (Fredman, Sedgewick, Sleator and
 * Tarjan, 1986) of nodes ordered by a 64-bit key, the oldest insertion
 * first among equal keys.  The scheduler keeps its backlogged flows in it,
 * so that the next one to serve is found without looking at every flow.
 * Insert O(1); pheap_remove of any node O(log n) amortised.  No
 * allocation: the node lives in the caller's struct.  Not thread-safe. */
#ifndef SHUNT_DATAPATH_PHEAP_H
#define SHUNT_DATAPATH_PHEAP_H

#include <stdbool.h>
#include <stdint.h>

struct pheap_node {
  struct pheap_node *child;       /* the first child */
  struct pheap_node *next;        /* the next sibling */
  struct pheap_node *prev;        /* the previous sibling, or the parent of a first child; NULL at the root */
  uint64_t key, seq;
  bool in;                        /* in a heap */
};

struct pheap {
  struct pheap_node *root;
  uint64_t seq;                   /* insertions so far: the tie-breaker */
  unsigned n;
};

/* An empty heap. */
void pheap_init(struct pheap *h);

/* Add n (not in a heap) with key. */
void pheap_insert(struct pheap *h, struct pheap_node *n, uint64_t key);

/* Take n (in h) out of h. */
void pheap_remove(struct pheap *h, struct pheap_node *n);

/* The node with the lowest key (the oldest of those), NULL when h is empty. */
static inline struct pheap_node *pheap_min(const struct pheap *h) { return h->root; }

#endif
