/* iosched.c: the per-device I/O scheduler (iosched.h): mClock's reservation
 * and limit tags, start-time fair queuing for the weights, an online cost
 * model and the adaptive depth. */
#include <string.h>

#include "common/macros.h"
#include "datapath/iosched.h"

#define NS_PER_S 1000000000ull
/* Without a configured capacity: a request costs as much as 32 KiB of
 * transfer, at 500 MB/s; only the ratio matters for the shares, and the
 * estimate from completions replaces the scale. */
#define DEFAULT_T_REQ   64000ull                       /* ns */
#define DEFAULT_T_BYTE16 ((2ull << 16))                /* 2 ns per byte, in 1/65536 ns */
#define WINDOW_MIN      32u                            /* completions per depth window */
/* A flow held by its limit is looked at again (the caller's timer) this
 * long after its head is due, when the requests due in the meantime go at
 * once: a flow held by a limit on an idle device takes a timer wake-up per
 * few requests rather than one per request (a limit of 1000 per second:
 * about 170 wake-ups, not 1000).  Its limit tags advance from when each
 * request was due, not from when it went, so it loses nothing over time,
 * and it never goes ahead of its limit. */
#define LIMIT_BATCH_NS  5000000ull

static uint64_t per(uint64_t rate) { return rate ? NS_PER_S / rate : 0; }

void sched_init(struct sched *s, const struct sched_config *cfg)
{
  memset(s, 0, sizeof *s);
  s->cfg = *cfg;
  if (!s->cfg.write_cost_pct)
    s->cfg.write_cost_pct = 100;
  if (!s->cfg.min_depth)
    s->cfg.min_depth = 2;
  if (!s->cfg.max_depth)
    s->cfg.max_depth = 256;
  if (s->cfg.max_depth < s->cfg.min_depth)
    s->cfg.max_depth = s->cfg.min_depth;
  s->t_req = cfg->device_iops ? per(cfg->device_iops) : DEFAULT_T_REQ;
  s->t_byte16 = cfg->device_bw ? (NS_PER_S << 16) / cfg->device_bw : DEFAULT_T_BYTE16;
  s->share_t_req = s->t_req;
  s->share_t_byte16 = s->t_byte16;
  s->depth = MAX(s->cfg.min_depth, MIN(8u, s->cfg.max_depth));
  s->ceiling = s->cfg.max_depth;   /* until the device has been measured */
  for (unsigned d = 0; d < 2; d++)
    for (unsigned h = 0; h < SCHED_HOMES; h++)
      pheap_init(&s->share[d][h]);
}

static bool limited(const struct sched_flow *f) { return f->p.limit_iops || f->p.limit_bw; }

/* Put f where sched_dispatch looks for it now: in the heap of its head's
 * direction, by its finish tag, while it has a head and no limit. */
static void place(struct sched *s, struct sched_flow *f)
{
  if (f->hn.in)
    pheap_remove(&s->share[f->hn_write][f->hn_home], &f->hn);
  if (f->head && !limited(f)) {
    f->hn_write = f->head->write;
    f->hn_home = f->head->home % SCHED_HOMES;
    pheap_insert(&s->share[f->hn_write][f->hn_home], &f->hn, f->finish);
  }
}

/* Keep f on the list of flows with a reservation or a limit while it has one. */
static void list_special(struct sched *s, struct sched_flow *f)
{
  bool want = f->s == s && (f->p.reserve_iops || limited(f));
  if (want == f->special)
    return;
  if (want) {
    f->snext = s->special;
    s->special = f;
  } else {
    for (struct sched_flow **pp = &s->special; *pp; pp = &(*pp)->snext)
      if (*pp == f) {
        *pp = f->snext;
        break;
      }
  }
  f->special = want;
}

/* f's cost outstanding changes by add (+) or sub (-) at time now: its
 * integral over time counts what it was until now. */
static void outstanding(struct sched_flow *f, uint64_t now, uint64_t add, uint64_t sub)
{
  if (now > f->out_since)
    f->out_area += f->out_cost * ((now - f->out_since) >> 10);
  f->out_since = MAX(f->out_since, now);
  f->out_cost += add;
  f->out_cost -= MIN(sub, f->out_cost);
}

