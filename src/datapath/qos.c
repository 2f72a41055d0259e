/* qos.c: one scheduler per device, shared by the exports on it across
 * worker threads (qos.h).  The device's lock is held only around the
 * scheduler's own calls; requests it lets in run outside it, on their own
 * worker: directly when that is the caller's and nothing else is running
 * there (a submission), else deferred or posted to their loop.  A flow over
 * its limit is woken by a timer on the loop that found it waiting. */
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "backend/backend.h"
#include "common/json.h"
#include "common/log.h"
#include "common/macros.h"
#include "datapath/datapath.h"
#include "datapath/dpexport.h"
#include "datapath/qos.h"
#include "datapath/request.h"
#include "engine/engine.h"
#include "proto/nbd-protocol.h"

/* A waiting flow is looked at again at least this often, whatever its
 * limit says (the timer then re-arms). */
#define TIMER_MAX_NS (50 * 1000 * 1000ull)

struct dp_qos_config dp_qos;

struct dp_device {
  uint64_t dev;                   /* st_dev; 0 with own: a backend without a file */
  bool own;
  unsigned refs;                  /* exports */
  pthread_mutex_t lock;
  struct sched s;
  struct dp_flow *flows;
  bool timer_armed;
  /* Timers armed and callbacks of them still running: while any, the
   * device is not freed (a reload may close its last export while the
   * workers run; sweep() frees it later). */
  unsigned timer_users;
  struct engine *timer_eng;       /* the loop the timer is armed on */
  struct engine_op timer_op;
  struct __kernel_timespec timer_ts;
  struct dp_device *next;
};

static pthread_mutex_t devices_mu = PTHREAD_MUTEX_INITIALIZER;
static struct dp_device *devices;

/* Free the devices no export uses and no timer callback will touch.
 * Under devices_mu. */
static void sweep(void)
{
  for (struct dp_device **p = &devices, *d; (d = *p);) {
    unsigned users = 0;
    if (!d->refs) {
      pthread_mutex_lock(&d->lock);
      users = d->timer_users;
      pthread_mutex_unlock(&d->lock);
    }
    if (d->refs || users) {
      p = &d->next;
      continue;
    }
    *p = d->next;
    pthread_mutex_destroy(&d->lock);
    free(d);
  }
}

int dp_qos_join(struct dp_export *dx)
{
  struct stat sb;
  bool own = !dx->backend || dx->backend->fd < 0 || fstat(dx->backend->fd, &sb) < 0;
  uint64_t dev = own ? 0 : S_ISBLK(sb.st_mode) ? (uint64_t)sb.st_rdev : (uint64_t)sb.st_dev;
  struct dp_device *d = NULL;

  dx->qdev = NULL;
  if (dp_qos.off)
    return 0;
  pthread_mutex_lock(&devices_mu);
  if (!own)
    for (d = devices; d && (d->own || d->dev != dev); d = d->next)
      ;
  if (!d && (d = calloc(1, sizeof *d))) {
    d->dev = dev;
    d->own = own;
    pthread_mutex_init(&d->lock, NULL);
    sched_init(&d->s, &dp_qos.dev);
    d->next = devices;
    devices = d;
  }
  if (d)
    d->refs++;
  pthread_mutex_unlock(&devices_mu);
  dx->qdev = d;
  return d ? 0 : -ENOMEM;
}

void dp_qos_leave(struct dp_export *dx)
{
  struct dp_device *d = dx->qdev;

  if (!d)
    return;
  dx->qdev = NULL;
  pthread_mutex_lock(&devices_mu);
  d->refs--;
  sweep();
  pthread_mutex_unlock(&devices_mu);
}

void dp_qos_set(struct dp_export *dx, const struct sched_params *p)
{
  struct dp_device *d = dx->qdev;

  if (!d) {
    dx->qos = *p;
    return;
  }
  pthread_mutex_lock(&d->lock);   /* dp_flow_get reads dx->qos under it */
  dx->qos = *p;
  for (struct dp_flow *f = d->flows; f; f = f->next)
    if (f->export == dx)
      sched_flow_set(&f->sf, p);
  pthread_mutex_unlock(&d->lock);
}

struct dp_flow *dp_flow_get(struct dp_export *dx, const char *key)
{
  struct dp_device *d = dx->qdev;
  struct dp_flow *f = NULL;

  if (!d)
    return NULL;
  pthread_mutex_lock(&d->lock);
  if (key)
    for (f = d->flows; f && (f->export != dx || !f->key || strcmp(f->key, key)); f = f->next)
      ;
  if (!f && (f = calloc(1, sizeof *f))) {
    f->dev = d;
    f->export = dx;
    if (key && !(f->key = strdup(key))) {
      free(f);
      f = NULL;
    } else {
      sched_flow_add(&d->s, &f->sf, &dx->qos);
      f->next = d->flows;
      d->flows = f;
    }
  }
  if (f)
    f->refs++;
  pthread_mutex_unlock(&d->lock);
  return f;
}

