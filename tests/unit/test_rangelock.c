/* test_rangelock.c: the direct path's block range lock (src/datapath/rangelock.c)
 * and engine_post: shared locks coexist, exclusive ones order against any
 * overlap, waiters are granted first come first served (a later lock never
 * overtakes an earlier conflicting waiter), grants run on the waiter's own
 * loop (never inside the call), also when the releasing lock lives on
 * another thread's engine; many waiters freed at once are all granted. */
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "datapath/rangelock.h"
#include "engine/engine.h"
#include "tap.h"

static int order[64], norder;

static void granted(struct rl_lock *l)
{
  order[norder++] = (int)l->start;   /* tests tag locks by a distinct start */
}

static struct rl_lock mk(struct engine *e, uint64_t start, uint64_t end, bool excl)
{
  return (struct rl_lock){ .start = start, .end = end, .excl = excl, .eng = e, .granted = granted };
}

static void spin(struct engine *e, int turns)
{
  for (int i = 0; i < turns; i++)
    engine_poll(e);
}

/* ---- a second thread with its own engine ---- */

struct remote {
  struct engine eng;
  struct rangelock *t;
  struct rl_lock l;
  atomic_int state;          /* 1: lock taken, 2: release it, 3: released */
};

static void *remote_main(void *arg)
{
  struct remote *r = arg;
  if (engine_init(&r->eng, 16, 1) < 0) {
    atomic_store(&r->state, -1);
    return NULL;
  }
  r->l = mk(&r->eng, 0, 8192, true);
  rangelock_lock(r->t, &r->l);
  atomic_store(&r->state, 1);
  while (atomic_load(&r->state) != 2)
    usleep(1000);
  rangelock_unlock(r->t, &r->l);
  engine_poll(&r->eng);
  atomic_store(&r->state, 3);
  engine_fini(&r->eng);
  return NULL;
}

static atomic_int cross_granted;

static void granted_cross(struct rl_lock *l)
{
  (void)l;
  atomic_fetch_add(&cross_granted, 1);
}