/* f has a request queued or in flight: it counts as busy. */
static bool busy(const struct sched_flow *f) { return f->queued || f->inflight; }

static void set_params(struct sched_flow *f, const struct sched_params *p)
{
  f->p = *p;
  if (!f->p.weight)
    f->p.weight = SCHED_DEFAULT_WEIGHT;
}

void sched_flow_add(struct sched *s, struct sched_flow *f, const struct sched_params *p)
{
  memset(f, 0, sizeof *f);
  f->s = s;
  set_params(f, p);
  f->tail = &f->head;
  f->finish = s->vt;
  f->next = s->flows;
  s->flows = f;
  s->nflows++;
  list_special(s, f);
}

void sched_flow_set(struct sched_flow *f, const struct sched_params *p)
{
  set_params(f, p);
  if (f->s) {   /* a limit set or lifted moves it between the heap and the list */
    f->s->even = false;   /* until the next window says otherwise */
    list_special(f->s, f);
    place(f->s, f);
  }
}

void sched_flow_remove(struct sched *s, struct sched_flow *f)
{
  if (busy(f))   /* its requests in flight no longer count for it */
    s->nbusy--;
  if (f->hn.in)
    pheap_remove(&s->share[f->hn_write][f->hn_home], &f->hn);
  f->s = NULL;
  list_special(s, f);
  for (struct sched_flow **pp = &s->flows; *pp; pp = &(*pp)->next)
    if (*pp == f) {
      *pp = f->next;
      s->nflows--;
      break;
    }
}

struct sched_req *sched_flow_cancel(struct sched *s, struct sched_flow *f,
                                    bool (*match)(const struct sched_req *r, void *arg), void *arg,
                                    uint64_t now)
{
  struct sched_req *out = NULL, **out_tail = &out, *old_head = f->head;

  f->tail = &f->head;
  for (struct sched_req *r = f->head, *next; r; r = next) {
    next = r->next;
    r->next = NULL;
    if (match && !match(r, arg)) {
      *f->tail = r;
      f->tail = &r->next;
      continue;
    }
    *out_tail = r;
    out_tail = &r->next;
    outstanding(f, now, 0, r->cost);
    f->queued--;
    s->queued--;
  }
  *f->tail = NULL;
  if (!busy(f) && (out || old_head))
    s->nbusy--;
  if (f->head != old_head) {
    f->head_since = now;   /* a new head starts its wait (for the throttled time) */
    place(s, f);
  }
  return out;
}

static uint64_t cost_of(const struct sched *s, uint64_t bytes, bool write)
{
  uint64_t c = s->share_t_req + ((bytes * s->share_t_byte16) >> 16);
  return write ? c * s->cfg.write_cost_pct / 100 : c;
}

void sched_submit(struct sched *s, struct sched_flow *f, struct sched_req *r, uint64_t bytes, bool write,
                  uint64_t now)
{
  r->next = NULL;
  r->flow = f;
  r->bytes = bytes;
  r->write = write;
  r->reserved = false;
  r->arrive_ns = now;
  r->dispatch_ns = 0;
  r->cost = cost_of(s, bytes, write);
  if (!f->head)
    f->head_since = now;
  if (!s->even_since)   /* the first request: the flows' levels count from now */
    s->even_since = now;
  if (!s->inflight && !s->queued) {   /* the device was idle: a window counts from now, without the idle time */
    s->win_n = s->win_bytes = s->win_cost = s->win_lat_min = 0;
    s->win_full = s->win_capped = s->win_even = false;
    s->win_start = now;
  }
  if (!busy(f)) {
    f->busy_since = now;
    s->nbusy++;
  }
  *f->tail = r;
  f->tail = &r->next;
  f->queued++;
  s->queued++;
  outstanding(f, now, r->cost, 0);
  /* A flow new to the measure, or that had left with a level out of the
   * others' band, or with a reservation or a limit, or with twice the
   * outstanding of the others does not stand evenly; one that now asks
   * less than they do shows at the next check. */
  if (s->even && (!f->level || (f->level < s->even_lo && s->even_hi - f->level > f->level / 8) || f->special ||
                  f->out_cost * SCHED_DEFAULT_WEIGHT / f->p.weight > 2 * s->even_hi))
    s->even = false;
  if (f->head == r)
    place(s, f);
}