void dp_flow_put(struct dp_flow *f)
{
  struct dp_device *d;

  if (!f)
    return;
  d = f->dev;
  pthread_mutex_lock(&d->lock);
  if (--f->refs == 0) {
    sched_flow_remove(&d->s, &f->sf);
    for (struct dp_flow **p = &d->flows; *p; p = &(*p)->next)
      if (*p == f) {
        *p = f->next;
        break;
      }
    free(f->key);
    free(f);
  }
  pthread_mutex_unlock(&d->lock);
}

/* A queued request of sink arg that may be dropped: not a WRITE on a path
 * that writes the payload as it arrives (payload_progress), whose early
 * writes may still be running: that one enters the device as usual. */
static bool cancellable(const struct sched_req *sr, void *arg)
{
  const struct request *r = container_of(sr, struct request, qos_req);
  return r->sink == arg && !(r->hdr.type == NBD_CMD_WRITE && r->dp->payload_progress);
}

unsigned dp_flow_cancel(struct dp_flow *f, const struct request_sink *sink)
{
  struct sched_req *sr, *next;
  unsigned n = 0;

  if (!f)
    return 0;
  pthread_mutex_lock(&f->dev->lock);
  sr = f->sf.queued ? sched_flow_cancel(&f->dev->s, &f->sf, cancellable, (void *)sink, dp_now()) : NULL;
  pthread_mutex_unlock(&f->dev->lock);
  for (; sr; sr = next, n++) {
    struct request *r = container_of(sr, struct request, qos_req);
    next = sr->next;
    r->qos_state = DP_QOS_DONE;   /* never counted against the device */
    if (r->qos_abort)
      request_finish(r);
    else
      request_reply_status(r, NBD_ESHUTDOWN, "the connection is closing");
  }
  return n;
}

/* The commands that use the device. */
static bool scheduled(const struct request *r)
{
  switch (r->hdr.type) {
  case NBD_CMD_READ: case NBD_CMD_WRITE: case NBD_CMD_FLUSH: case NBD_CMD_TRIM:
  case NBD_CMD_WRITE_ZEROES: case NBD_CMD_CACHE:
    return r->flow != NULL;
  default:
    return false;
  }
}

/* r was let in: run it (on its own loop). */
static void start(struct request *r)
{
  r->qos_state = DP_QOS_ADMITTED;
  if (r->qos_abort) {        /* its payload never came: nothing to do but finish */
    request_finish(r);
    return;
  }
  dp_execute(r);
}

static void start_cb(struct engine_op *op, int res, uint32_t flags)
{
  (void)res;
  (void)flags;
  start(container_of(op, struct request, qos_op));
}

static void arm_timer(struct dp_device *d, struct engine *e, uint64_t wake, uint64_t now);

/* Let in what the device takes now, from the loop `here`; d->lock is held
 * on entry (the caller has just submitted or completed a request under
 * it, at time now: one hold and one clock read for both) and released on
 * return.  When the one request let in is `self` (the one just
 * submitted), it runs at once; everything else runs on a later turn of
 * its own loop, never inside the call that let it in. */
static void pump(struct dp_device *d, struct engine *here, struct request *self, uint64_t now)
{
  enum { GO_MAX = 32 };
  struct request *go[GO_MAX];
  unsigned n;
  bool more;

  for (;;) {
    uint64_t wake = 0;
    struct sched_req *sr;
    n = 0;
    while (n < GO_MAX && (sr = sched_dispatch(&d->s, now, &wake, here ? (unsigned)here->id : SCHED_ANY_HOME))) {
      struct request *r = container_of(sr, struct request, qos_req);
      r->qos_state = DP_QOS_STARTING;
      go[n++] = r;
    }
    more = n == GO_MAX;
    if (!n && wake && !d->timer_armed)
      arm_timer(d, here, wake, now);
    pthread_mutex_unlock(&d->lock);
    for (unsigned i = 0; i < n; i++) {
      struct request *r = go[i];
      r->qos_op.cb = start_cb;
      if (r->eng != here)
        engine_post(r->eng, &r->qos_op, 0);
      else if (r == self && n == 1 && !more)
        start(r);
      else
        engine_defer(here, &r->qos_op, 0);
    }
    if (!more)
      return;
    pthread_mutex_lock(&d->lock);
    now = dp_now();
  }
}

static void timer_cb(struct engine_op *op, int res, uint32_t flags)
{
  struct dp_device *d = container_of(op, struct dp_device, timer_op);
  (void)res;
  (void)flags;
  pthread_mutex_lock(&d->lock);
  d->timer_armed = false;
  pump(d, d->timer_eng, NULL, dp_now());   /* the loop running this callback; unlocks */
  pthread_mutex_lock(&d->lock);
  d->timer_users--;              /* the last touch: sweep() may free d now */
  pthread_mutex_unlock(&d->lock);
}

