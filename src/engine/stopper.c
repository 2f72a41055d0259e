/* stopper.c: a worker's wake eventfd and the signalfd read (stopper.h). */
#include <errno.h>
#include <stddef.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "common/log.h"
#include "engine/stopper.h"

static void arm_wake(struct engine_stopper *s)
{
  io_uring_prep_read(engine_sqe(s->eng, &s->wake_op), s->wake_fd, &s->wake_val, sizeof s->wake_val, 0);
  s->wake_armed = true;
}

static void wake_cb(struct engine_op *op, int res, uint32_t flags)
{
  struct engine_stopper *s = (struct engine_stopper *)((char *)op - offsetof(struct engine_stopper, wake_op));
  (void)res; (void)flags;
  s->wake_armed = false;
  if (atomic_load(s->stopping))
    s->stop(s->arg);
  else if (!s->quiet)
    arm_wake(s);
}

static void arm_signal(struct engine_stopper *s)
{
  io_uring_prep_read(engine_sqe(s->eng, &s->sig_op), s->sig_fd, &s->siginfo, sizeof s->siginfo, 0);
  s->sig_armed = true;
}

static void signal_cb(struct engine_op *op, int res, uint32_t flags)
{
  struct engine_stopper *s = (struct engine_stopper *)((char *)op - offsetof(struct engine_stopper, sig_op));
  (void)flags;
  s->sig_armed = false;
  if (res == -ECANCELED)
    return;
  if (res == (int)sizeof s->siginfo) {
    if (atomic_load(s->stopping)) {
      log_msg(LOG_WARN, NULL, NULL, "second signal %u: exiting at once", s->siginfo.ssi_signo);
      _exit(1);
    }
    log_msg(LOG_INFO, NULL, NULL, "signal %u: finishing in-flight requests, then exiting", s->siginfo.ssi_signo);
    s->request_stop(s->arg);
  }
  arm_signal(s);   /* a second signal forces exit */
}

int engine_stopper_init(struct engine_stopper *s)
{
  s->eng = NULL;
  s->quiet = s->wake_armed = s->sig_armed = false;
  s->sig_fd = -1;
  s->wake_op = (struct engine_op){ .cb = wake_cb };
  s->sig_op = (struct engine_op){ .cb = signal_cb };
  s->wake_fd = eventfd(0, EFD_CLOEXEC);
  return s->wake_fd < 0 ? -errno : 0;
}

void engine_stopper_fini(struct engine_stopper *s)
{
  if (s->wake_fd >= 0)
    close(s->wake_fd);
  s->wake_fd = -1;
}

void engine_stopper_start(struct engine_stopper *s, struct engine *e, int sig_fd)
{
  s->eng = e;
  s->sig_fd = sig_fd;
  arm_wake(s);
  if (sig_fd >= 0)
    arm_signal(s);
}

void engine_stopper_wake(struct engine_stopper *s)
{
  uint64_t one = 1;
  if (write(s->wake_fd, &one, sizeof one) < 0) {
    /* the counter cannot overflow with our few writes */
  }
}

void engine_stopper_quiet(struct engine_stopper *s)
{
  s->quiet = true;
  if (s->wake_armed)
    engine_cancel(s->eng, &s->wake_op);
}