/* The head's tags: reservation and limit in real time, from the flow's
 * budgets.  The reservation's from the start of the flow's busy period: an
 * idle flow banks nothing, but a flow that kept requests queued or in
 * flight is owed what it was not given, even when each of its requests is
 * young (a closed-loop client resubmits as its requests complete, and a
 * device that serves in bursts completes many at once).  The limit's from
 * the head's arrival. */
static uint64_t r_tag(const struct sched_flow *f) { return MAX(f->r_tag, f->busy_since); }
static uint64_t l_tag(const struct sched_flow *f)
{
  uint64_t t = f->head->arrive_ns;
  if (f->p.limit_iops)
    t = MAX(t, f->l_iops_tag);
  if (f->p.limit_bw)
    t = MAX(t, f->l_bw_tag);
  return t;
}
/* The head's start tag in virtual time: where its flow's last request
 * finished, or now's virtual time for a flow that was idle or held. */
static uint64_t start_tag(const struct sched *s, const struct sched_flow *f) { return MAX(s->vt, f->finish); }

static void hist_add(uint64_t *h, uint64_t ns)
{
  unsigned b = 0;
  while (ns > 1 && b + 1 < SCHED_HIST_BUCKETS) {
    ns >>= 1;
    b++;
  }
  h[b]++;
}

/* Take f's head at time now: in the reservation phase, or in the shares'
 * with `low` the lowest start tag of the flows that could have gone (f's
 * own, unless f went first for its home): virtual time moves to it, so
 * that the others keep their place. */
static struct sched_req *take(struct sched *s, struct sched_flow *f, uint64_t now, bool reserved, uint64_t low)
{
  struct sched_req *r = f->head;
  uint64_t lt = l_tag(f), rt = r_tag(f);

  if (lt > f->head_since)   /* held by its limit: until due, and the wake-up's wait after */
    f->st.throttled_ns += MIN(lt + LIMIT_BATCH_NS, now) - f->head_since;
  if (reserved)   /* what the shares give does not count against the reservation */
    f->r_tag = rt + per(f->p.reserve_iops);
  if (f->p.limit_iops)
    f->l_iops_tag = lt + per(f->p.limit_iops);
  if (f->p.limit_bw)
    f->l_bw_tag = lt + r->bytes * NS_PER_S / f->p.limit_bw;
  if (!reserved) {   /* a reservation's requests do not count against the share */
    uint64_t st = start_tag(s, f);
    s->vt = MAX(s->vt, MIN(st, low));
    f->finish = st + r->cost * SCHED_DEFAULT_WEIGHT / f->p.weight;
  }
  f->head = r->next;
  if (!f->head)
    f->tail = &f->head;
  place(s, f);
  f->head_since = now;
  f->queued--;
  f->inflight++;
  s->queued--;
  s->inflight++;
  s->inflight_dir[r->write]++;
  if (s->alone && s->inflight_dir[r->write] >= s->depth)
    s->win_full = true;   /* the depth would hold the flow back: the device has all it can take */
  r->next = NULL;
  r->reserved = reserved;
  r->dispatch_ns = now;
  f->st.requests++;
  f->st.bytes += r->bytes;
  if (reserved)
    f->st.reserved++;
  hist_add(f->st.delay_hist, now - r->arrive_ns);
  return r;
}

/* The bound on each direction's requests in flight now: the depth, or
 * the ceiling below it while flows contend for the device; the maximum
 * depth (no bound) while one flow has been alone for SCHED_ALONE_NS
 * (there is no order to keep, and holding its requests back only moves
 * their wait from the device's queue to the scheduler's, or leaves a
 * device whose throughput grows with its queue, such as a remote store,
 * underused), or while flows contend standing evenly (the device's FIFO
 * then orders them as the scheduler would, and takes its requests in
 * batches, as they come). */
