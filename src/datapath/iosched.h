/* iosched.h: the I/O scheduler in front of one device.  Every export (and
 * vhost device) whose data live on one device shares one struct sched;
 * each source of requests (a connection, a client address, a VM) is a
 * struct sched_flow.  Requests wait in per-flow queues and the scheduler
 * decides which one enters the device next, with at most `depth` reads
 * and `depth` writes (and other commands) in flight, so that the order is
 * the scheduler's and not the device queue's; a direction of its own for
 * each, so that reads never wait for a slot held by writes that the device
 * holds back (a write cache that is full, a throttle's write budget).
 *
 * The model is mClock's (Gulati et al., OSDI 2010) with start-time fair
 * queuing for the shares:
 * - reservation: a flow with reserve_iops gets that many requests per
 *   second first, whenever it asks for them (tag R advances 1/reserve per
 *   request, served while R <= now);
 * - weight: the rest of the device is shared in proportion to the weights
 *   of the backlogged flows (start-time fair queuing over each request's
 *   cost: a fixed part plus a part per byte, writes weighted); an idle flow
 *   earns no credit, and what it does not use goes to the others at once
 *   (work-conserving);
 * - limits: limit_iops and limit_bw are ceilings (tags L advance 1/limit
 *   per request and bytes/limit_bw per request); a flow over its limit
 *   waits even when the device is idle.
 * `depth` adapts to the device: it grows while more requests in flight
 * bring more throughput, and shrinks when they only add latency.  While
 * two flows or more have requests queued or in flight, the requests in
 * flight are also bounded by `ceiling`: about four times what the device
 * completes in the time it takes to serve one request when it has no queue
 * (its completion rate over the last few hundred milliseconds times the
 * lowest latency it shows, both per unit of cost, so that a mix of small
 * and large requests counts right), so that the device stays busy and the requests
 * beyond that wait in the scheduler, where the order is the scheduler's,
 * and not in the device's own queue, where it is first come, first served.
 * A flow alone (no other flow busy for SCHED_ALONE_NS) is not held back,
 * up to the maximum depth: there is no order to keep, its requests would
 * only wait in the scheduler instead of the device, and a device whose
 * throughput grows with its queue (a remote store's round trips) would be
 * left underused.  The depth and the ceiling apply again as soon as a
 * second flow has a request; they keep adapting meanwhile (the estimate
 * of the device and the ceiling from windows in which the flow alone had
 * the depth or more in flight).  Flows that stand evenly get
 * the maximum depth: none with a reservation or a limit, and each with as much cost
 * outstanding (queued or in flight) per unit of weight, on average over
 * the last window of completions, within an eighth (closed loops of equal
 * weight, request size and queue depth, say).  The device's own FIFO then
 * gives each its weight share already (closed loops share a FIFO in
 * proportion to what each keeps outstanding), and holding requests back
 * would only cost wake-ups: completions come one at a time instead of in
 * batches.  A flow that does not stand as the others do (a new one, one
 * with twice the outstanding of the others, a QD 1 victim beside greedy
 * neighbours) brings the ceiling back at its submission or at the end of
 * the window.
 *
 * Pure code: no clock, no locks, no allocation.  Callers pass the time
 * (nanoseconds, any monotonic origin) and serialise calls on one sched.
 * Deterministic, so that tests run it on a virtual clock. */
#ifndef SHUNT_DATAPATH_IOSCHED_H
#define SHUNT_DATAPATH_IOSCHED_H

#include <stdbool.h>
#include <stdint.h>

#include "datapath/pheap.h"

#define SCHED_DEFAULT_WEIGHT 100u
#define SCHED_HIST_BUCKETS   40   /* log2 buckets of nanoseconds: up to ~18 minutes */
#define SCHED_RATE_NS  400000000ull   /* the completion rate is measured over 200 to 400 ms */
#define SCHED_ALONE_NS 100000000ull   /* a flow is alone 100 ms after another was last busy */
#define SCHED_HOMES    8           /* homes told apart (a request's home modulo this) */
#define SCHED_ANY_HOME 0xffffffffu /* sched_dispatch: no preference */

