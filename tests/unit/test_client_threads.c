/* test_client_threads.c: one libshunt handle shared by several threads (the
 * leader/follower rules of shunt.h): 8 threads run synchronous writes and
 * verified reads of their own regions at once over 2 connections, a 9th keeps
 * asynchronous reads in flight, against nbdkit when available (memory plugin),
 * else skipped with the reason.  Built with the other unit tests; run under
 * ASan by `make check`. */
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "shunt/shunt.h"
#include "shunt_test.h"
#include "tap.h"

#define THREADS 8
#define OPS 150
#define REGION (256 * 1024)

static struct shunt_handle *h;

struct result {
  int errors, mismatches, ops;
};

static void *worker(void *arg)
{
  long id = (long)arg;
  struct result *res = calloc(1, sizeof *res);
  unsigned char *w = malloc(16384), *r = malloc(16384);
  unsigned seed = (unsigned)id * 7919u + 1;
  for (int i = 0; i < OPS; i++) {
    size_t len = 512 * (1 + (size_t)rand_r(&seed) % 32);
    uint64_t off = (uint64_t)id * REGION + 512 * ((uint64_t)rand_r(&seed) % ((REGION - len) / 512));
    for (size_t k = 0; k < len; k++)
      w[k] = (unsigned char)(id * 37 + i + k);
    if (shunt_pwrite(h, w, len, off, 0) < 0) {
      res->errors++;
      continue;
    }
    memset(r, 0, len);
    if (shunt_pread(h, r, len, off, 0) < 0)
      res->errors++;
    else if (memcmp(w, r, len))
      res->mismatches++;
    res->ops += 2;
    if (i % 50 == 0 && shunt_flush(h) < 0)
      res->errors++;
  }
  free(w);
  free(r);
  return res;
}

static _Atomic int async_done, async_errors;
static void on_done(const struct shunt_result *r)
{
  async_done++;
  if (r->error)
    async_errors++;
}

static _Atomic int stop_async;
static void *async_reader(void *arg)
{
  (void)arg;
  static unsigned char buf[16][4096];
  int submitted = 0;
  while (!stop_async) {
    for (int i = 0; i < 16; i++) {
      struct iovec v = { buf[i], 4096 };
      if (shunt_aio_pread(h, &v, 1, (uint64_t)(THREADS * REGION + i * 4096), 0, on_done, NULL) > 0)
        submitted++;
    }
    while (async_done < submitted)
      if (shunt_poll(h, 100) < 0)
        break;
  }
  return (void *)(long)submitted;
}

int main(void)
{
  if (system("command -v nbdkit >/dev/null 2>&1") != 0) {
    printf("ok 1 - threads # SKIP nbdkit not installed\n");
    return tap_done();
  }
  char dir[] = "/tmp/shunt-threads.XXXXXX";
  if (!mkdtemp(dir))
    return 1;
  char sock[256], uri[300];
  snprintf(sock, sizeof sock, "%s/nbdkit.sock", dir);
  pid_t pid = fork();
  if (pid == 0) {
    execlp("nbdkit", "nbdkit", "-f", "-U", sock, "memory", "16M", (char *)NULL);
    _exit(127);
  }
  for (int i = 0; i < 200 && access(sock, F_OK) != 0; i++)
    usleep(25000);
  snprintf(uri, sizeof uri, "nbd+unix:///?socket=%s", sock);
  char err[512];
  struct test_opts o = { .connections = 2 };
  int r = test_connect(&h, uri, &o, err, sizeof err);
  ok(r == 0, "connect to nbdkit (%s)", r ? err : "ok");
  if (r == 0) {
    pthread_t th[THREADS], at;
    pthread_create(&at, NULL, async_reader, NULL);
    for (long i = 0; i < THREADS; i++)
      pthread_create(&th[i], NULL, worker, (void *)i);
    int errors = 0, mism = 0, ops = 0;
    for (int i = 0; i < THREADS; i++) {
      void *p;
      pthread_join(th[i], &p);
      struct result *res = p;
      errors += res->errors;
      mism += res->mismatches;
      ops += res->ops;
      free(res);
    }
    stop_async = 1;
    void *sub;
    pthread_join(at, &sub);
    ok(errors == 0 && mism == 0 && ops == THREADS * OPS * 2,
       "%d threads: %d sync ops, %d errors, %d mismatches", THREADS, ops, errors, mism);
    ok((long)sub > 0 && (long)async_done == (long)sub && async_errors == 0,
       "async reader alongside: %ld submitted, %d done, %d errors", (long)sub, async_done,
       async_errors);
    ok(shunt_in_flight(h) == 0 && shunt_payload_bytes_copied(h) == 0, "nothing left in flight");
    shunt_close(h);
  }
  kill(pid, SIGTERM);
  waitpid(pid, NULL, 0);
  unlink(sock);
  rmdir(dir);
  return tap_done();
}