static unsigned bound(struct sched *s, uint64_t now, bool *capped)
{
  if (s->nbusy >= 2) {
    s->contended_ns = now;
    s->contended = true;
  }
  s->alone = s->nbusy <= 1 && (!s->contended || (now > s->contended_ns && now - s->contended_ns >= SCHED_ALONE_NS));
  s->win_alone |= s->alone;
  if (s->nbusy >= 2 && s->even)
    s->win_even = true;
  if (s->alone || (s->nbusy >= 2 && s->even)) {
    *capped = false;
    return s->cfg.max_depth;
  }
  *capped = s->nbusy >= 2 && s->ceiling < s->depth;
  return *capped ? s->ceiling : s->depth;
}

/* The direction of f's head is at its bound: note it for the window. */
static bool dir_full(struct sched *s, const struct sched_flow *f, unsigned lim, bool capped)
{
  if (s->inflight_dir[f->head->write] < lim)
    return false;
  s->win_full = true;
  s->win_capped |= capped;
  return true;
}

/* A candidate of the shares' phase: the lowest start tag, and the lowest
 * of the caller's home. */
struct pick {
  struct sched_flow *best, *local;
  uint64_t best_tag, local_tag;
};

static void consider(struct pick *p, struct sched_flow *f, uint64_t t, bool local)
{
  if (!p->best || t < p->best_tag) {
    p->best = f;
    p->best_tag = t;
  }
  if (local && (!p->local || t < p->local_tag)) {
    p->local = f;
    p->local_tag = t;
  }
}

struct sched_req *sched_dispatch(struct sched *s, uint64_t now, uint64_t *wake, unsigned home)
{
  struct sched_flow *best = NULL;
  uint64_t best_tag = 0, next_wake = 0;
  bool capped;
  unsigned lim = bound(s, now, &capped);
  struct pick p = { 0 };

  if (wake)
    *wake = 0;
  if (!s->queued)
    return NULL;
  if (s->inflight_dir[0] >= lim && s->inflight_dir[1] >= lim) {
    s->win_full = true;
    s->win_capped |= capped;
    return NULL;
  }
  /* Reservations first: the flow furthest behind its floor. */
  for (struct sched_flow *f = s->special; f; f = f->snext) {
    if (!f->head || !f->p.reserve_iops || l_tag(f) > now || dir_full(s, f, lim, capped))
      continue;
    uint64_t t = r_tag(f);
    if (t <= now && (!best || t < best_tag)) {
      best = f;
      best_tag = t;
    }
  }
  if (best)
    return take(s, best, now, true, 0);
  /* Then the shares: the lowest start tag of each direction with room and
   * home (start tags order as finish tags do, those below vt all at vt),
   * and of the flows with a limit that are within it. */
  for (unsigned d = 0; d < 2; d++) {
    bool full = s->inflight_dir[d] >= lim;
    for (unsigned h = 0; h < SCHED_HOMES; h++) {
      struct pheap_node *m = pheap_min(&s->share[d][h]);
      if (!m)
        continue;
      if (full) {
        s->win_full = true;
        s->win_capped |= capped;
        break;
      }
      struct sched_flow *f = container_of(m, struct sched_flow, hn);
      consider(&p, f, start_tag(s, f), home != SCHED_ANY_HOME && h == home % SCHED_HOMES);
    }
  }
  for (struct sched_flow *f = s->special; f; f = f->snext) {
    if (!f->head || !limited(f) || dir_full(s, f, lim, capped))
      continue;
    uint64_t lt = l_tag(f);
    if (lt > now) {
      if (!next_wake || lt + LIMIT_BATCH_NS < next_wake)
        next_wake = lt + LIMIT_BATCH_NS;
      continue;
    }
    consider(&p, f, start_tag(s, f), home != SCHED_ANY_HOME && f->head->home % SCHED_HOMES == home % SCHED_HOMES);
  }
  if (p.local && p.local != p.best &&
      p.local_tag <= p.best_tag + p.local->head->cost * SCHED_DEFAULT_WEIGHT / p.local->p.weight)
    return take(s, p.local, now, false, p.best_tag);
  if (p.best)
    return take(s, p.best, now, false, p.best_tag);
  if (wake)
    *wake = next_wake;
  return NULL;
}

