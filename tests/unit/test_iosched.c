/* test_iosched.c: the per-device scheduler (src/datapath/iosched.c) on a
 * virtual clock, against a simulated device: K channels, each serving one
 * request at a time in fixed + per-byte time, behind a FIFO queue of the
 * device's own (and, for a throttled device, a budget of starts per time
 * slice).  Flows are closed loops (each keeps its queue depth of
 * requests outstanding).  Asserts shares by weight, work conservation,
 * reservations, limits, many flows, flows coming and going, a small
 * victim's latency beside a greedy neighbour, the adaptive depth, its two
 * directions and its ceiling while flows contend, and flows that stand
 * evenly going without a bound. */
#include <stdlib.h>
#include <string.h>

#include "datapath/iosched.h"
#include "tap.h"

#define diag(...) (printf("# "), printf(__VA_ARGS__), printf("\n"))

static double fabs_(double x) { return x < 0 ? -x : x; }
#define fabs fabs_

#define MS 1000000ull
#define S  1000000000ull
#define MAXF 80
#define MAXQD 64

struct sreq {
  struct sched_req sr;            /* first: the scheduler hands it back */
  struct sflow *fl;
  uint64_t arrive, done_at;
  bool busy;
};

struct sflow {
  struct sched_flow f;
  unsigned qd;
  uint64_t bytes;
  bool write;
  uint64_t start, stop;           /* active in [start, stop) */
  struct sreq reqs[MAXQD];
  uint64_t done, done_bytes;
  uint64_t *lat; size_t nlat, caplat;   /* completion latencies, when recorded */
  bool added;
};

struct dev {
  unsigned k;                     /* channels */
  uint64_t t_fixed, t_byte_ps;    /* per request ns, per byte ps */
  struct sreq *chan[64];
  uint64_t chan_end[64];
  uint64_t busy_ns;               /* service time of the requests completed */
  struct sreq *fifo[4096];        /* the device's own queue */
  unsigned fhead, ftail;
  bool fifo_only;                 /* no scheduler: everything straight into the device queue */
  uint64_t slice_ns, slice_budget; /* a throttled device: at most slice_budget starts per slice */
  uint64_t slice_idx, slice_used;
  uint64_t slice_mean, slice_spread;   /* with a spread: each slice's budget is uniform in mean +- spread/2 */
  uint64_t jitter_ns;             /* each service takes up to this much more */
  uint64_t seed;                  /* of the pseudo-random sequence (deterministic) */
};

static struct sched sch;
static struct sflow fl[MAXF];
static unsigned nfl;
static struct dev dv;
static uint64_t now;

static uint64_t next_rand(void)
{
  dv.seed = dv.seed * 6364136223846793005ull + 1442695040888963407ull;
  return dv.seed >> 33;
}

static uint64_t jitter(void) { return dv.jitter_ns ? next_rand() % dv.jitter_ns : 0; }

static uint64_t service(const struct sreq *r) { return dv.t_fixed + r->sr.bytes * dv.t_byte_ps / 1000 + jitter(); }

static void dev_push(struct sreq *r) { dv.fifo[dv.ftail++ % 4096] = r; }

static void dev_start(void)
{
  if (dv.slice_ns && now / dv.slice_ns != dv.slice_idx) {
    dv.slice_idx = now / dv.slice_ns;
    dv.slice_used = 0;
    if (dv.slice_spread)     /* the budget varies around its mean, slice to slice */
      dv.slice_budget = dv.slice_mean - dv.slice_spread / 2 + next_rand() % (dv.slice_spread + 1);
  }
  for (unsigned c = 0; c < dv.k && dv.fhead != dv.ftail; c++)
    if (!dv.chan[c]) {
      if (dv.slice_ns && dv.slice_used++ >= dv.slice_budget)
        break;
      dv.chan[c] = dv.fifo[dv.fhead++ % 4096];
      dv.chan_end[c] = now + service(dv.chan[c]);
      dv.busy_ns += dv.chan_end[c] - now;
    }
}

static void submit(struct sflow *f, struct sreq *r)
{
  r->busy = true;
  r->fl = f;
  r->arrive = now;
  if (dv.fifo_only) {
    r->sr.bytes = f->bytes;
    r->sr.dispatch_ns = now;
    dev_push(r);
  } else {
    sched_submit(&sch, &f->f, &r->sr, f->bytes, f->write, now);
  }
}

static void record(struct sflow *f, uint64_t lat)
{
  if (!f->lat)
    return;
  if (f->nlat == f->caplat) {
    f->caplat = f->caplat ? 2 * f->caplat : 1024;
    f->lat = realloc(f->lat, f->caplat * sizeof *f->lat);
  }
  f->lat[f->nlat++] = lat;
}

static struct sflow *flow(uint32_t weight, unsigned qd, uint64_t bytes)
{
  struct sflow *f = &fl[nfl++];
  memset(f, 0, sizeof *f);
  f->qd = qd;
  f->bytes = bytes;
  f->f.p.weight = weight;
  f->stop = UINT64_MAX;
  return f;
}

static void reset(unsigned k, uint64_t t_fixed, uint64_t t_byte_ps, const struct sched_config *cfg)
{
  for (unsigned i = 0; i < nfl; i++)
    free(fl[i].lat);
  memset(fl, 0, sizeof fl);
  nfl = 0;
  memset(&dv, 0, sizeof dv);
  dv.k = k;
  dv.t_fixed = t_fixed;
  dv.t_byte_ps = t_byte_ps;
  now = 0;
  struct sched_config c = { 0 };
  sched_init(&sch, cfg ? cfg : &c);
}

