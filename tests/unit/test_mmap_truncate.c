/* test_mmap_truncate.c: the mmap data path's mapping (datapath_mmap_setup)
 * survives someone truncating the file under it: a send from the mapping
 * beyond the new end fails with EFAULT (the kernel's copy from user memory
 * fails; no SIGBUS in kernel mode), both with a plain sendmsg and through
 * the send queue's io_uring sends; an empty file is refused. */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "backend/backend.h"
#include "datapath/datapath.h"
#include "engine/engine.h"
#include "engine/sendq.h"
#include "datapath/dpexport.h"
#include "tap.h"
#include "tcp_pair.h"

#define SIZE (1u << 20)

static struct engine eng;
static volatile sig_atomic_t got_sigbus;
static int done_calls, done_err;

static void on_sigbus(int sig) { (void)sig; got_sigbus = 1; _exit(3); }
static void item_done(struct sendq_item *it, int err) { (void)it; done_calls++; done_err = err; }

int main(void)
{
  char path[] = "/tmp/shunt-mmap-XXXXXX", err[256];
  int fd = mkstemp(path);
  struct dp_export ex = { .direct_fd = -1 };
  struct backend *b = NULL;

  signal(SIGBUS, on_sigbus);   /* a SIGBUS ends the test with status 3: fails */
  ok(fd >= 0 && ftruncate(fd, SIZE) == 0, "a 1 MiB file");
  for (unsigned i = 0; i < SIZE; i += 4096)
    pwrite(fd, "x", 1, i);
  ok(backend_open("file", path, true, &b, err, sizeof err) == 0, "file backend opens it");
  ex.backend = b;
  ok(datapath_mmap_setup(&ex) == 0 && ex.map && ex.map_len == SIZE, "whole file mapped");
  ok(((const char *)ex.map)[SIZE - 4096] == 'x', "mapping reads the file");

  ok(ftruncate(fd, 8192) == 0, "someone truncates the file to 8 KiB");
  int sp[2];
  ok(socketpair(AF_UNIX, SOCK_STREAM, 0, sp) == 0, "socketpair");
  struct iovec iov = { (char *)ex.map + 65536, 65536 };
  struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1 };
  ssize_t n = sendmsg(sp[0], &mh, MSG_DONTWAIT | MSG_NOSIGNAL);
  ok(n == -1 && errno == EFAULT, "sendmsg from the mapping beyond the end: EFAULT (%zd, %s)", n,
     n < 0 ? strerror(errno) : "-");
  iov.iov_base = ex.map;
  iov.iov_len = 4096;
  ok(sendmsg(sp[0], &mh, MSG_DONTWAIT | MSG_NOSIGNAL) == 4096, "below the end still sends");
  close(sp[0]);
  close(sp[1]);

  /* Through the send queue (io_uring SENDMSG over TCP), as the server sends. */
  int sv[2] = { -1, -1 };
  struct sendq q;
  struct sendq_item it;
  ok(engine_init(&eng, 64, 0) == 0 && tcp_pair(sv) == 0, "engine, TCP loopback pair");
  sendq_init(&q, &eng, sv[0], true, NULL);
  sendq_item_reset(&it);
  it.iov[0] = (struct iovec){ (char *)ex.map + 65536, 256 << 10 };
  it.niov = 1;
  it.done = item_done;
  sendq_push(&q, &it);
  for (int turn = 0; turn < 2000 && !done_calls; turn++) {
    engine_poll(&eng);
    usleep(200);
  }
  ok(done_calls == 1 && done_err == -EFAULT, "queued send from beyond the end fails with EFAULT (%d)", done_err);
  ok(!got_sigbus, "the process survived (no SIGBUS)");
  close(sv[0]);
  close(sv[1]);
  engine_fini(&eng);
  datapath_mmap_close(&ex);
  ok(ex.map == NULL, "unmapped");
  backend_close(b);

  /* An empty file cannot be mapped: refused (the caller then uses splice). */
  ok(ftruncate(fd, 0) == 0 && backend_open("file", path, true, &b, err, sizeof err) == 0, "empty file opens");
  ex.backend = b;
  ok(datapath_mmap_setup(&ex) < 0 && !ex.map, "an empty file is not mapped");
  backend_close(b);
  close(fd);
  unlink(path);
  return tap_done();
}