/* What a flow is entitled to (0: no reservation, no limit). */
struct sched_params {
  uint32_t weight;                /* share while backlogged; 0 is taken as the default */
  uint64_t reserve_iops;          /* requests per second it gets first, when it asks */
  uint64_t limit_iops;            /* requests per second at most */
  uint64_t limit_bw;              /* bytes per second at most */
};

/* The device: its capacity when known (0: estimated from completions) and
 * the bounds of the adaptive depth. */
struct sched_config {
  uint64_t device_iops;           /* small requests per second */
  uint64_t device_bw;             /* bytes per second */
  uint32_t write_cost_pct;        /* a write's cost in % of a read's (0: 100) */
  unsigned min_depth, max_depth;  /* 0: 2 and 256 */
};

struct sched_flow_stats {
  uint64_t requests, bytes;       /* dispatched */
  uint64_t reserved;              /* of which in the reservation phase */
  uint64_t throttled_ns;          /* time its head request waited for a limit */
  uint64_t delay_hist[SCHED_HIST_BUCKETS];   /* queue delay: bucket i holds [2^i, 2^(i+1)) ns (0 in 0) */
};

struct sched_flow;

/* One request, embedded in the caller's. */
struct sched_req {
  struct sched_req *next;         /* scheduler-internal: its flow's queue */
  struct sched_flow *flow;
  uint64_t bytes;
  uint64_t cost;                  /* for the shares: ns of device time in the configured (or default) model */
  uint64_t arrive_ns, dispatch_ns;
  bool write;
  bool reserved;                  /* dispatched in the reservation phase */
  unsigned home;                  /* set by the caller before sched_submit: where it runs (a worker), 0 if unused */
};

struct sched;

struct sched_flow {
  struct sched *s;
  struct sched_params p;
  struct sched_flow *next;        /* scheduler-internal: every flow of s */
  /* Scheduler-internal: where sched_dispatch finds it.  A flow with a
   * queued request and no limit is in the heap of its head's direction
   * and home, keyed by its finish tag; a flow with a reservation or a
   * limit is also on the list of flows looked at one by one (snext). */
  struct pheap_node hn;
  bool hn_write;                  /* the heap it is in: writes' (true) or reads' */
  unsigned hn_home;               /* ... of that home */
  bool special;                   /* on the list */
  struct sched_flow *snext;
  struct sched_req *head, **tail;
  unsigned queued, inflight;
  /* Tags (scheduler-internal): R and the limit tags in ns of real time,
   * finish in virtual time (cost x SCHED_WSCALE / weight). */
  uint64_t r_tag, l_iops_tag, l_bw_tag, finish;
  uint64_t head_since;            /* when the head request became head */
  /* Evenness (scheduler-internal): the cost of its requests queued or in
   * flight, since when, its integral over time (cost x 1024 ns) since the
   * last window's end, and its mean over that window per unit of weight
   * (0: none outstanding then). */
  uint64_t out_cost, out_since, out_area, level;
  uint64_t busy_since;            /* when its busy period began: a request arrived with none queued or in flight */
  struct sched_flow_stats st;
};