/* Run the simulation until `until`; on_tick (if any) runs every `tick` ns. */
static void run(uint64_t until, uint64_t tick, void (*on_tick)(uint64_t t))
{
  uint64_t next_tick = tick ? now + tick : UINT64_MAX;
  while (now < until) {
    /* flows join, leave, refill */
    for (unsigned i = 0; i < nfl; i++) {
      struct sflow *f = &fl[i];
      if (now >= f->start && now < f->stop) {
        if (!f->added && !dv.fifo_only) {
          struct sched_params p = f->f.p;
          sched_flow_add(&sch, &f->f, &p);
        }
        f->added = true;
        for (unsigned q = 0; q < f->qd; q++)
          if (!f->reqs[q].busy)
            submit(f, &f->reqs[q]);
      } else if (f->added && now >= f->stop && !dv.fifo_only && !f->f.queued) {
        bool idle = true;
        for (unsigned q = 0; q < f->qd; q++)
          idle = idle && !f->reqs[q].busy;
        if (idle) {
          sched_flow_remove(&sch, &f->f);
          f->added = false;
          f->start = UINT64_MAX;
        }
      }
    }
    uint64_t wake = 0;
    if (!dv.fifo_only) {
      struct sched_req *sr;
      while ((sr = sched_dispatch(&sch, now, &wake, SCHED_ANY_HOME)))
        dev_push((struct sreq *)sr);
    }
    dev_start();
    /* next event */
    uint64_t next = until;
    for (unsigned c = 0; c < dv.k; c++)
      if (dv.chan[c] && dv.chan_end[c] < next)
        next = dv.chan_end[c];
    if (wake && wake > now && wake < next)
      next = wake;
    if (dv.slice_ns && dv.fhead != dv.ftail && (now / dv.slice_ns + 1) * dv.slice_ns < next)
      next = (now / dv.slice_ns + 1) * dv.slice_ns;
    if (next_tick < next)
      next = next_tick;
    for (unsigned i = 0; i < nfl; i++) {
      if (fl[i].start > now && fl[i].start < next)
        next = fl[i].start;
      if (fl[i].stop > now && fl[i].stop < next)
        next = fl[i].stop;
    }
    if (next <= now)
      next = now + 1;
    now = next;
    if (now >= next_tick) {
      if (on_tick)
        on_tick(now);
      next_tick += tick;
    }
    for (unsigned c = 0; c < dv.k; c++)
      if (dv.chan[c] && dv.chan_end[c] <= now) {
        struct sreq *r = dv.chan[c];
        dv.chan[c] = NULL;
        r->busy = false;
        r->fl->done++;
        r->fl->done_bytes += r->sr.bytes;
        record(r->fl, now - r->arrive);
        if (!dv.fifo_only)
          sched_complete(&sch, &r->sr, now);
      }
  }
}

static double jain(const double *x, unsigned n)
{
  double s = 0, s2 = 0;
  for (unsigned i = 0; i < n; i++) {
    s += x[i];
    s2 += x[i] * x[i];
  }
  return s2 > 0 ? s * s / (n * s2) : 0;
}

static int cmp_u64(const void *a, const void *b)
{
  uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
  return x < y ? -1 : x > y;
}

static uint64_t p99(struct sflow *f)
{
  if (!f->nlat)
    return 0;
  qsort(f->lat, f->nlat, sizeof *f->lat, cmp_u64);
  return f->lat[(size_t)(0.99 * (double)(f->nlat - 1))];
}

/* What flows f[0..n-1] get over the next `span` ns of the simulation: the
 * requests they complete in it, whether each one's share of them is within
 * 5% of its weight's share of the weights, and Jain's index on requests per
 * weight (1 when every flow gets exactly its weight's share).  One diag line
 * a flow, starting with `what`. */
struct shares {
  uint64_t total;
  bool within;
  double jain;
};

static struct shares weighted_shares(struct sflow *const *f, unsigned n, uint64_t span, const char *what)
{
  uint64_t d0[MAXF], weights = 0;
  double norm[MAXF];
  struct shares s = { 0 };
  for (unsigned i = 0; i < n; i++) {
    d0[i] = f[i]->done;
    weights += f[i]->f.p.weight;
  }
  run(now + span, 0, NULL);
  for (unsigned i = 0; i < n; i++)
    s.total += f[i]->done - d0[i];
  s.within = s.total > 0;
  for (unsigned i = 0; i < n; i++) {
    uint64_t got = f[i]->done - d0[i];
    double share = s.total ? (double)got / (double)s.total : 0;
    double want = (double)f[i]->f.p.weight / (double)weights;
    s.within = s.within && fabs(share - want) <= 0.05 * want;
    norm[i] = (double)got / f[i]->f.p.weight;
    diag("%sweight %u: %.4f of the requests (its weight share %.4f)", what, f[i]->f.p.weight, share, want);
  }
  s.jain = jain(norm, n);
  return s;
}

static void test_weights(void)
{
  reset(4, 50000, 2000, NULL);
  struct sflow *f[3] = { flow(100, 32, 4096), flow(200, 32, 4096), flow(400, 32, 4096) };
  run(200 * MS, 0, NULL);   /* warm up: the depth settles */
  struct shares s = weighted_shares(f, 3, 1800 * MS, "");
  ok(s.within, "weights 1:2:4, all backlogged: each gets its weight share within 5%%");
  ok(s.jain >= 0.99, "weights 1:2:4: Jain's index on throughput/weight %.4f >= 0.99", s.jain);
}