/* Grow the depth by a quarter (at least one), within the bounds. */
static unsigned grown(const struct sched *s, unsigned d) { return MIN(s->cfg.max_depth, d + MAX(1u, d / 4)); }
static unsigned shrunk(const struct sched *s, unsigned d) { return MAX(s->cfg.min_depth, d - MAX(1u, d / 5)); }

/* The throughput of a window in a measure that does not move with the
 * cost model's estimate: reference cost (the default model) per us. */
static uint64_t window_thr(const struct sched *s, uint64_t elapsed)
{
  uint64_t ref = s->win_n * DEFAULT_T_REQ + ((s->win_bytes * DEFAULT_T_BYTE16) >> 16);
  return elapsed ? ref * 1000 / elapsed : 0;
}

/* A window of completions ended with the depth the limit.  A probed
 * depth is kept when it did at least 5% more than the kept one (a larger
 * depth) or at most 5% less (a smaller one: the same work, less queueing
 * in the device); otherwise the kept depth comes back and the next probe
 * waits PROBE_HOLD windows (a probe that fails costs throughput or
 * latency for one window).  Probes go up and down in turn. */
#define PROBE_HOLD 8u
static void adapt(struct sched *s, uint64_t thr)
{
  unsigned d = s->depth;

  if (!s->prev_depth || d == s->prev_depth) {
    s->prev_thr = thr;
    s->prev_depth = d;
    if (s->hold) {
      s->hold--;
      return;
    }
    bool down = s->probe_down && d > s->cfg.min_depth;
    if (!down && d >= s->cfg.max_depth)
      down = d > s->cfg.min_depth;
    s->depth = down ? shrunk(s, d) : grown(s, d);
    s->probe_down = !down;
    return;
  }
  bool keep = d > s->prev_depth ? thr * 100 >= s->prev_thr * 105 : thr * 100 >= s->prev_thr * 95;
  if (keep) {
    s->prev_thr = thr;
    s->prev_depth = d;
  } else {
    s->depth = s->prev_depth;
    s->hold = PROBE_HOLD;
  }
}

/* Fit the cost model to a saturated window: n requests and bytes done in
 * elapsed ns, which a saturated device spent entirely on them.  The ratio
 * of the fixed to the per-byte part stays the configured (or default)
 * one; the scale follows the device, a quarter of the way per window. */
static void estimate(struct sched *s, uint64_t elapsed)
{
  if (s->cfg.device_iops && s->cfg.device_bw)
    return;
  uint64_t model = s->win_n * s->t_req + ((s->win_bytes * s->t_byte16) >> 16);
  if (!model || !elapsed)
    return;
  uint64_t t_req = s->t_req * elapsed / model, t_byte16 = s->t_byte16 * elapsed / model;
  s->t_req = MAX(1u, (3 * s->t_req + t_req) / 4);
  s->t_byte16 = MAX(1u, (3 * s->t_byte16 + t_byte16) / 4);
}

/* The ceiling from a window of completions over elapsed ns: CEILING_MARGIN
 * times the requests the device completes, at the rate of the recent
 * past, in the time it serves one without a queue, and one more (at least
 * the minimum depth); rate and latency are per unit of cost, so that the
 * ceiling does not shrink when small requests (the lowest latency) mix
 * with large ones (most of the rate).  The rate counts only the windows in
 * which the bound held requests back (the device had all it could take).
 * A ceiling too low to keep the device busy shows it: the rate is then
 * what was in flight over a latency near the lowest, and the ceiling
 * CEILING_MARGIN times that.  A device whose latency varies much more than
 * that for the same cost (a disk's seeks) gets a ceiling lower than what
 * its own reordering could use. */
#define CEILING_MARGIN 4u
static void update_ceiling(struct sched *s, uint64_t elapsed)
{
  s->lat_lo = s->lat_lo ? (3 * s->lat_lo + s->win_lat_min) / 4 : s->win_lat_min;
  if (!s->win_full)
    return;   /* fewer requests than the bound: what they asked, not what the device can do */
  s->rate_cost += s->win_cost;
  s->rate_ns += elapsed;
  while (s->rate_ns > SCHED_RATE_NS) {
    s->rate_cost /= 2;
    s->rate_ns /= 2;
  }
  if (s->rate_ns < SCHED_RATE_NS / 2 || !s->lat_lo)
    return;   /* too short a past to say */
  uint64_t need = CEILING_MARGIN * (s->rate_cost / 1024) * s->lat_lo / s->rate_ns + 1;
  s->ceiling = (unsigned)MAX((uint64_t)s->cfg.min_depth, MIN(need, (uint64_t)s->cfg.max_depth));
}