int main(void)
{
  struct engine e;
  struct rangelock t;

  ok(engine_init(&e, 64, 0) == 0, "engine");
  rangelock_init(&t);

  /* Shared locks coexist; an exclusive one waits for the overlapping ones only. */
  struct rl_lock s1 = mk(&e, 0, 8192, false), s2 = mk(&e, 4096, 12288, false);
  ok(rangelock_lock(&t, &s1) && rangelock_lock(&t, &s2), "overlapping shared locks are both granted");
  struct rl_lock x1 = mk(&e, 8192, 12288, true), x2 = mk(&e, 65536, 69632, true);
  ok(!rangelock_lock(&t, &x1), "an exclusive lock overlapping a shared one waits");
  ok(rangelock_lock(&t, &x2), "an exclusive lock elsewhere is granted at once");
  /* A shared lock after the waiting exclusive one, overlapping it: waits too
   * (first come, first served), though it is compatible with s1 and s2. */
  struct rl_lock s3 = mk(&e, 10000, 10001, false);
  ok(!rangelock_lock(&t, &s3), "a later shared lock does not overtake a waiting exclusive one");
  struct rl_lock s4 = mk(&e, 0, 4096, false);
  ok(rangelock_lock(&t, &s4), "a shared lock overlapping only shared ones is granted");
  ok(t.waits == 2, "two waits counted");

  rangelock_unlock(&t, &s1);
  spin(&e, 2);
  ok(norder == 0, "x1 still waits for s2");
  rangelock_unlock(&t, &s2);
  ok(norder == 0, "the grant does not run inside unlock");
  spin(&e, 2);
  ok(norder == 1 && order[0] == 8192 && x1.held, "x1 granted on the next loop turn");
  rangelock_unlock(&t, &x1);
  spin(&e, 2);
  ok(norder == 2 && order[1] == 10000, "then s3");
  rangelock_unlock(&t, &s3);
  rangelock_unlock(&t, &s4);
  rangelock_unlock(&t, &x2);
  ok(t.head == NULL && t.tail == NULL, "the table is empty");

  /* First come, first served among exclusive waiters on one block. */
  norder = 0;
  struct rl_lock q[5];
  for (int i = 0; i < 5; i++) {
    q[i] = mk(&e, (uint64_t)i, 4096, true);   /* all overlap [4, 4096) */
    bool g = rangelock_lock(&t, &q[i]);
    if (i == 0)
      ok(g, "the first exclusive lock is granted");
  }
  for (int i = 0; i < 4; i++) {
    rangelock_unlock(&t, &q[i]);
    spin(&e, 2);
  }
  ok(norder == 4 && order[0] == 1 && order[1] == 2 && order[2] == 3 && order[3] == 4,
     "waiters granted in arrival order");
  rangelock_unlock(&t, &q[4]);

  /* Many waiters freed by one release (more than one batch). */
  norder = 0;
  struct rl_lock big = mk(&e, 0, 1 << 20, true);
  ok(rangelock_lock(&t, &big), "a big exclusive lock");
  struct rl_lock *many = calloc(200, sizeof *many);
  int counted = 0;
  for (int i = 0; i < 200; i++) {
    many[i] = mk(&e, (uint64_t)i * 4096, (uint64_t)i * 4096 + 4096, false);
    many[i].granted = granted_cross;
    rangelock_lock(&t, &many[i]);
  }
  rangelock_unlock(&t, &big);
  spin(&e, 4);
  counted = atomic_load(&cross_granted);
  ok(counted == 200, "all 200 waiters granted after one release (%d)", counted);
  for (int i = 0; i < 200; i++)
    rangelock_unlock(&t, &many[i]);
  free(many);
  atomic_store(&cross_granted, 0);

  /* Merging: waiters right behind an exclusive holder, for the same range
   * and merge key, are handed to it in order; the walk stops at the first
   * other conflicting lock, so nothing is overtaken. */
  static const char key;
  struct rl_lock h = mk(&e, 0, 4096, true), m1 = mk(&e, 0, 4096, true), m2 = mk(&e, 0, 4096, true);
  struct rl_lock other = mk(&e, 8192, 12288, true), trim = mk(&e, 0, 4096, true), m3 = mk(&e, 0, 4096, true);
  h.merge_key = m1.merge_key = m2.merge_key = m3.merge_key = &key;
  rangelock_lock(&t, &h);
  rangelock_lock(&t, &m1);
  rangelock_lock(&t, &other);
  rangelock_lock(&t, &m2);
  rangelock_lock(&t, &trim);   /* same range, no merge key (a TRIM) */
  rangelock_lock(&t, &m3);
  struct rl_lock *got[8];
  size_t ng = rangelock_take_same(&t, &h, got, 8);
  ok(ng == 2 && got[0] == &m1 && got[1] == &m2 && m1.held && m2.held && !trim.held && !m3.held,
     "take_same hands over the same-block waiters in order, up to the first other conflict (%zu)", ng);
  norder = 0;
  rangelock_unlock(&t, &h);
  rangelock_unlock(&t, &m1);
  spin(&e, 2);
  ok(norder == 0 && !trim.held, "the waiter behind them waits for every merged lock");
  rangelock_unlock(&t, &m2);
  spin(&e, 2);
  ok(trim.held && !m3.held, "then it is granted; the later mergeable waiter still waits for it");
  rangelock_unlock(&t, &trim);
  spin(&e, 2);
  ok(m3.held, "and then that one");
  ok(rangelock_take_same(&t, &m3, got, 8) == 0, "nothing behind: nothing taken");
  rangelock_unlock(&t, &m3);
  rangelock_unlock(&t, &other);
  ok(t.head == NULL, "the table is empty again");

  /* A lock held by another thread's engine; our waiter is woken through
   * our loop (engine_post), not run on theirs. */
  struct remote *r = calloc(1, sizeof *r);
  pthread_t th;
  r->t = &t;
  pthread_create(&th, NULL, remote_main, r);
  while (atomic_load(&r->state) == 0)
    usleep(1000);
  ok(atomic_load(&r->state) == 1, "the other thread holds [0, 8192)");
  struct rl_lock mine = mk(&e, 4096, 4097, false);
  mine.granted = granted_cross;
  ok(!rangelock_lock(&t, &mine), "our overlapping lock waits");
  atomic_store(&r->state, 2);
  while (atomic_load(&r->state) != 3)
    usleep(1000);
  ok(atomic_load(&cross_granted) == 0, "not granted on the other thread");
  for (int i = 0; i < 200 && !atomic_load(&cross_granted); i++) {
    engine_poll(&e);
    usleep(1000);
  }
  ok(atomic_load(&cross_granted) == 1 && mine.held, "granted on our loop after the other thread released");
  rangelock_unlock(&t, &mine);
  pthread_join(th, NULL);
  free(r);
  ok(e.pending == 0, "posted work is not counted as pending I/O");

  rangelock_fini(&t);
  engine_fini(&e);
  return tap_done();
}