static uint64_t solo_done;
static void test_work_conserving(void)
{
  /* one flow alone: what the device does */
  reset(4, 50000, 2000, NULL);
  struct sflow *a = flow(100, 32, 4096);
  run(1 * S, 0, NULL);
  solo_done = a->done;
  /* two flows, B stops at 0.5 s: A takes over at once */
  reset(4, 50000, 2000, NULL);
  a = flow(100, 32, 4096);
  struct sflow *b = flow(100, 32, 4096);
  b->stop = 500 * MS;
  run(500 * MS, 0, NULL);
  uint64_t a_half = a->done, b_half = b->done;
  double split = (double)a_half / (double)(a_half + b_half);
  ok(fabs(split - 0.5) < 0.03, "two equal flows share the device evenly (A %.3f)", split);
  run(1 * S, 0, NULL);
  double total = (double)(a->done + b->done);
  ok(total >= 0.95 * (double)solo_done, "B idle from 0.5 s: A absorbs its share, total %.0f >= 0.95 x one flow alone %llu",
     total, (unsigned long long)solo_done);
  /* A alone in the second half: within 100 ms it runs at the whole device's rate */
  uint64_t a0 = a->done;
  run(1100 * MS, 0, NULL);
  ok((double)(a->done - a0) >= 0.95 * (double)solo_done / 10,
     "A alone does >= 95%% of the device's rate in the next 100 ms (%llu of %llu)",
     (unsigned long long)(a->done - a0), (unsigned long long)solo_done / 10);
}

static struct sflow *res_flow;
static uint64_t res_last, res_windows, res_met, res_need;
static void res_tick(uint64_t t)
{
  (void)t;
  uint64_t d = res_flow->done - res_last;
  res_last = res_flow->done;
  res_windows++;
  if (d >= res_need)
    res_met++;
}

static void test_reservation(void)
{
  /* the device: 4 channels of 58 us per 4 KiB request, about 69,000 IOPS */
  reset(4, 50000, 2000, NULL);
  uint64_t cap = 4 * S / (50000 + 4096 * 2);
  res_flow = flow(100, 32, 4096);
  res_flow->f.p.reserve_iops = cap / 2;
  for (int i = 0; i < 3; i++)
    flow(100, 32, 4096);
  run(200 * MS, 0, NULL);
  res_last = res_flow->done;
  res_windows = res_met = 0;
  res_need = cap / 2 / 10 * 98 / 100;   /* per 100 ms window, 2% slack for the window's edges */
  run(200 * MS + 10 * S, 100 * MS, res_tick);
  ok(res_windows >= 100 && res_met * 100 >= res_windows * 99,
     "a flow reserved at half the device's capacity beside 3 equal noisy flows: met in %llu of %llu 100 ms windows",
     (unsigned long long)res_met, (unsigned long long)res_windows);
  struct sflow *n = &fl[1];
  ok(n->f.st.reserved == 0 && res_flow->f.st.reserved > 0,
     "only the reserved flow was served in the reservation phase (%llu requests)",
     (unsigned long long)res_flow->f.st.reserved);
  (void)n;
}

/* A device that serves in bursts, as a throttle granting a budget per slice
 * does: the reserved flow's requests are young whenever they are let in (its
 * client resubmits as they complete), yet it stays backlogged, so the
 * reservation is owed from the start of its busy period, not from each
 * request's arrival. */
static void test_reservation_bursty(void)
{
  reset(64, 50000, 0, NULL);
  dv.slice_ns = 100 * MS;
  dv.slice_budget = 300;            /* 3000 requests per second */
  struct sflow *r = flow(100, 32, 4096);
  r->f.p.reserve_iops = 1500;
  for (int i = 0; i < 3; i++)
    flow(100, 32, 4096);
  run(1 * S, 0, NULL);
  uint64_t d0 = r->done, n0 = fl[1].done;
  run(6 * S, 0, NULL);
  uint64_t got = (r->done - d0) / 5, noisy = (fl[1].done - n0) / 5;
  ok(got >= 1500 * 95 / 100,
     "on a device serving 300 requests per 100 ms burst, a flow reserved at 1500 of its 3000 per second "
     "gets %llu per second (each noisy flow %llu)", (unsigned long long)got, (unsigned long long)noisy);
}

/* The device of the benchmark: a throttle that lets in 300 requests (200
 * to 400) at the start of each 100 ms slice, 3000 per second, in front of
 * a fast device (64 channels of 50 to 250 us), and holds the rest in its
 * FIFO queue of unbounded depth.  Any depth of 2 or more keeps it busy; what the
 * scheduler lets in beyond that waits in the device's queue, where the
 * order is first come, first served. */
static void throttled_device(void)
{
  reset(64, 50000, 0, NULL);
  dv.slice_ns = 100 * MS;
  dv.slice_budget = dv.slice_mean = 300;
  dv.slice_spread = 200;
  dv.jitter_ns = 200000;
  dv.seed = 1;
}

static void weights_throttled(unsigned qd)
{
  throttled_device();
  struct sflow *f[3] = { flow(100, qd, 4096), flow(200, qd, 4096), flow(400, qd, 4096) };
  run(2 * S, 0, NULL);   /* warm up: the depth settles */
  char what[64];
  snprintf(what, sizeof what, "throttled device, QD %u, ", qd);
  struct shares s = weighted_shares(f, 3, 30 * S, what);
  ok(s.within, "a throttled device with a deep queue of its own, weights 1:2:4 at QD %u: each share within 5%% "
     "(depth %u, ceiling %u)", qd, sch.depth, sch.ceiling);
  ok(s.jain >= 0.99, "... Jain's index on throughput/weight %.4f >= 0.99", s.jain);
  ok((double)s.total >= 0.98 * 3000 * 30, "... and the device stays busy: %llu requests in 30 s (3000 per second)",
     (unsigned long long)s.total);
}

static void test_weights_throttled(void)
{
  weights_throttled(16);
  weights_throttled(32);
}

