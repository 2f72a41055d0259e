/* test_faultguard.c: common/faultguard.h.  A mapping of a file that is
 * truncated under it: a read of a vanished page inside a guard returns to
 * the guard (with the faulting address), nested guards return to the
 * innermost, and a SIGBUS outside a guard, or in a mapping that is not
 * registered, goes to the handler installed before (chained). */
#include <fcntl.h>
#include <setjmp.h>
#include <signal.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "common/faultguard.h"
#include "tap.h"

static sigjmp_buf outer_env;
static volatile sig_atomic_t previous_calls;

/* The handler installed before faultguard's: it must still see the SIGBUS
 * that no guard takes. */
static void previous_handler(int sig)
{
  (void)sig;
  previous_calls++;
  siglongjmp(outer_env, 1);
}

/* Read one byte at p inside a guard: 0 read, 1 faulted (*addr: where). */
static int guarded_read(const volatile char *p, void **addr)
{
  struct faultguard g;
  volatile char c;

  if (sigsetjmp(g.env, 0)) {
    faultguard_leave(&g);
    *addr = g.addr;
    return 1;
  }
  faultguard_enter(&g);
  c = *p;
  (void)c;
  faultguard_leave(&g);
  return 0;
}

int main(void)
{
  char path[] = "/tmp/shunt-faultguard-XXXXXX";
  int fd = mkstemp(path);
  long pg = sysconf(_SC_PAGESIZE);
  size_t len = 4 * (size_t)pg;
  struct sigaction sa;
  void *addr = NULL;

  unlink(path);
  if (fd < 0 || ftruncate(fd, (off_t)len) < 0)
    return 1;
  memset(&sa, 0, sizeof sa);
  sa.sa_handler = previous_handler;
  sa.sa_flags = SA_NODEFER;
  sigaction(SIGBUS, &sa, NULL);

  char *m = mmap(NULL, len, PROT_READ, MAP_SHARED, fd, 0);
  char *other = mmap(NULL, len, PROT_READ, MAP_SHARED, fd, 0);
  ok(m != MAP_FAILED && other != MAP_FAILED, "the file is mapped twice");
  ok(faultguard_add(m, len) == 0, "the first mapping is registered");
  ok(faultguard_covers(m + pg, 2 * (size_t)pg), "a range inside it is covered");
  ok(!faultguard_covers(m + pg, len), "a range running past its end is not");
  ok(!faultguard_covers(other, 1), "the other mapping is not covered");

  ok(guarded_read(m + 3 * pg, &addr) == 0, "a guarded read of a page still in the file reads");
  ok(ftruncate(fd, pg) == 0, "the file shrinks to one page under the mappings");
  ok(guarded_read(m, &addr) == 0, "a guarded read of the page that is left reads");
  ok(guarded_read(m + 2 * pg + 5, &addr) == 1, "a guarded read of a vanished page returns to its guard");
  ok(addr == m + 2 * pg + 5, "... with the faulting address (%p, want %p)", addr, (void *)(m + 2 * pg + 5));
  ok(previous_calls == 0, "... and the previous handler saw nothing");

  /* Nested: the inner guard takes the fault, then the outer one. */
  {
    struct faultguard outer;
    volatile int stage = 0;
    if (sigsetjmp(outer.env, 0) == 0) {
      faultguard_enter(&outer);
      stage = 1;
      ok(guarded_read(m + 3 * pg, &addr) == 1, "nested: the inner guard takes a fault");
      stage = 2;
      (void)*(volatile char *)(m + 2 * pg);
      stage = 3;
      faultguard_leave(&outer);
    } else {
      faultguard_leave(&outer);
    }
    ok(stage == 2, "nested: the next fault returns to the outer guard (stage %d)", stage);
  }

  /* Outside any guard, and in a mapping that is not registered: chained. */
  if (sigsetjmp(outer_env, 1) == 0)
    (void)*(volatile char *)(m + 2 * pg);
  ok(previous_calls == 1, "a fault outside any guard goes to the previous handler");
  {
    struct faultguard g;
    if (sigsetjmp(outer_env, 1) == 0 && sigsetjmp(g.env, 0) == 0) {
      faultguard_enter(&g);
      (void)*(volatile char *)(other + 2 * pg);
    }
    faultguard_leave(&g);
  }
  ok(previous_calls == 2, "a fault in an unregistered mapping, even inside a guard, goes to the previous handler");

  faultguard_remove(m);
  ok(!faultguard_covers(m, 1), "once removed, the mapping is not covered");
  munmap(m, len);
  munmap(other, len);
  close(fd);
  return tap_done();
}
