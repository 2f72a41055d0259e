/* test_pheap.c: the intrusive pairing heap (src/datapath/pheap.c) against
 * a plain array: random inserts and removals of any node, the minimum
 * checked after each; a drain comes out sorted, equal keys in insertion
 * order. */
#include <stdlib.h>
#include <string.h>

#include "datapath/pheap.h"
#include "tap.h"

#define N 2000

static struct pheap_node nodes[N];
static uint64_t rng = 42;

static uint64_t next_rand(void)
{
  rng = rng * 6364136223846793005ull + 1442695040888963407ull;
  return rng >> 33;
}

/* The node the heap must give: the lowest key, then the lowest seq. */
static struct pheap_node *expected_min(void)
{
  struct pheap_node *m = NULL;
  for (unsigned i = 0; i < N; i++)
    if (nodes[i].in && (!m || nodes[i].key < m->key || (nodes[i].key == m->key && nodes[i].seq < m->seq)))
      m = &nodes[i];
  return m;
}

static void test_random(void)
{
  struct pheap h;
  unsigned in = 0, bad_min = 0, bad_n = 0;

  pheap_init(&h);
  memset(nodes, 0, sizeof nodes);
  for (unsigned step = 0; step < 50000; step++) {
    struct pheap_node *n = &nodes[next_rand() % N];
    unsigned op = next_rand() % 3;
    if (!n->in) {
      pheap_insert(&h, n, next_rand() % 500);   /* few keys: many ties */
      in++;
    } else if (op == 0 && h.root) {             /* the minimum, as the scheduler takes it */
      pheap_remove(&h, pheap_min(&h));
      in--;
    } else {                                    /* any node */
      pheap_remove(&h, n);
      in--;
    }
    if (pheap_min(&h) != expected_min())
      bad_min++;
    if (h.n != in)
      bad_n++;
  }
  ok(bad_min == 0, "50,000 random inserts and removals: the minimum is right after each (%u wrong)", bad_min);
  ok(bad_n == 0, "... and the count (%u nodes in at the end)", h.n);
  /* drain: sorted by key, then insertion */
  bool sorted = true;
  uint64_t last_key = 0, last_seq = 0;
  unsigned drained = 0;
  for (struct pheap_node *m; (m = pheap_min(&h)); drained++) {
    sorted = sorted && (!drained || m->key > last_key || (m->key == last_key && m->seq > last_seq));
    last_key = m->key;
    last_seq = m->seq;
    pheap_remove(&h, m);
  }
  ok(sorted && drained == in && h.n == 0 && !h.root, "a drain comes out in order (%u nodes)", drained);
}

static void test_ties(void)
{
  struct pheap h;
  pheap_init(&h);
  memset(nodes, 0, sizeof nodes);
  for (unsigned i = 0; i < 10; i++)
    pheap_insert(&h, &nodes[i], 7);
  pheap_remove(&h, &nodes[3]);
  pheap_insert(&h, &nodes[3], 7);
  bool order = true;
  unsigned want[] = { 0, 1, 2, 4, 5, 6, 7, 8, 9, 3 };
  for (unsigned i = 0; i < 10; i++) {
    order = order && pheap_min(&h) == &nodes[want[i]];
    pheap_remove(&h, pheap_min(&h));
  }
  ok(order, "equal keys come out in insertion order; a node taken out and put back goes last");
  ok(!pheap_min(&h) && !nodes[0].in, "empty at the end, the nodes marked out");
}

int main(void)
{
  test_random();
  test_ties();
  return tap_done();
}