static void test_reservation_throttled(void)
{
  throttled_device();
  res_flow = flow(100, 32, 4096);
  res_flow->f.p.reserve_iops = 1500;
  for (int i = 0; i < 3; i++)
    flow(100, 32, 4096);
  run(2 * S, 0, NULL);
  res_last = res_flow->done;
  res_windows = res_met = 0;
  res_need = 150 - 1;   /* per 100 ms window, less one request for the window's edges */
  run(32 * S, 100 * MS, res_tick);
  ok(res_windows >= 300 && res_met * 100 >= res_windows * 99,
     "a throttled device with a deep queue of its own, a flow reserved at half of it beside 3 noisy flows at QD 32: "
     "met in %llu of %llu 100 ms windows", (unsigned long long)res_met, (unsigned long long)res_windows);
}

/* Reads and writes each have the depth: writes the device holds back
 * (every slot of theirs taken and none completing) never keep reads out. */
static void test_depth_directions(void)
{
  reset(4, 50000, 2000, NULL);
  struct sflow *w = flow(100, 0, 4096), *r = flow(100, 0, 4096);
  struct sched_params p = { 0 };
  sched_flow_add(&sch, &w->f, &p);
  sched_flow_add(&sch, &r->f, &p);
  /* both flows busy (one read queued), so that the depth holds */
  sched_submit(&sch, &r->f, &r->reqs[0].sr, 4096, false, now);
  for (unsigned i = 0; i < MAXQD; i++)
    sched_submit(&sch, &w->f, &w->reqs[i].sr, 4096, true, now);
  unsigned nw = 0, nr = 0;
  struct sched_req *sr;
  while ((sr = sched_dispatch(&sch, now, NULL, SCHED_ANY_HOME)))
    nw += sr->flow == &w->f;
  ok(nw == sch.depth && sch.inflight_dir[1] == sch.depth, "a write backlog takes the depth's write slots (%u of %u)",
     nw, sch.depth);
  for (unsigned i = 1; i < MAXQD; i++)
    sched_submit(&sch, &r->f, &r->reqs[i].sr, 4096, false, now);
  bool reads_only = true;
  while ((sr = sched_dispatch(&sch, now, NULL, SCHED_ANY_HOME))) {
    reads_only = reads_only && sr->flow == &r->f;
    nr++;
  }
  nr += 1;   /* the first read */
  ok(nr == sch.depth && sch.inflight_dir[0] == sch.depth && reads_only,
     "reads still get %u slots of their own (%u), and no write more", sch.depth, nr);
  sched_complete(&sch, &w->reqs[0].sr, now);
  sr = sched_dispatch(&sch, now, NULL, SCHED_ANY_HOME);
  ok(sr && sr->flow == &w->f, "a write's completion lets in a write");
}

static void test_limits(void)
{
  reset(4, 50000, 2000, NULL);
  struct sflow *a = flow(100, 32, 4096);
  a->f.p.limit_iops = 5000;
  run(10 * S, 0, NULL);
  ok(a->done >= 49000 && a->done <= 51000, "limit-iops 5000 alone on an idle device: %llu requests in 10 s (50,000 +-2%%)",
     (unsigned long long)a->done);
  ok(a->f.st.throttled_ns > 5 * S, "its time held by the limit is counted (%.2f s)", (double)a->f.st.throttled_ns / S);

  reset(4, 50000, 2000, NULL);
  a = flow(100, 8, 128 << 10);
  a->f.p.limit_bw = 20000000;
  struct sflow *b = flow(100, 8, 128 << 10);
  run(10 * S, 0, NULL);
  double bw = (double)a->done_bytes / 10.0;
  ok(bw >= 0.98 * 20e6 && bw <= 1.02 * 20e6, "limit-bw 20 MB/s beside a greedy flow: %.2f MB/s over 10 s", bw / 1e6);
  ok(b->done_bytes > 10 * a->done_bytes, "the other flow gets the rest (%.0f MB/s)", (double)b->done_bytes / 10e6);
}

/* A limit set on a backlogged flow while it runs holds it at once (it
 * leaves the shares' heap for the list of flows with a limit), and lifting
 * it gives it its share back. */
static void set_limit(struct sflow *f, uint64_t limit_iops)
{
  struct sched_params p = f->f.p;
  p.limit_iops = limit_iops;
  sched_flow_set(&f->f, &p);
}

/* A flow held by its limit on an idle device is let in several requests
 * per wake-up, not one: a caller's timer fires a few hundred times per
 * second, not once per request. */
static void test_limit_wakeups(void)
{
  reset(4, 50000, 2000, NULL);
  struct sflow *a = flow(100, 0, 4096);
  struct sched_params p = { .limit_iops = 1000 };
  sched_flow_add(&sch, &a->f, &p);
  for (unsigned i = 0; i < MAXQD; i++)
    sched_submit(&sch, &a->f, &a->reqs[i].sr, 4096, false, now);
  unsigned wakeups = 0, sent = 0;
  while (now < 1 * S) {
    uint64_t wake = 0;
    struct sched_req *sr;
    while ((sr = sched_dispatch(&sch, now, &wake, SCHED_ANY_HOME))) {
      sent++;
      sched_complete(&sch, sr, now);
      sched_submit(&sch, &a->f, sr, 4096, false, now);   /* always backlogged */
    }
    if (!wake)
      break;
    now = wake;
    wakeups++;
  }
  ok(sent >= 990 && sent <= 1010, "limit-iops 1000 alone: %u requests in a second (1%%)", sent);
  ok(wakeups <= 250, "... let in at %u wake-ups", wakeups);
}

