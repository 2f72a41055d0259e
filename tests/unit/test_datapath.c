/* test_datapath.c: the data paths' bookkeeping: the buffer arena (pieces,
 * exhaustion, waiters served in order), and the send queue's zero-copy rule
 * (an item is done only after its SEND_ZC notification) and held items
 * (nothing behind a held item goes out until it is released). */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "datapath/arena.h"
#include "engine/engine.h"
#include "engine/sendq.h"
#include "tap.h"
#include "tcp_pair.h"

static struct engine eng;

struct zitem {
  struct sendq_item sq;
  struct sendq *q;
  int done, err;
  unsigned refs_at_done;
  unsigned long long copied_sends_at_done;
};

static void zdone(struct sendq_item *it, int err)
{
  struct zitem *z = (struct zitem *)it;
  z->done++;
  z->err = err;
  z->refs_at_done = it->zc_refs;
  z->copied_sends_at_done = z->q->zc_copied_sends;
}

static int served[3];
static int nserved;
static void waiter_ready(struct arena_waiter *w, void *buf)
{
  served[nserved++] = (int)w->len;
  w->buf = buf;
}

static bool flag_set(void *arg) { return *(bool *)arg; }
static void run_turns(int n)
{
  while (n-- > 0) {
    engine_poll(&eng);
    usleep(200);
  }
}

static bool all_done(void *arg)
{
  struct zitem *z = arg;
  return z[0].done && z[1].done && z[2].done;
}

int main(void)
{
  struct arena a;
  ok(engine_init(&eng, 64, 0) == 0, "engine");

  /* Arena: 2 MiB, 4 KiB units. */
  ok(arena_init(&a, &eng, 2u << 20) == 0 && a.size == 2u << 20, "arena maps 2 MiB");
  ok(a.registered, "arena registered with io_uring (READ_FIXED/WRITE_FIXED)");
  void *p1 = arena_alloc(&a, 1u << 20), *p2 = arena_alloc(&a, 5000), *p3 = arena_alloc(&a, 1u << 20);
  ok(p1 && p2 && !p3, "1 MiB + 5000 bytes fit, another 1 MiB does not");
  void *p4 = arena_alloc(&a, (1u << 20) - 8192);
  ok(p4 && !arena_alloc(&a, 1), "the rest (1 MiB - 8 KiB) fits; then the arena is full");
  ok(((uintptr_t)p1 | (uintptr_t)p2) % ARENA_UNIT == 0 && arena_owns(&a, p2), "pieces are 4 KiB aligned, inside");
  ok((char *)p2 >= (char *)p1 + (1u << 20) || (char *)p2 + 8192 <= (char *)p1, "pieces do not overlap");
  struct arena_waiter w1 = { .len = 1u << 20, .ready = waiter_ready }, w2 = { .len = 4096, .ready = waiter_ready };
  arena_wait(&a, &w1);
  arena_wait(&a, &w2);
  ok(a.nwaiting == 2 && nserved == 0, "full: two waiters queued (the small one behind the big one)");
  arena_free(&a, p2, 5000);
  run_turns(1);
  ok(nserved == 0 && a.nwaiting == 2, "a free too small for the first waiter serves nobody (first come, first served)");
  arena_free(&a, p1, 1u << 20);
  run_turns(2);
  ok(nserved == 2 && served[0] == (1 << 20) && served[1] == 4096 && w1.buf && w2.buf && w1.buf != w2.buf,
     "freeing 1 MiB serves both waiters in order");
  arena_free(&a, w1.buf, 1u << 20);
  arena_free(&a, w2.buf, 4096);
  arena_free(&a, p4, (1u << 20) - 8192);
  ok(a.used_units == 0, "everything returned");
  arena_fini(&a);

  /* SEND_ZC: items are done only after their notification. */
  int sv[2] = { -1, -1 };
  ok(tcp_pair(sv) == 0, "TCP loopback pair");
  static uint8_t payload[3][256 << 10];
  static uint8_t got[sizeof payload];
  struct zitem z[3];
  struct sendq q;
  sendq_init(&q, &eng, sv[0], true, NULL);
  memset(z, 0, sizeof z);
  for (int i = 0; i < 3; i++) {
    memset(payload[i], 'a' + i, sizeof payload[i]);
    sendq_item_reset(&z[i].sq);
    z[i].q = &q;
    z[i].sq.iov[0] = (struct iovec){ payload[i], sizeof payload[i] };
    z[i].sq.niov = 1;
    z[i].sq.done = zdone;
    z[i].sq.zc = i != 1;              /* a plain item between two zero-copy ones */
  }
  z[2].sq.hold = true;               /* queued in place, not ready */
  for (int i = 0; i < 3; i++)
    sendq_push(&q, &z[i].sq);
  /* Read on the other side while the queue runs. */
  size_t have = 0;
  for (int turn = 0; turn < 2000 && !(z[0].done && z[1].done); turn++) {
    run_turns(1);
    ssize_t n = recv(sv[1], got + have, sizeof got - have, MSG_DONTWAIT);
    if (n > 0)
      have += (size_t)n;
  }
  ok(z[0].done == 1 && z[0].err == 0 && z[0].refs_at_done == 0, "zero-copy item done once, with no notification pending");
  ok(z[0].copied_sends_at_done >= 1, "its notification had arrived when it was done (loopback: reported as copied)");
  ok(z[1].done == 1 && z[2].done == 0, "plain item done; the held item is not");
  for (int turn = 0; turn < 200; turn++) {   /* drain what was sent, and wait a bit for more */
    run_turns(1);
    ssize_t n = recv(sv[1], got + have, sizeof got - have, MSG_DONTWAIT);
    if (n > 0)
      have += (size_t)n;
    else if (have >= 2 * sizeof payload[0])
      break;
  }
  ok(have == 2 * sizeof payload[0], "nothing of the held item was sent (%zu bytes)", have);
  sendq_release(&q, &z[2].sq);
  for (int turn = 0; turn < 2000 && !all_done(z); turn++) {
    run_turns(1);
    ssize_t n = recv(sv[1], got + have, sizeof got - have, MSG_DONTWAIT);
    if (n > 0)
      have += (size_t)n;
  }
  while (have < sizeof got) {
    ssize_t n = recv(sv[1], got + have, sizeof got - have, 0);
    if (n <= 0) break;
    have += (size_t)n;
  }
  ok(all_done(z) && z[2].refs_at_done == 0, "released item sent, done after its notification");
  ok(have == sizeof got && memcmp(got, payload, sizeof got) == 0, "bytes arrive complete and in order");
  ok(q.zc_sends >= 2 && q.zc_outstanding == 0 && sendq_idle(&q), "queue idle, no notification outstanding");
  bool t = true;
  engine_run(&eng, flag_set, &t);
  close(sv[0]);
  close(sv[1]);
  engine_fini(&eng);
  return tap_done();
}
