/* rangelock.c: first-come ordering of writes to the same blocks, shared by
 * every worker (see rangelock.h).  The locks of a table form one list in
 * order of arrival; a lock is held when nothing before it conflicts. */
#include <stddef.h>

#include "datapath/rangelock.h"

void rangelock_init(struct rangelock *t)
{
  pthread_mutex_init(&t->mu, NULL);
  t->head = t->tail = NULL;
  t->waits = 0;
}

void rangelock_fini(struct rangelock *t)
{
  pthread_mutex_destroy(&t->mu);
}

static bool conflict(const struct rl_lock *a, const struct rl_lock *b)
{
  return a->start < b->end && b->start < a->end && (a->excl || b->excl);
}

/* Nothing that arrived before l conflicts with it (held or waiting). */
static bool free_before(const struct rl_lock *l)
{
  for (const struct rl_lock *p = l->prev; p; p = p->prev)
    if (conflict(p, l))
      return false;
  return true;
}

static void grant_cb(struct engine_op *op, int res, uint32_t flags)
{
  struct rl_lock *l = (struct rl_lock *)((char *)op - offsetof(struct rl_lock, op));
  (void)res; (void)flags;
  l->granted(l);
}

bool rangelock_lock(struct rangelock *t, struct rl_lock *l)
{
  pthread_mutex_lock(&t->mu);
  l->next = NULL;
  l->prev = t->tail;
  if (t->tail)
    t->tail->next = l;
  else
    t->head = l;
  t->tail = l;
  l->held = free_before(l);
  if (!l->held)
    t->waits++;
  pthread_mutex_unlock(&t->mu);
  return l->held;
}

void rangelock_unlock(struct rangelock *t, struct rl_lock *l)
{
  struct rl_lock *grant[64];
  size_t n = 0;
  struct rl_lock *w;

  pthread_mutex_lock(&t->mu);
  w = l->next;
  if (l->prev)
    l->prev->next = l->next;
  else
    t->head = l->next;
  if (l->next)
    l->next->prev = l->prev;
  else
    t->tail = l->prev;
  /* Only waiters l conflicted with can have been waiting for it; each is
   * granted when nothing before it conflicts any more (in order, so one
   * granted here holds up the later ones it conflicts with). */
  for (; w && n < sizeof grant / sizeof grant[0]; w = w->next)
    if (!w->held && conflict(l, w) && free_before(w)) {
      w->held = true;
      grant[n++] = w;
    }
  if (w && n == sizeof grant / sizeof grant[0]) {
    /* Very many waiters freed at once: grant the rest with a full walk. */
    for (; w; w = w->next)
      if (!w->held && free_before(w)) {
        w->held = true;
        w->op.cb = grant_cb;
        engine_post(w->eng, &w->op, 0);
      }
  }
  pthread_mutex_unlock(&t->mu);
  /* Wake them on their own loops (outside the mutex: each is held now and
   * only its owner touches it until granted() runs). */
  for (size_t i = 0; i < n; i++) {
    grant[i]->op.cb = grant_cb;
    if (grant[i]->eng == l->eng)
      engine_defer(l->eng, &grant[i]->op, 0);
    else
      engine_post(grant[i]->eng, &grant[i]->op, 0);
  }
}

size_t rangelock_take_same(struct rangelock *t, struct rl_lock *l, struct rl_lock **out, size_t max)
{
  size_t n = 0;

  if (!l->excl || !l->merge_key)
    return 0;
  pthread_mutex_lock(&t->mu);
  /* l is held, so nothing before it conflicts with l, nor with a waiter of
   * the same range: such a waiter only waits for l and for the conflicting
   * locks between them, all taken here or the walk stops. */
  for (struct rl_lock *w = l->next; w && n < max; w = w->next) {
    if (!conflict(l, w))
      continue;
    if (w->held || w->merge_key != l->merge_key || w->start != l->start || w->end != l->end)
      break;
    w->held = true;
    out[n++] = w;
  }
  pthread_mutex_unlock(&t->mu);
  return n;
}