static void test_set_limit(void)
{
  reset(4, 50000, 2000, NULL);
  struct sflow *a = flow(100, 32, 4096), *b = flow(100, 32, 4096);
  run(1 * S, 0, NULL);
  uint64_t a0 = a->done, b0 = b->done;
  set_limit(a, 1000);
  run(2 * S, 0, NULL);
  uint64_t a1 = a->done, b1 = b->done;
  ok(a1 - a0 >= 980 && a1 - a0 <= 1040 + 32, "limit-iops 1000 set on a backlogged flow: %llu requests in the next second",
     (unsigned long long)(a1 - a0));
  ok(b1 - b0 > 20 * (a1 - a0), "... the other flow takes the rest (%llu)", (unsigned long long)(b1 - b0));
  set_limit(a, 0);
  run(3 * S, 0, NULL);
  double share = (double)(a->done - a1) / (double)(a->done - a1 + b->done - b1);
  ok(fabs(share - 0.5) < 0.03, "lifted: it has half the device again (%.3f)", share);
}

/* Homes: a dispatch prefers a flow of the caller's home whose start tag is
 * within one of its requests of the lowest, and the shares come out the
 * same over time. */
static void test_homes(void)
{
  reset(4, 50000, 2000, NULL);
  struct sflow *a = flow(100, 0, 4096), *b = flow(100, 0, 4096);
  struct sched_params p = { 0 };
  sched_flow_add(&sch, &a->f, &p);
  sched_flow_add(&sch, &b->f, &p);
  for (unsigned i = 0; i < 4; i++) {
    a->reqs[i].sr.home = 0;
    b->reqs[i].sr.home = 1;
    sched_submit(&sch, &a->f, &a->reqs[i].sr, 4096, false, now);
    sched_submit(&sch, &b->f, &b->reqs[i].sr, 4096, false, now);
  }
  struct sched_req *first = sched_dispatch(&sch, now, NULL, 1);
  struct sched_req *second = sched_dispatch(&sch, now, NULL, 1);
  struct sched_req *third = sched_dispatch(&sch, now, NULL, 1);
  ok(first && first->flow == &b->f && second && second->flow == &b->f && third && third->flow == &a->f,
     "tied flows: home 1 takes its own flow's request, and one more, then the other flow's");
  /* a long run in which every dispatch comes from home 0 */
  reset(4, 50000, 2000, NULL);
  a = flow(100, 32, 4096);
  b = flow(200, 32, 4096);
  for (unsigned i = 0; i < 32; i++)
    b->reqs[i].sr.home = 1;
  uint64_t got[2] = { 0, 0 };
  struct sched_params pa = { .weight = 100 }, pb = { .weight = 200 };
  sched_flow_add(&sch, &a->f, &pa);
  sched_flow_add(&sch, &b->f, &pb);
  for (unsigned i = 0; i < 32; i++) {
    sched_submit(&sch, &a->f, &a->reqs[i].sr, 4096, false, now);
    sched_submit(&sch, &b->f, &b->reqs[i].sr, 4096, false, now);
  }
  for (unsigned n = 0; n < 200000; n++) {
    struct sched_req *sr = sched_dispatch(&sch, now, NULL, 0);
    if (!sr)
      break;
    got[sr->flow == &b->f]++;
    sched_complete(&sch, sr, now);
    sched_submit(&sch, sr->flow, sr, 4096, false, now);   /* a closed loop */
    now += 1000;
  }
  double share = (double)got[1] / (double)(got[0] + got[1]);
  ok(fabs(share - 2.0 / 3) < 0.001, "every dispatch from the home of the weight-100 flow: the weight-200 flow "
     "still gets %.4f of 200,000 (2/3)", share);
}

static void test_many(void)
{
  reset(4, 50000, 2000, NULL);
  for (int i = 0; i < 64; i++)
    flow(100, 4, 4096);
  run(200 * MS, 0, NULL);
  uint64_t d0[64];
  for (int i = 0; i < 64; i++)
    d0[i] = fl[i].done;
  run(2200 * MS, 0, NULL);
  double x[64];
  for (int i = 0; i < 64; i++)
    x[i] = (double)(fl[i].done - d0[i]);
  ok(jain(x, 64) >= 0.99, "64 equal flows: Jain's index %.4f >= 0.99", jain(x, 64));
}

static void test_join(void)
{
  reset(4, 50000, 2000, NULL);
  struct sflow *a = flow(100, 32, 4096), *b = flow(100, 32, 4096), *c = flow(100, 32, 4096);
  c->start = 1 * S;
  run(1 * S, 0, NULL);
  uint64_t a0 = a->done, b0 = b->done;
  run(1010 * MS, 0, NULL);
  uint64_t first = c->done, all = (a->done - a0) + (b->done - b0) + c->done;
  ok((double)first <= 0.40 * (double)all,
     "a flow joining after 1 s of two backlogged ones banks no credit: %llu of %llu requests in its first 10 ms",
     (unsigned long long)first, (unsigned long long)all);
  a0 = a->done, b0 = b->done;
  uint64_t c0 = c->done;
  run(2 * S, 0, NULL);
  double tot = (double)(a->done - a0 + b->done - b0 + c->done - c0);
  double sc = (double)(c->done - c0) / tot;
  ok(fabs(sc - 1.0 / 3) <= 0.05 / 3, "then it gets a third (%.4f)", sc);
  /* B leaves; its flow is removed with nothing queued */
  b->stop = 2 * S;
  run(2500 * MS, 0, NULL);
  ok(!b->added && sch.nflows == 2, "a flow that left is removed (%u flows)", sch.nflows);
}

