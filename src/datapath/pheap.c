/* pheap.c: the intrusive pairing heap (pheap.h).  A node's children are a
 * list through next; the first child's prev is its parent.  Removing the
 * root merges its children in two passes (pairs left to right, then the
 * pairs right to left), which keeps the amortised cost logarithmic. */
#include <stddef.h>

#include "datapath/pheap.h"

void pheap_init(struct pheap *h)
{
  h->root = NULL;
  h->seq = 0;
  h->n = 0;
}

static bool before(const struct pheap_node *a, const struct pheap_node *b)
{
  return a->key < b->key || (a->key == b->key && a->seq < b->seq);
}

/* The union of two heaps whose roots have no siblings. */
static struct pheap_node *meld(struct pheap_node *a, struct pheap_node *b)
{
  if (!a)
    return b;
  if (!b)
    return a;
  if (before(b, a)) {
    struct pheap_node *t = a;
    a = b;
    b = t;
  }
  b->prev = a;
  b->next = a->child;
  if (a->child)
    a->child->prev = b;
  a->child = b;
  return a;
}

/* One heap of a list of sibling heaps (through next). */
static struct pheap_node *merge_pairs(struct pheap_node *c)
{
  struct pheap_node *pairs = NULL, *r = NULL;

  while (c) {   /* left to right: meld each pair, stacked through next */
    struct pheap_node *a = c, *b = c->next;
    c = b ? b->next : NULL;
    a->next = a->prev = NULL;
    if (b)
      b->next = b->prev = NULL;
    a = meld(a, b);
    a->next = pairs;
    pairs = a;
  }
  while (pairs) {   /* right to left: into one */
    struct pheap_node *n = pairs->next;
    pairs->next = NULL;
    r = meld(r, pairs);
    pairs = n;
  }
  return r;
}

void pheap_insert(struct pheap *h, struct pheap_node *n, uint64_t key)
{
  n->key = key;
  n->seq = h->seq++;
  n->child = n->next = n->prev = NULL;
  n->in = true;
  h->root = meld(h->root, n);
  h->n++;
}

void pheap_remove(struct pheap *h, struct pheap_node *n)
{
  if (n == h->root) {
    h->root = merge_pairs(n->child);
  } else {   /* cut n's subtree out of its parent's list, then meld it back without n */
    if (n->prev->child == n)
      n->prev->child = n->next;
    else
      n->prev->next = n->next;
    if (n->next)
      n->next->prev = n->prev;
    h->root = meld(h->root, merge_pairs(n->child));
  }
  if (h->root)
    h->root->prev = NULL;
  n->child = n->next = n->prev = NULL;
  n->in = false;
  h->n--;
}
