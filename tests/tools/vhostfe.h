/* vhostfe.h: the in-tree vhost-user frontend (a small VMM for tests and benchmarks).
 * vhostfe_mem.c owns the memfd guest memory, vhostfe_ring.c the driver side of split rings,
 * vhostfe_conn.c the vhost-user messages and device setup, vhostfe_io.c the verified and
 * benchmark workloads, vhostfe_hostile.c the hostile modes, vhostfe.c the options. */
#ifndef VHOSTFE_H
#define VHOSTFE_H

#include <linux/virtio_blk.h>
#include <linux/virtio_ring.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "virtio/vhost_user.h"

#define FE_MAX_QUEUES  16
#define FE_MAX_REGIONS 8

/* ---- guest memory (vhostfe_mem.c) ---- */

struct fe_region {
  uint64_t gpa; /* guest physical address of the region's first byte */
  uint64_t size;
  uint64_t offset; /* offset in the memfd */
  uint8_t *host;   /* where this process sees it (also its "userspace address") */
  uint64_t used;   /* bump allocator: bytes handed out from the start */
};

struct fe_mem {
  int fd; /* the memfd shared with the backend */
  uint8_t *base;
  uint64_t size;
  unsigned nregions;
  struct fe_region r[FE_MAX_REGIONS];
};

/* Create SIZE bytes of shared memory split into NREGIONS regions whose guest physical
 * addresses are not contiguous. 0 or -errno. */
int fe_mem_init(struct fe_mem *m, uint64_t size, unsigned nregions);
void fe_mem_free(struct fe_mem *m);
/* Allocate LEN bytes aligned to ALIGN in region I (I wraps around the regions); returns the
 * host pointer and sets *GPA, or NULL when the region is full. */
void *fe_mem_alloc(struct fe_mem *m, unsigned i, uint64_t len, uint64_t align, uint64_t *gpa);
/* The guest physical address of host pointer P (which must lie in a region). */
uint64_t fe_mem_gpa(const struct fe_mem *m, const void *p);
/* The first guest physical address above every region. */
uint64_t fe_mem_gpa_end(const struct fe_mem *m);

/* ---- split virtqueue, driver side (vhostfe_ring.c) ---- */

struct fe_seg {
  uint64_t gpa;
  uint32_t len;
  bool writable; /* device-writable (VRING_DESC_F_WRITE) */
};

struct fe_vq {
  unsigned index;
  unsigned num;
  struct vring vr; /* desc, avail and used inside guest memory */
  bool event_idx;
  int kick_fd, call_fd;
  uint16_t avail_idx;  /* next avail index to publish */
  uint16_t kicked_idx; /* avail index at the last notification decision */
  uint16_t last_used;
  uint16_t free_head;
  unsigned nfree;
  uint16_t *next;      /* free list links, kept out of the shared table */
  uint16_t *chain_len; /* descriptors used by the chain whose head is i */
  void **cookie;       /* the caller's pointer per in-flight head */
};

/* Lay out a ring of NUM (a power of two) entries in region 0 of M. 0 or -errno. */
int fe_vq_init(struct fe_vq *q, struct fe_mem *m, unsigned index, unsigned num, bool event_idx);
void fe_vq_free(struct fe_vq *q);
/* Add a chain of N segments (indirect when TABLE is not NULL: TABLE/TABLE_GPA hold at least
 * N descriptors) with COOKIE; not visible to the device before fe_vq_publish().
 * 0, or -ENOSPC when the free descriptors do not suffice. */
int fe_vq_add(struct fe_vq *q, const struct fe_seg *segs, unsigned n, void *cookie,
              struct vring_desc *table, uint64_t table_gpa);
/* Make the added chains visible; true when the device wants a notification. */
bool fe_vq_publish(struct fe_vq *q);
/* Notify the device (write the kick eventfd). */
void fe_vq_kick(struct fe_vq *q);
/* The next used chain's cookie (and written length), or NULL when none is pending. */
void *fe_vq_get_used(struct fe_vq *q, uint32_t *len);
/* Ask for a call at the next used element; true if one is already pending. */
bool fe_vq_arm(struct fe_vq *q);
/* Place head HEAD in the avail ring without a chain of this driver (hostile modes). */
void fe_vq_add_raw_head(struct fe_vq *q, uint16_t head);
/* Set the published avail index to IDX directly (hostile modes). */
void fe_vq_set_avail_idx(struct fe_vq *q, uint16_t idx);

/* ---- the vhost-user connection (vhostfe_conn.c) ---- */

struct fe_opts {
  const char *socket;
  unsigned queues, queue_size, qd, regions;
  uint64_t mem_size;
  bool indirect, event_idx, inflight, mem_slots;
  bool assume_zero;         /* the disk starts zeroed: reads of unwritten sectors are verified */
  bool reconnect;           /* a closed connection is reconnected (fe_reconnect) */
  bool check_close;         /* a backend that closes the connection must have answered every
                             * chain it took (the inflight region says) */
  uint64_t mem_claim_extra; /* hostile: the last region is announced this much larger than
                             * the memfd holds */
  bool inflight_lie;        /* hostile: SET_INFLIGHT_FD announces 1 MiB of a 4 KiB memfd */
  uint64_t seed;
  int timeout_s; /* longest wait for a completion or a reply */
  bool verbose;
};