static void test_victim(void)
{
  uint64_t alone = 0, with = 0, fifo = 0;
  for (int mode = 0; mode < 3; mode++) {
    reset(4, 50000, 2000, NULL);
    struct sflow *v = flow(100, 1, 4096);
    v->lat = malloc(1024 * sizeof *v->lat);
    v->caplat = 1024;
    if (mode > 0)
      flow(100, 32, 128 << 10);
    dv.fifo_only = mode == 2;
    run(2 * S, 0, NULL);
    uint64_t p = p99(v);
    if (mode == 0)
      alone = p;
    else if (mode == 1)
      with = p;
    else
      fifo = p;
  }
  diag("victim p99: alone %llu us, beside the neighbour %llu us, without a scheduler %llu us",
       (unsigned long long)alone / 1000, (unsigned long long)with / 1000, (unsigned long long)fifo / 1000);
  ok(with * 4 <= fifo, "a QD 1 victim beside a QD 32 neighbour: p99 %llu us, at most a quarter of the device queue's %llu us",
     (unsigned long long)with / 1000, (unsigned long long)fifo / 1000);
  ok(with <= alone + 2 * (50000 + (128 << 10) * 2), "... and at most its p99 alone plus two of the neighbour's requests");
}

static void test_depth(void)
{
  /* 8 channels, two flows of different weights (so that they do not
   * stand evenly and the depth bounds them): the depth must reach them */
  reset(8, 50000, 2000, NULL);
  struct sflow *a = flow(100, 32, 4096), *a2 = flow(200, 32, 4096);
  run(1 * S, 0, NULL);
  uint64_t d0 = a->done + a2->done;
  run(2 * S, 0, NULL);
  double rate = (double)(a->done + a2->done - d0), max = 8.0 * S / (50000 + 4096 * 2);
  ok(rate >= 0.95 * max, "8 channels: throughput %.0f/s >= 95%% of the device's %.0f/s (depth %u)", rate, max, sch.depth);
  ok(sch.depth <= 32 && sch.inflight <= 32, "... with a depth of %u (%u in flight), not all 64 requests of the flows",
     sch.depth, sch.inflight);
  /* one flow alone: nothing to order, nothing held back */
  reset(8, 50000, 2000, NULL);
  a = flow(100, 64, 4096);
  run(1 * S, 0, NULL);
  ok(sch.inflight + sch.queued == 64 && sch.inflight >= 63,
     "a flow alone is not held back: %u of its 64 requests in flight (depth %u)", sch.inflight, sch.depth);
  /* the cost model, estimated from completions while it was alone: a
   * 4 KiB request costs the device time it takes at saturation, 58 us
   * over 8 channels */
  double c4k = (double)(sch.t_req + ((4096 * sch.t_byte16) >> 16)), want = (50000.0 + 4096 * 2) / 8;
  ok(fabs(c4k - want) <= 0.1 * want, "the estimated cost of a 4 KiB request %.0f ns is the device's %.0f ns +-10%%", c4k, want);
  struct sched_config known = { .device_iops = 20000, .device_bw = 100000000 };
  reset(8, 50000, 2000, &known);
  flow(100, 64, 4096);
  run(1 * S, 0, NULL);
  ok(sch.t_req == 50000 && sch.t_byte16 == (1000000000ull << 16) / 100000000,
     "a configured capacity (--device-iops, --device-bw) is kept as given");
  /* three flows on it: the ceiling while they contend still keeps the 8 channels busy */
  reset(8, 50000, 2000, NULL);
  struct sflow *c[3] = { flow(100, 64, 4096), flow(200, 64, 4096), flow(400, 64, 4096) };
  run(1 * S, 0, NULL);
  uint64_t c0 = c[0]->done + c[1]->done + c[2]->done;
  run(2 * S, 0, NULL);
  rate = (double)(c[0]->done + c[1]->done + c[2]->done - c0);
  ok(rate >= 0.95 * max && sch.ceiling >= 8, "8 channels, 3 flows: throughput %.0f/s >= 95%% of the device's %.0f/s "
     "(ceiling %u, depth %u)", rate, max, sch.ceiling, sch.depth);
  /* a QD 1 flow alone for a second (it never fills the bound: its rate is
   * not the device's), then three greedy flows join: within 100 ms the
   * ceiling keeps the 8 channels busy */
  reset(8, 50000, 2000, NULL);
  struct sflow *lone = flow(100, 1, 4096);
  for (int i = 0; i < 3; i++) {
    c[i] = flow(100 << i, 64, 4096);
    c[i]->start = 1 * S;
  }
  run(1 * S, 0, NULL);
  run(1100 * MS, 0, NULL);
  c0 = c[0]->done + c[1]->done + c[2]->done + lone->done;
  run(1200 * MS, 0, NULL);
  rate = 10.0 * (double)(c[0]->done + c[1]->done + c[2]->done + lone->done - c0);
  ok(rate >= 0.95 * max, "8 channels, a QD 1 flow alone, then 3 greedy ones: %.0f/s in their second 100 ms, >= 95%% of "
     "%.0f/s (ceiling %u)", rate, max, sch.ceiling);
  /* small and large requests mixed: the ceiling, per unit of cost, still
   * keeps the 8 channels busy (the lowest latency is a small request's,
   * most of the time goes to the large ones) */
  reset(8, 50000, 2000, NULL);
  flow(100, 32, 4096);
  for (int i = 0; i < 3; i++)
    flow(100, 32, 128 << 10);
  run(1 * S, 0, NULL);
  uint64_t busy0 = dv.busy_ns;
  run(2 * S, 0, NULL);
  double util = (double)(dv.busy_ns - busy0) / (8.0 * S);
  ok(util >= 0.95, "8 channels, 4 KiB and 128 KiB flows: the device busy %.3f of the time (ceiling %u)", util,
     sch.ceiling);
  /* one channel: more depth only queues */
  reset(1, 50000, 2000, NULL);
  flow(100, 32, 4096);
  flow(200, 32, 4096);
  run(2 * S, 0, NULL);
  ok(sch.depth <= 6 && !sch.even, "1 channel, two flows: the depth stays small (%u)", sch.depth);
  /* a flow alone again, 100 ms after the other left: not held back */
  reset(1, 50000, 2000, NULL);
  flow(100, 32, 4096);
  flow(200, 32, 4096)->stop = 1 * S;
  run(1050 * MS, 0, NULL);
  unsigned before = sch.inflight;
  run(1200 * MS, 0, NULL);
  ok(before <= 6 && sch.inflight >= 31, "the other flow gone for 100 ms: %u in flight, %u at 50 ms", sch.inflight, before);
}