struct sched {
  struct sched_config cfg;
  struct sched_flow *flows;
  unsigned nflows;
  struct pheap share[2][SCHED_HOMES];   /* flows without a limit with a queued request, by their head's
                                         * direction (reads [0], writes and the rest [1]) and home */
  struct sched_flow *special;     /* flows with a reservation or a limit */
  unsigned nbusy;                 /* flows with requests queued or in flight */
  unsigned inflight, depth;
  unsigned ceiling;               /* the bound on inflight per direction while nbusy >= 2 and not even */
  bool contended, alone;          /* two flows were ever busy at once; one flow is alone now */
  uint64_t contended_ns;          /* when two flows were last seen busy at once */
  bool even;                      /* the flows stand evenly: the ceiling would order nothing */
  uint64_t even_lo, even_hi;      /* ... the lowest and highest of their levels */
  uint64_t even_since;            /* the flows' levels are measured from then */
  unsigned inflight_dir[2];       /* of inflight: reads [0], writes and the rest [1] */
  uint64_t queued;
  uint64_t vt;                    /* virtual time: the start tag last dispatched */
  /* Cost model (ns of device time): fixed per request, per byte in 1/65536 ns,
   * as estimated from the completions; and as configured (or the default),
   * the one the shares use: only the ratio of the two parts matters there,
   * and a scale that does not move keeps requests costed at different
   * times comparable (a device that serves in bursts swings the estimate). */
  uint64_t t_req, t_byte16;
  uint64_t share_t_req, share_t_byte16;
  /* Depth adaptation: a window of completions. */
  uint64_t win_start, win_n, win_bytes;   /* win_start 0: at the window's first completion */
  bool win_full;                  /* the depth (or the ceiling) was the limit during the window */
  bool win_capped;                /* the ceiling, below the depth, was */
  bool win_alone;                 /* a flow was alone (not held back) during the window */
  bool win_even;                  /* flows standing evenly went without a bound in it */
  uint64_t win_cost;              /* the costs (the shares' model) of the window's completions */
  uint64_t win_lat_min;           /* the window's lowest latency per cost, dispatch to completion (0: none) */
  /* The ceiling's inputs: the cost completed over the recent past (halved
   * as the time passes SCHED_RATE_NS) and the device's latency per cost
   * without a queue (the windows' lowest, smoothed), in 1/1024 ns per ns
   * of cost: the sizes of requests do not move it. */
  uint64_t rate_cost, rate_ns;
  uint64_t lat_lo;
  uint64_t prev_thr;              /* the kept depth's throughput (reference cost per us) */
  unsigned prev_depth;            /* the kept depth (0: none yet) */
  bool probe_down;                /* the next probe lowers the depth */
  unsigned hold;                  /* windows at the kept depth before the next probe */
};

/* Set s up for a device described by cfg (copied). */
void sched_init(struct sched *s, const struct sched_config *cfg);

/* Add flow f with parameters p (copied). */
void sched_flow_add(struct sched *s, struct sched_flow *f, const struct sched_params *p);

/* Change f's parameters; its queued requests keep their place. */
void sched_flow_set(struct sched_flow *f, const struct sched_params *p);

/* Remove f: it has no queued request (requests in flight may still
 * complete: sched_complete does not touch their flow). */
void sched_flow_remove(struct sched *s, struct sched_flow *f);

/* Take out of f's queue, at time now, the queued requests for which
 * match(r, arg) is true (every one when match is NULL): their source is
 * gone, they will never be dispatched.  The others keep their order and
 * their place.  Returns the requests taken, linked through next in queue
 * order (NULL: none).  Requests already dispatched are not touched. */
struct sched_req *sched_flow_cancel(struct sched *s, struct sched_flow *f,
                                    bool (*match)(const struct sched_req *r, void *arg), void *arg,
                                    uint64_t now);

/* Queue r (bytes long, a write or not) for flow f at time now. */
void sched_submit(struct sched *s, struct sched_flow *f, struct sched_req *r, uint64_t bytes, bool write,
                  uint64_t now);

/* The next request to send to the device at time now, out of its flow's
 * queue and counted in flight; NULL when the depth is reached or nothing
 * may go.  Then *wake (if wake is not NULL) is when to look again for the
 * requests held back by a limit: 5 ms after the earliest becomes eligible,
 * so that a few go at each look; 0 when none is held.
 * home is where the caller runs (SCHED_ANY_HOME: no preference): a flow
 * whose head request has that home goes first when its start tag is
 * within one of its own requests of the lowest, so that a request let in
 * by a completion tends to run where that completion ran, without waking
 * another worker.  The shares over time are the same (the flow served
 * early waits that much longer later); reservations take no preference. */
struct sched_req *sched_dispatch(struct sched *s, uint64_t now, uint64_t *wake, unsigned home);

/* r, dispatched, has completed at time now (its flow may be gone). */
void sched_complete(struct sched *s, struct sched_req *r, uint64_t now);

/* The queue delay below which a share q (0..1, e.g. 0.99) of f's
 * dispatched requests waited, from its histogram (the upper edge of the
 * bucket); 0 when none was dispatched. */
uint64_t sched_flow_delay_quantile(const struct sched_flow *f, double q);

#endif
