/* test_guardmem.c: vhost/guardmem.h.  A file mapping truncated under it: a
 * read of a vanished page in a guarded region reads zeroes and is counted;
 * a SIGBUS anywhere else goes to the handler installed before guardmem's
 * (chained): a test's own, or the sanitizer's, whose report must still
 * come out; faultguard installed after it passes guest memory's faults on. */
#include <fcntl.h>
#include <setjmp.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include "common/faultguard.h"
#include "tap.h"
#include "vhost/guardmem.h"

static sigjmp_buf outer_env;
static volatile sig_atomic_t previous_calls;

/* The handler installed before guardmem's (SA_SIGINFO, as a sanitizer's). */
static void previous_handler(int sig, siginfo_t *si, void *uc)
{
  (void)sig; (void)si; (void)uc;
  previous_calls++;
  siglongjmp(outer_env, 1);
}

/* The file's 4 pages mapped (shared, read-only).  NULL on failure. */
static char *map4(int fd, long pg)
{
  char *m = mmap(NULL, 4 * (size_t)pg, PROT_READ, MAP_SHARED, fd, 0);
  return m == MAP_FAILED ? NULL : m;
}

int main(void)
{
  char path[] = "/tmp/shunt-guardmem-XXXXXX";
  int fd = mkstemp(path), status;
  long pg = sysconf(_SC_PAGESIZE);
  struct sigaction sa;
  pid_t child;

  unlink(path);
  if (fd < 0 || ftruncate(fd, 4 * pg) < 0)
    return 1;
  char *m = map4(fd, pg), *other = map4(fd, pg);
  ok(m && other && ftruncate(fd, pg) == 0, "the file is mapped twice and shrinks to one page");

  /* A fault guardmem does not take, in a process with no handler of its
   * own: the default action kills it, or a sanitizer reports and exits. */
  int errpipe[2];
  char report[4096] = "";
  ssize_t n = 0;
  if (pipe(errpipe) < 0)
    return 1;
  if ((child = fork()) == 0) {
    dup2(errpipe[1], 2);
    if (guardmem_init() < 0 || guardmem_add(m, 4 * (size_t)pg) < 0)
      _exit(3);
    (void)*(volatile char *)(other + 2 * pg);
    _exit(0);
  }
  close(errpipe[1]);
  for (ssize_t r; (size_t)n < sizeof report - 1 && (r = read(errpipe[0], report + n, sizeof report - 1 - n)) > 0;)
    n += r;
  report[n] = '\0';
  close(errpipe[0]);
  ok(child > 0 && waitpid(child, &status, 0) == child, "a child faults outside guest memory");
#if defined(__SANITIZE_ADDRESS__)
  /* It exits non-zero, or aborts when ASAN_OPTIONS has abort_on_error=1
   * (as make check sets it). */
  ok(((WIFEXITED(status) && WEXITSTATUS(status) != 0 && WEXITSTATUS(status) != 3)
      || (WIFSIGNALED(status) && WTERMSIG(status) == SIGABRT))
     && strstr(report, "AddressSanitizer: BUS"),
     "... and the sanitizer's handler, installed before guardmem's, reported it (status %#x)", status);
#else
  ok(WIFSIGNALED(status) && WTERMSIG(status) == SIGBUS, "... and the default action killed it (status %#x)", status);
#endif

  memset(&sa, 0, sizeof sa);
  sa.sa_sigaction = previous_handler;
  sa.sa_flags = SA_SIGINFO | SA_NODEFER;
  sigaction(SIGBUS, &sa, NULL);
  ok(guardmem_init() == 0, "guardmem installs its handler");
  ok(guardmem_init() == 0, "a second init does nothing");
  ok(guardmem_add(m, 4 * (size_t)pg) == 0, "the first mapping is guest memory");

  ok(*(volatile char *)(m + 2 * pg + 7) == 0, "a vanished page of guest memory reads zeroes");
  ok(guardmem_repaired() == 1 && previous_calls == 0, "... counted once, and the previous handler saw nothing");
  if (sigsetjmp(outer_env, 1) == 0)
    (void)*(volatile char *)(other + 2 * pg);
  ok(previous_calls == 1, "a fault outside guest memory goes to the handler installed before");
  guardmem_remove(m);
  if (sigsetjmp(outer_env, 1) == 0)
    (void)*(volatile char *)(m + 3 * pg);
  ok(previous_calls == 2 && guardmem_repaired() == 1, "once removed, a fault in the region is not repaired");

  /* faultguard installed after guardmem: what it does not take reaches
   * guardmem (the mmap data path under `shunt vhost`). */
  ok(faultguard_add(other, 4 * (size_t)pg) == 0 && guardmem_add(m, 4 * (size_t)pg) == 0,
     "faultguard installed on top, the first mapping guest memory again");
  ok(*(volatile char *)(m + 3 * pg) == 0 && guardmem_repaired() == 2 && previous_calls == 2,
     "a vanished page of guest memory, outside any guard: faultguard passes it on, guardmem repairs it");
  faultguard_remove(other);
  munmap(m, 4 * (size_t)pg);
  munmap(other, 4 * (size_t)pg);
  close(fd);
  return tap_done();
}