static bool odd_req(const struct sched_req *r, void *arg)
{
  (void)arg;
  return ((const struct sreq *)r - fl[0].reqs) % 2 == 1;
}

/* A flow's source goes away with requests queued behind its limit: they
 * are taken out at once (none dispatched), the others keep their order,
 * the flow can be removed, and another flow is not touched. */
static void test_cancel(void)
{
  reset(4, 50000, 2000, NULL);
  struct sflow *a = flow(100, 0, 4096), *b = flow(100, 0, 4096);
  struct sched_params pa = { .limit_iops = 5 }, pb = { 0 };
  sched_flow_add(&sch, &a->f, &pa);
  sched_flow_add(&sch, &b->f, &pb);
  for (unsigned i = 0; i < 40; i++)
    sched_submit(&sch, &a->f, &a->reqs[i].sr, 4096, false, now);
  for (unsigned i = 0; i < 4; i++)
    sched_submit(&sch, &b->f, &b->reqs[i].sr, 4096, false, now);
  unsigned got_a = 0, got_b = 0;
  uint64_t wake = 0;
  struct sched_req *sr;
  while ((sr = sched_dispatch(&sch, now, &wake, SCHED_ANY_HOME))) {
    if (sr->flow == &a->f) got_a++; else got_b++;
    sched_complete(&sch, sr, now);
  }
  ok(got_a == 1 && got_b == 4 && wake > now, "limit-iops 5: one request in, 39 held (wake in %llu ms)",
     (unsigned long long)(wake - now) / MS);
  /* cancel the odd ones: 20 of the 39 queued (1..39; request 0 went in) */
  struct sched_req *out = sched_flow_cancel(&sch, &a->f, odd_req, NULL, now);
  unsigned n = 0;
  bool order = true;
  for (struct sched_req *r = out, *prev = NULL; r; prev = r, r = r->next, n++)
    order = order && odd_req(r, NULL) && (!prev || prev < r);
  ok(n == 20 && order, "the matching requests come out in queue order (%u)", n);
  ok(a->f.queued == 19 && sch.queued == 19, "the rest stay queued (%u, device %llu)", a->f.queued,
     (unsigned long long)sch.queued);
  now += 1 * S;
  sr = sched_dispatch(&sch, now, &wake, SCHED_ANY_HOME);
  ok(sr == &a->reqs[2].sr, "the next one dispatched is the next even request");
  sched_complete(&sch, sr, now);
  /* the source goes away: everything left */
  out = sched_flow_cancel(&sch, &a->f, NULL, NULL, now);
  n = 0;
  for (struct sched_req *r = out; r; r = r->next)
    n++;
  ok(n == 18 && a->f.queued == 0 && !a->f.head && sch.queued == 0, "a whole cancel empties the flow (%u taken)", n);
  ok(!sched_dispatch(&sch, now + 10 * S, &wake, SCHED_ANY_HOME) && wake == 0, "nothing is dispatched for it afterwards");
  sched_flow_remove(&sch, &a->f);
  sched_submit(&sch, &b->f, &b->reqs[0].sr, 4096, false, now);
  ok(sched_dispatch(&sch, now, NULL, SCHED_ANY_HOME) == &b->reqs[0].sr && sch.nflows == 1, "the other flow goes on");
  ok(!sched_flow_cancel(&sch, &b->f, NULL, NULL, now), "cancelling an empty queue takes nothing");
}

static void test_quantile(void)
{
  struct sched_flow f;
  memset(&f, 0, sizeof f);
  ok(sched_flow_delay_quantile(&f, 0.99) == 0, "no request: quantile 0");
  f.st.delay_hist[10] = 99;   /* [1024, 2048) ns */
  f.st.delay_hist[20] = 1;
  ok(sched_flow_delay_quantile(&f, 0.5) == 2048, "p50 is the upper edge of its bucket");
  ok(sched_flow_delay_quantile(&f, 0.999) == 2u << 20, "p99.9 reaches the last bucket");
}

/* Flows that stand evenly (no reservation or limit, the same cost
 * outstanding per unit of weight) go to the device without a bound: its
 * FIFO gives each its weight share already, and takes the requests in
 * batches.  The benchmark's 64 connections at QD 2 on the throttled
 * device: nothing waits in the scheduler, the shares stay even. */
