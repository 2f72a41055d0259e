/* rangelock.c: first-come ordering of writes to the same blocks, shared by
 * every worker (see rangelock.h).  The locks of a table form one list in
 * order of arrival; a lock is held when nothing before it conflicts.  The
 * exclusive ones are also on a second list (same order): a shared lock can
 * only conflict with those, so aligned writes, the common case, look at the
 * few edges and zeroings in flight instead of at every write. */
#include <stddef.h>

#include "datapath/rangelock.h"

void rangelock_init(struct rangelock *t)
{
  pthread_mutex_init(&t->mu, NULL);
  t->head = t->tail = NULL;
  t->xhead = t->xtail = NULL;
  t->seq = 0;
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
static bool free_before(const struct rangelock *t, const struct rl_lock *l)
{
  if (l->excl) {
    for (const struct rl_lock *p = l->prev; p; p = p->prev)
      if (conflict(p, l))
        return false;
    return true;
  }
  for (const struct rl_lock *p = t->xtail; p; p = p->xprev)
    if (p->seq < l->seq && conflict(p, l))
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
  l->seq = ++t->seq;
  l->next = NULL;
  l->prev = t->tail;
  if (t->tail)
    t->tail->next = l;
  else
    t->head = l;
  t->tail = l;
  l->xnext = l->xprev = NULL;
  if (l->excl) {
    l->xprev = t->xtail;
    if (t->xtail)
      t->xtail->xnext = l;
    else
      t->xhead = l;
    t->xtail = l;
  }
  l->held = free_before(t, l);
  if (!l->held)
    t->waits++;
  pthread_mutex_unlock(&t->mu);
  return l->held;
}

static void unlink_lock(struct rangelock *t, struct rl_lock *l)
{
  if (l->prev)
    l->prev->next = l->next;
  else
    t->head = l->next;
  if (l->next)
    l->next->prev = l->prev;
  else
    t->tail = l->prev;
  if (!l->excl)
    return;
  if (l->xprev)
    l->xprev->xnext = l->xnext;
  else
    t->xhead = l->xnext;
  if (l->xnext)
    l->xnext->xprev = l->xprev;
  else
    t->xtail = l->xprev;
}

void rangelock_unlock(struct rangelock *t, struct rl_lock *l)
{
  struct rl_lock *grant[64];
  size_t n = 0;

  pthread_mutex_lock(&t->mu);
  /* The waiters l conflicted with came after it: any lock after an
   * exclusive l; only exclusive ones after a shared l. */
  struct rl_lock *w = l->excl ? l->next : t->xhead;
  unlink_lock(t, l);
  /* Each is granted when nothing before it conflicts any more (held or
   * waiting, so the order of this walk does not matter). */
  for (; w; w = l->excl ? w->next : w->xnext) {
    if (w->seq < l->seq || w->held || !conflict(l, w) || !free_before(t, w))
      continue;
    w->held = true;
    w->op.cb = grant_cb;
    if (n < sizeof grant / sizeof grant[0])
      grant[n++] = w;
    else   /* very many at once: engine_post only queues, never runs it here */
      engine_post(w->eng, &w->op, 0);
  }
  pthread_mutex_unlock(&t->mu);
  /* Wake them on their own loops (outside the mutex: each is held now and
   * only its owner touches it until granted() runs). */
  for (size_t i = 0; i < n; i++) {
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