#define EVEN_NS      100000000ull   /* levels are means over at least this long */
#define EVEN_IDLE_NS   2000000ull   /* a flow with nothing outstanding for this long has left */

/* At the end of a window of completions, EVEN_NS or more after the last
 * check: each flow's level, its mean cost outstanding per unit of weight
 * since then.  The flows still there (any outstanding now or within
 * EVEN_IDLE_NS) stand evenly when none has a reservation or a limit and
 * their levels are within an eighth of each other. */
static void even_check(struct sched *s, uint64_t now)
{
  uint64_t lo = UINT64_MAX, hi = 0, len = (now - MIN(now, s->even_since)) >> 10;
  bool special = false;

  for (struct sched_flow *f = s->flows; f; f = f->next) {
    bool gone = !f->out_cost && now - MIN(now, f->out_since) >= EVEN_IDLE_NS;
    outstanding(f, now, 0, 0);
    f->level = len ? f->out_area / len * SCHED_DEFAULT_WEIGHT / f->p.weight : 0;
    f->out_area = 0;
    if (!f->level || gone)
      continue;
    special |= f->special;
    lo = MIN(lo, f->level);
    hi = MAX(hi, f->level);
  }
  s->even = len && !special && hi && hi - lo <= lo / 8;
  s->even_lo = lo;
  s->even_hi = hi;
  s->even_since = now;
}

void sched_complete(struct sched *s, struct sched_req *r, uint64_t now)
{
  if (s->inflight)
    s->inflight--;
  if (s->inflight_dir[r->write])
    s->inflight_dir[r->write]--;
  if (r->flow && r->flow->s == s) {
    outstanding(r->flow, now, 0, r->cost);
    if (r->flow->inflight && !--r->flow->inflight && !r->flow->queued)
      s->nbusy--;
  }
  if (!s->win_n && !s->win_start)
    s->win_start = r->dispatch_ns;
  uint64_t lat = (now > r->dispatch_ns ? now - r->dispatch_ns : 1) * 1024 / MAX(1u, r->cost);
  if (!s->win_lat_min || lat < s->win_lat_min)
    s->win_lat_min = MAX(1u, lat);
  s->win_n++;
  s->win_bytes += r->bytes;
  s->win_cost += r->cost;
  if (s->win_n < MAX(WINDOW_MIN, 4 * s->depth))
    return;
  if (now > s->win_start) {
    uint64_t elapsed = now - s->win_start;
    if (!s->win_even)   /* a FIFO as deep as the flows' requests: latencies are its queue's */
      update_ceiling(s, elapsed);
    if (s->win_full)
      estimate(s, elapsed);
    /* the probe measures the depth: not the ceiling, nor flows without a
     * bound (what they keep outstanding is what is in flight then) */
    if (s->win_full && !s->win_capped && !s->win_alone && !s->win_even)
      adapt(s, window_thr(s, elapsed));
  }
  if (now - MIN(now, s->even_since) >= EVEN_NS)
    even_check(s, now);
  s->win_n = s->win_bytes = s->win_cost = s->win_lat_min = 0;
  s->win_full = s->win_capped = s->win_even = false;
  s->win_alone = s->alone;
  s->win_start = now;
}

uint64_t sched_flow_delay_quantile(const struct sched_flow *f, double q)
{
  uint64_t total = 0, seen = 0;
  for (unsigned i = 0; i < SCHED_HIST_BUCKETS; i++)
    total += f->st.delay_hist[i];
  if (!total)
    return 0;
  for (unsigned i = 0; i < SCHED_HIST_BUCKETS; i++) {
    seen += f->st.delay_hist[i];
    if ((double)seen >= q * (double)total)
      return i ? 2ull << i : 1;
  }
  return 2ull << (SCHED_HIST_BUCKETS - 1);
}