struct fe_dev {
  int sock;
  const struct fe_opts *o;
  uint64_t offered;        /* virtio features the backend offers */
  uint64_t features;       /* negotiated virtio features */
  uint64_t proto_features; /* negotiated protocol features */
  unsigned nqueues;
  struct virtio_blk_config cfg;
  uint64_t capacity; /* in 512-byte sectors */
  uint32_t blk_size, seg_max, size_max;
  struct fe_mem mem;
  struct fe_vq vq[FE_MAX_QUEUES];
  int inflight_fd;
  void *inflight;
  uint64_t inflight_size;
  struct vu_inflight inflight_desc; /* as GET_INFLIGHT_FD answered: sent again on reconnect */
  unsigned reconnects;
  unsigned closes_checked;  /* --check-close: closes with nothing taken left unanswered */
};

/* The chains the backend marked in flight in the inflight region (taken, not answered). */
unsigned fe_inflight_marked(const struct fe_dev *d);

static inline bool fe_has(const struct fe_dev *d, unsigned bit) { return d->features >> bit & 1; }
static inline bool fe_has_pf(const struct fe_dev *d, unsigned bit)
{
  return d->proto_features >> bit & 1;
}

/* Connect to the socket. 0 or -errno (message printed). */
int fe_connect(struct fe_dev *d, const struct fe_opts *o);
/* Negotiate, read the config, share memory, start every ring. 0 or -1 (message printed). */
int fe_setup(struct fe_dev *d);
/* After the backend closed the connection: connect again (retrying up to --timeout), negotiate
 * the same features, share the same memory and inflight area, restart every ring at its used
 * index (the backend resubmits what it had in flight) and kick. 0 or -1 (message printed). */
int fe_reconnect(struct fe_dev *d);
/* GET_VRING_BASE on every ring (checks it matches what was submitted), then close. 0 or -1. */
int fe_teardown(struct fe_dev *d);
/* Close without the orderly end (after the backend broke the device). */
void fe_close(struct fe_dev *d);

/* Send message REQ with payload and fds; NEED_REPLY sets the need-reply flag. 0 or -errno. */
int fe_send(struct fe_dev *d, uint32_t req, const void *payload, uint32_t size, const int *fds,
            unsigned nfds, bool need_reply);
/* Receive the reply to REQ (an acknowledgement when NEED_ACK; CONFIG_SIZE: the config bytes a
 * GET_CONFIG asked) into OUT, checked by vu_reply_check(). Its payload size or -errno (-EPIPE:
 * closed, -ETIMEDOUT, -EPROTO: malformed or not a reply to REQ, reason printed). *FD gets an
 * attached fd when FD is not NULL. */
int fe_recv(struct fe_dev *d, uint32_t req, bool need_ack, uint32_t config_size,
            union vu_payload *out, int *fd);
/* Wait up to MS milliseconds for the backend to close the connection: 1 closed, 0 not. */
int fe_wait_closed(struct fe_dev *d, int ms);

/* ---- workloads (vhostfe_io.c) ---- */

struct fe_verify_opts {
  uint64_t requests;
  uint32_t max_bs;
  bool expect_ro;
  unsigned min_reconnects; /* go on until this many reconnects, then 100 requests more */
  const char *ready_file;  /* created once the first request completed */
  const char *serial;      /* GET_ID must answer this (NULL: not checked) */
};

struct fe_bench_opts {
  const char *rw; /* randread, randwrite, read */
  uint32_t bs;
  uint64_t requests; /* 0: run for SECONDS */
  double seconds;
  int backend_pid; /* 0: no CPU figures */
};

/* Random verified I/O; prints the JSON summary. 0, or 1 after a mismatch or error. */
int fe_verify(struct fe_dev *d, const struct fe_verify_opts *v);
/* The benchmark loop; prints the JSON summary. 0 or 1. */
int fe_bench(struct fe_dev *d, const struct fe_bench_opts *b);
/* A short verified round trip (write, read back, compare) on a fresh device: 0 or 1. */
int fe_smoke(struct fe_dev *d);

/* ---- hostile modes (vhostfe_hostile.c) ---- */

/* Run hostile KIND against the socket, then check a fresh connection still does verified
 * I/O (and that BACKEND_PID, when not 0, lives). KIND "fuzz" runs fe_fuzz() for ROUNDS.
 * Prints the JSON summary; 0 or 1. */
int fe_hostile(const struct fe_opts *o, const char *kind, int backend_pid, uint64_t rounds);
/* ROUNDS fresh devices, each given random descriptor tables, indirect tables, request headers
 * and avail entries (vhostfe_fuzz.c); the backend must survive every round and then serve a
 * fresh connection with verified I/O. Prints the JSON summary; 0 or 1. */
int fe_fuzz(const struct fe_opts *o, int backend_pid, uint64_t rounds);
/* True when PID runs (it exists and is no zombie); true for PID 0 (nothing watched). */
bool fe_process_alive(int pid);
/* A fresh connection (one queue) that does a short verified write and read-back: 0 or -1. */
int fe_fresh_check(const struct fe_opts *o);
/* The known kinds, space-separated. */
extern const char fe_hostile_kinds[];

/* ---- small helpers (vhostfe.c) ---- */
uint64_t fe_rand(uint64_t *state);
double fe_now(void);
#define FE_ERR(...) (fprintf(stderr, "vhostfe: " __VA_ARGS__), fputc('\n', stderr))

#endif