static void test_even(void)
{
  throttled_device();
  for (int i = 0; i < 64; i++)
    flow(100, 2, 4096);
  run(1 * S, 0, NULL);
  ok(sch.even && sch.inflight == 128 && sch.queued == 0,
     "64 flows at QD 2 stand evenly: all 128 requests in the device, none held (even %d, in flight %u, queued %llu)",
     sch.even, sch.inflight, (unsigned long long)sch.queued);
  uint64_t d0[64];
  for (int i = 0; i < 64; i++)
    d0[i] = fl[i].done;
  run(11 * S, 0, NULL);
  double x[64];
  for (int i = 0; i < 64; i++)
    x[i] = (double)(fl[i].done - d0[i]);
  ok(jain(x, 64) >= 0.99, "... Jain's index over 10 s %.4f >= 0.99", jain(x, 64));
  /* weights in proportion to the queue depths: even too, and the FIFO
   * gives the weights' shares */
  reset(4, 50000, 2000, NULL);
  struct sflow *f[3] = { flow(100, 4, 4096), flow(200, 8, 4096), flow(400, 16, 4096) };
  run(1 * S, 0, NULL);
  bool even = sch.even;
  uint64_t w0[3], total = 0;
  for (int i = 0; i < 3; i++)
    w0[i] = f[i]->done;
  run(3 * S, 0, NULL);
  for (int i = 0; i < 3; i++)
    total += f[i]->done - w0[i];
  bool within = total > 0;
  for (int i = 0; i < 3; i++) {
    double share = (double)(f[i]->done - w0[i]) / (double)total, want = (1 << i) / 7.0;
    within = within && fabs(share - want) <= 0.05 * want;
  }
  ok(even && within, "weights 1:2:4 at QD 4, 8, 16 stand evenly, and each gets its weight share within 5%%");
  /* the same weights at one QD do not */
  reset(4, 50000, 2000, NULL);
  for (int i = 0; i < 3; i++)
    flow(100 << i, 16, 4096);
  run(1 * S, 0, NULL);
  ok(!sch.even, "weights 1:2:4 at QD 16 each do not stand evenly");
}

/* A QD 1 victim joins flows that stand evenly: at its first request the
 * ceiling is back; only the requests already in the device are ahead of
 * it once. */
static void test_even_victim(void)
{
  uint64_t alone = 0;
  for (int mode = 0; mode < 2; mode++) {
    reset(4, 50000, 2000, NULL);
    struct sflow *v = flow(100, 1, 4096);
    if (mode) {
      v->start = 1 * S;
      for (int i = 0; i < 8; i++)
        flow(100, 16, 4096);
      run(1 * S, 0, NULL);
      ok(sch.even && sch.inflight == 128, "8 flows at QD 16 stand evenly: all 128 requests in the device");
      run(1 * S + 1, 0, NULL);
      ok(!sch.even, "a QD 1 flow joins: they no longer do, at its first request");
    }
    v->lat = malloc(1024 * sizeof *v->lat);
    v->caplat = 1024;
    run(3 * S, 0, NULL);
    if (!mode)
      alone = p99(v);
    else
      ok(p99(v) <= alone + 2 * (50000 + 4096 * 2), "... its p99 %llu us is at most its p99 alone %llu us plus two "
         "of the others' requests", (unsigned long long)p99(v) / 1000, (unsigned long long)alone / 1000);
  }
}

/* One of flows standing evenly stalls for a few milliseconds across a
 * check (its client was not scheduled, say): left out of that check, it
 * comes back with a level within the others' band, and they still stand
 * evenly. */
static void test_even_stall(void)
{
  reset(4, 50000, 2000, NULL);
  for (int i = 0; i < 8; i++)
    flow(100, 16, 4096);
  run(1 * S, 0, NULL);
  uint64_t last = sch.even_since;
  while (sch.even_since == last)   /* the next check: the one after starts 100 ms later */
    run(now + 1, 0, NULL);
  uint64_t check = sch.even_since + 100 * MS;
  run(check - 6 * MS, 0, NULL);
  fl[0].qd = 0;   /* its requests complete, none follows */
  while (sch.even_since < check)
    run(now + 1, 0, NULL);
  bool left_out = fl[0].f.out_cost == 0;
  fl[0].qd = 16;
  run(now + 1, 0, NULL);
  ok(left_out && sch.even && fl[0].f.queued + fl[0].f.inflight == 16,
     "a flow of 8 standing evenly stalls 6 ms across a check: back with 16 requests, they still stand evenly");
}

/* A flow of three backlogged ones stops: once its last requests are done,
 * the two others take the whole device within 100 ms (on the throttled
 * device: the next slice, all of it). */
static void idle_case(bool throttled)
{
  if (throttled) {
    throttled_device();
    dv.slice_spread = 0;   /* 300 per 100 ms slice, every slice */
  } else {
    reset(4, 50000, 2000, NULL);
  }
  struct sflow *a = flow(100, 16, 4096), *b = flow(100, 16, 4096), *c = flow(100, 16, 4096);
  c->stop = 2 * S;
  run(2 * S, 0, NULL);
  while (c->added)   /* its requests still queued or in flight */
    run(now + 1, 0, NULL);
  uint64_t from = throttled ? (now / dv.slice_ns + 1) * dv.slice_ns : now;
  run(from, 0, NULL);
  uint64_t d0 = a->done + b->done;
  run(from + 100 * MS, 0, NULL);
  double got = (double)(a->done + b->done - d0), rate = throttled ? 300 : 4.0 * 100 * MS / (50000 + 4096 * 2);
  ok(got >= 0.95 * rate, "%s: a flow of three stops; from %.1f ms later (its last request done), the two others "
     "do %.0f in 100 ms, >= 95%% of the device's %.0f", throttled ? "throttled device" : "4 channels",
     (double)(from - 2 * S) / MS, got, rate);
}

static void test_idle(void)
{
  idle_case(false);
  idle_case(true);
}

int main(void)
{
  test_weights();
  test_work_conserving();
  test_reservation();
  test_reservation_bursty();
  test_weights_throttled();
  test_reservation_throttled();
  test_depth_directions();
  test_limits();
  test_limit_wakeups();
  test_set_limit();
  test_homes();
  test_many();
  test_join();
  test_victim();
  test_even();
  test_even_victim();
  test_even_stall();
  test_idle();
  test_depth();
  test_cancel();
  test_quantile();
  for (unsigned i = 0; i < nfl; i++)
    free(fl[i].lat);
  return tap_done();
}