/* Under d->lock. */
static void arm_timer(struct dp_device *d, struct engine *e, uint64_t wake, uint64_t now)
{
  uint64_t ns = MIN(wake > now ? wake - now : 1, TIMER_MAX_NS);
  struct io_uring_sqe *sqe;

  if (!e)
    return;
  d->timer_armed = true;
  d->timer_users++;
  d->timer_eng = e;
  d->timer_ts.tv_sec = (long long)(ns / 1000000000ull);
  d->timer_ts.tv_nsec = (long long)(ns % 1000000000ull);
  d->timer_op.cb = timer_cb;
  sqe = engine_sqe(e, &d->timer_op);
  io_uring_prep_timeout(sqe, &d->timer_ts, 0, 0);
}

void dp_submit(struct request *r)
{
  struct dp_device *d;

  if (!scheduled(r)) {
    dp_execute(r);
    return;
  }
  d = r->flow->dev;
  pthread_mutex_lock(&d->lock);
  uint64_t now = dp_now();
  r->qos_state = DP_QOS_QUEUED;
  r->qos_req.home = (unsigned)r->eng->id;
  sched_submit(&d->s, &r->flow->sf, &r->qos_req, r->hdr.type == NBD_CMD_READ || r->hdr.type == NBD_CMD_WRITE
               ? r->hdr.length : 0, r->hdr.type != NBD_CMD_READ && r->hdr.type != NBD_CMD_CACHE, now);
  pump(d, r->eng, r, now);   /* unlocks */
}

void dp_submit_progress(struct request *r, uint64_t got)
{
  r->sink->dp->payload_progress(r, got);
}

bool dp_submit_abort(struct request *r)
{
  if (r->qos_state == DP_QOS_QUEUED || r->qos_state == DP_QOS_STARTING) {
    r->qos_abort = true;   /* start() finishes it once let in */
    return true;
  }
  const struct datapath *dp = r->sink->dp;
  return dp->payload_abort && dp->payload_abort(r);
}

void dp_qos_waiting(struct request *r)
{
  dp_qos_done(r);
}

void dp_qos_done(struct request *r)
{
  struct dp_device *d;

  if (r->qos_state != DP_QOS_ADMITTED)
    return;
  r->qos_state = DP_QOS_DONE;
  d = r->flow->dev;
  pthread_mutex_lock(&d->lock);
  uint64_t now = dp_now();
  sched_complete(&d->s, &r->qos_req, now);
  if (!d->s.queued) {   /* nothing waits: nothing to let in */
    pthread_mutex_unlock(&d->lock);
    return;
  }
  pump(d, r->eng, NULL, now);   /* unlocks */
}

void dp_qos_json(struct json *j, const struct dp_export *dx)
{
  struct dp_device *d = dx->qdev;

  if (d) {   /* the device's scheduler, shared with the other exports on it */
    pthread_mutex_lock(&d->lock);
    json_object(j, "scheduler", JSON_LINE);
    json_uint(j, "depth", d->s.depth);
    json_uint(j, "ceiling", d->s.ceiling);
    json_uint(j, "busy_flows", d->s.nbusy);
    json_bool(j, "even", d->s.even);
    json_uint(j, "inflight", d->s.inflight);
    json_uint(j, "queued", d->s.queued);
    json_end(j);
    pthread_mutex_unlock(&d->lock);
  }
  json_array(j, "flows", JSON_BLOCK);
  if (d) {
    pthread_mutex_lock(&d->lock);
    for (struct dp_flow *fl = d->flows; fl; fl = fl->next) {
      if (fl->export != dx)
        continue;
      const struct sched_flow_stats *st = &fl->sf.st;
      json_object(j, NULL, JSON_LINE);
      json_string(j, "key", fl->key);
      json_uint(j, "weight", fl->sf.p.weight);
      json_uint(j, "queued", fl->sf.queued);
      json_uint(j, "inflight", fl->sf.inflight);
      json_uint(j, "requests", st->requests);
      json_uint(j, "bytes", st->bytes);
      json_uint(j, "reserved", st->reserved);
      json_double(j, "throttled_s", (double)st->throttled_ns / 1e9, 3);
      json_double(j, "delay_p50_us", (double)sched_flow_delay_quantile(&fl->sf, 0.5) / 1e3, 1);
      json_double(j, "delay_p99_us", (double)sched_flow_delay_quantile(&fl->sf, 0.99) / 1e3, 1);
      json_double(j, "delay_p999_us", (double)sched_flow_delay_quantile(&fl->sf, 0.999) / 1e3, 1);
      json_end(j);
    }
    pthread_mutex_unlock(&d->lock);
  }
  json_end(j);
}
