/* vhostfe_hostile.c: hostile guests and VMMs. Each kind sends one malformed chain or
 * message on a device set up as usual; the backend must answer the request with an error,
 * stop serving the ring, refuse the message, or close the connection. It must never accept
 * it, and it must survive: a fresh connection afterwards does verified I/O. */
#include "vhostfe.h"

#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

const char fe_hostile_kinds[] =
    "desc-oob desc-wrap desc-loop chain-long indirect-len indirect-nested indirect-oob "
    "avail-jump head-oob status-zero header-writable read-after-write "
    "msg-size msg-nofd msg-kick-nofd msg-unknown msg-oversize msg-vring-num msg-ring-addr "
    "mem-beyond-fd msg-mem-wrap inflight-beyond-fd";

/* Where a hostile run ended. An acknowledgement of success for a malformed message counts as
 * accepting it: the protocol's REPLY_ACK reports failure with a non-zero u64. */
enum outcome {
  OUT_IOERR,
  OUT_UNANSWERED,
  OUT_CLOSED,
  OUT_STOPPED,
  OUT_NACK,
  OUT_IGNORED,
  OUT_START_REFUSED,
  OUT_SURVIVED,
  OUT_ACCEPTED,
  OUT_GARBAGE,
  OUT_SETUP
};
static const char *const outcome_name[] = { "ioerr",
                                            "returned-without-status",
                                            "closed",
                                            "ring-stopped",
                                            "refused",
                                            "ignored",
                                            "refused-at-ring-start",
                                            "taken-harmlessly",
                                            "ACCEPTED",
                                            "USED-A-HEAD-NEVER-GIVEN",
                                            "setup-failed" };

struct hostile {
  struct fe_dev d;
  struct fe_vq *q;
  struct virtio_blk_outhdr *hdr;
  uint64_t hdr_gpa;
  uint8_t *status;
  uint64_t status_gpa;
  uint8_t *data;
  uint64_t data_gpa;
  struct vring_desc *table, *table2;
  uint64_t table_gpa, table2_gpa;
  uint64_t bad_gpa; /* an address no region holds */
};

static void desc(struct vring_desc *t, unsigned i, uint64_t addr, uint32_t len, uint16_t flags,
                 uint16_t next)
{
  t[i].addr = addr;
  t[i].len = len;
  t[i].flags = flags;
  t[i].next = next;
}

#define NEXT VRING_DESC_F_NEXT
#define WR   VRING_DESC_F_WRITE
#define IND  VRING_DESC_F_INDIRECT

/* Write the chain of KIND at descriptor 0 (and the tables); false for an unknown kind. */
static bool build_chain(struct hostile *h, const char *kind, uint32_t type)
{
  struct vring_desc *t = h->q->vr.desc;
  unsigned num = h->q->num;
  h->hdr->type = type;
  h->hdr->sector = 0;
  if (strcmp(kind, "desc-oob") == 0) {
    desc(t, 0, h->hdr_gpa, 16, NEXT, 1);
    desc(t, 1, h->bad_gpa, 4096, WR | NEXT, 2);
    desc(t, 2, h->status_gpa, 1, WR, 0);
  } else if (strcmp(kind, "desc-wrap") == 0) {
    desc(t, 0, h->hdr_gpa, 16, NEXT, 1);
    desc(t, 1, UINT64_MAX - 511, 4096, WR | NEXT, 2);
    desc(t, 2, h->status_gpa, 1, WR, 0);
  } else if (strcmp(kind, "desc-loop") == 0) {
    desc(t, 0, h->hdr_gpa, 16, NEXT, 1);
    desc(t, 1, h->data_gpa, 512, WR | NEXT, 2);
    desc(t, 2, h->data_gpa + 512, 512, WR | NEXT, 1);
  } else if (strcmp(kind, "chain-long") == 0) {
    unsigned n = 2 * num;
    desc(h->table, 0, h->hdr_gpa, 16, NEXT, 1);
    for (unsigned i = 1; i + 1 < n; i++)
      desc(h->table, i, h->data_gpa, 1, WR | NEXT, (uint16_t)(i + 1));
    desc(h->table, n - 1, h->status_gpa, 1, WR, 0);
    desc(t, 0, h->table_gpa, n * 16, IND, 0);
  } else if (strcmp(kind, "indirect-len") == 0) {
    desc(h->table, 0, h->hdr_gpa, 16, NEXT, 1);
    desc(h->table, 1, h->data_gpa, 512, WR | NEXT, 2);
    desc(h->table, 2, h->status_gpa, 1, WR, 0);
    desc(t, 0, h->table_gpa, 3 * 16 + 8, IND, 0);
  } else if (strcmp(kind, "indirect-nested") == 0) {
    desc(h->table2, 0, h->data_gpa, 512, WR, 0);
    desc(h->table, 0, h->hdr_gpa, 16, NEXT, 1);
    desc(h->table, 1, h->table2_gpa, 16, IND | NEXT, 2);
    desc(h->table, 2, h->status_gpa, 1, WR, 0);
    desc(t, 0, h->table_gpa, 3 * 16, IND, 0);
  } else if (strcmp(kind, "indirect-oob") == 0) {
    desc(t, 0, h->bad_gpa, 3 * 16, IND, 0);
  } else if (strcmp(kind, "status-zero") == 0) {
    desc(t, 0, h->hdr_gpa, 16, NEXT, 1);
    desc(t, 1, h->data_gpa, 4096, WR | NEXT, 2);
    desc(t, 2, h->status_gpa, 0, WR, 0);
  } else if (strcmp(kind, "header-writable") == 0) {
    desc(t, 0, h->hdr_gpa, 16, WR | NEXT, 1);
    desc(t, 1, h->data_gpa, 4096, WR | NEXT, 2);
    desc(t, 2, h->status_gpa, 1, WR, 0);
  } else if (strcmp(kind, "mem-beyond-fd") == 0) {
    /* the header in the announced part of the last region that no file page backs */
    const struct fe_region *last = &h->d.mem.r[h->d.mem.nregions - 1];
    desc(t, 0, last->gpa + last->size + 4096, 16, NEXT, 1);
    desc(t, 1, h->data_gpa, 4096, WR | NEXT, 2);
    desc(t, 2, h->status_gpa, 1, WR, 0);
  } else if (strcmp(kind, "read-after-write") == 0) {
    h->hdr->type = VIRTIO_BLK_T_OUT;
    desc(t, 0, h->hdr_gpa, 16, NEXT, 1);
    desc(t, 1, h->status_gpa, 1, WR | NEXT, 2);
    desc(t, 2, h->data_gpa, 4096, 0, 0);
  } else {
    return false;
  }
  return true;
}

/* After a hostile chain: how did the device react within WAIT_MS? */
static enum outcome watch_ring(struct hostile *h, int wait_ms)
{
  double end = fe_now() + wait_ms / 1000.0;
  for (;;) {
    if (__atomic_load_n(&h->q->vr.used->idx, __ATOMIC_ACQUIRE) != h->q->last_used) {
      /* read here, not with fe_vq_get_used(): the head may be one never made available */
      struct vring_used_elem e = h->q->vr.used->ring[h->q->last_used % h->q->num];
      if (e.id != 0 || !h->q->cookie[0]) {
        FE_ERR("the device used head %u, which was never made available", e.id);
        return OUT_GARBAGE;
      }
      if (*h->status == VIRTIO_BLK_S_OK)
        return OUT_ACCEPTED;
      return *h->status == 0xff ? OUT_UNANSWERED : OUT_IOERR;
    }
    int left = (int)((end - fe_now()) * 1000);
    if (left <= 0)
      return OUT_STOPPED;
    struct pollfd p[2] = { { h->q->call_fd, POLLIN, 0 }, { h->d.sock, POLLIN, 0 } };
    if (poll(p, 2, left < 100 ? left : 100) > 0) {
      uint64_t v;
      if (p[0].revents & POLLIN && read(p[0].fd, &v, sizeof(v)) < 0 && errno != EAGAIN)
        perror("vhostfe: call eventfd");
      if (p[1].revents && fe_wait_closed(&h->d, 0))
        return OUT_CLOSED;
    }
  }
}

static enum outcome ring_kind(struct hostile *h, const char *kind, int wait_ms)
{
  struct fe_vq *q = h->q;
  *h->status = 0xff;
  if (strcmp(kind, "avail-jump") == 0) {
    fe_vq_set_avail_idx(q, (uint16_t)(q->num + 5));
  } else if (strcmp(kind, "head-oob") == 0) {
    fe_vq_add_raw_head(q, (uint16_t)(q->num + 3));
    fe_vq_set_avail_idx(q, q->avail_idx);
  } else {
    if (!build_chain(h, kind, VIRTIO_BLK_T_IN))
      return OUT_SETUP;
    q->cookie[0] = h;
    q->chain_len[0] = 1;
    fe_vq_add_raw_head(q, 0);
    fe_vq_set_avail_idx(q, q->avail_idx);
  }
  fe_vq_kick(q);
  return watch_ring(h, wait_ms);
}

/* GET_VRING_BASE on ring 0, so that the ring's size and addresses may be set again (a
 * backend refuses to change a running ring, whatever the values). */
static int stop_ring(struct fe_dev *d)
{
  struct vhost_vring_state s = { 0, 0 };
  union vu_payload p;
  int r = fe_send(d, VU_GET_VRING_BASE, &s, sizeof(s), NULL, 0, false);
  if (r == 0)
    r = fe_recv(d, VU_GET_VRING_BASE, false, 0, &p, NULL);
  if (r != (int)sizeof(s)) {
    FE_ERR("GET_VRING_BASE before the hostile message: %s", r < 0 ? strerror(-r) : "bad size");
    return -1;
  }
  return 0;
}

/* The answer to a message sent with NEED_REPLY. */
static enum outcome ack_outcome(struct fe_dev *d, uint32_t req)
{
  union vu_payload p;
  int r = fe_recv(d, req, true, 0, &p, NULL);
  if (r == (int)sizeof(p.u64))
    return p.u64 ? OUT_NACK : OUT_ACCEPTED;
  if (r == -EPIPE || fe_wait_closed(d, 0))
    return OUT_CLOSED;
  return r == -ETIMEDOUT ? OUT_IGNORED : OUT_NACK;
}

/* A backend may take ring addresses as they come and translate them when the ring starts:
 * start ring 0 (new kick fd, then a kick). It must refuse, close, or never serve it. */
static enum outcome start_bad_ring(struct hostile *h)
{
  struct fe_dev *d = &h->d;
  uint64_t idx = 0;
  if (fe_send(d, VU_SET_VRING_KICK, &idx, sizeof(idx), &h->q->kick_fd, 1, true) < 0)
    return OUT_CLOSED;
  enum outcome out = ack_outcome(d, VU_SET_VRING_KICK);
  if (out == OUT_NACK || out == OUT_CLOSED)
    return out == OUT_NACK ? OUT_START_REFUSED : OUT_CLOSED;
  if (out != OUT_ACCEPTED)
    return out;
  fe_vq_kick(h->q);
  return fe_wait_closed(d, 1000) ? OUT_CLOSED : OUT_STOPPED;
}

/* Send a malformed message (asking for an ack when REPLY_ACK is on) and classify the answer. */
static enum outcome msg_kind(struct hostile *h, const char *kind)
{
  struct fe_dev *d = &h->d;
  bool ack = fe_has_pf(d, VU_PROTOCOL_F_REPLY_ACK);
  uint32_t req;
  int r;
  if (strcmp(kind, "msg-size") == 0) {
    uint32_t half = 0;
    req = VU_SET_VRING_NUM;
    r = fe_send(d, req, &half, sizeof(half), NULL, 0, ack);
  } else if (strcmp(kind, "msg-nofd") == 0) {
    struct vu_memory t = { .nregions = 1 };
    t.regions[0] = (struct vu_mem_region){ 0, d->mem.size, (uintptr_t)d->mem.base, 0 };
    req = VU_SET_MEM_TABLE;
    r = fe_send(d, req, &t, 8 + 32, NULL, 0, ack);
  } else if (strcmp(kind, "msg-kick-nofd") == 0) {
    uint64_t idx = 0;
    req = VU_SET_VRING_KICK;
    r = fe_send(d, req, &idx, sizeof(idx), NULL, 0, ack);
  } else if (strcmp(kind, "msg-unknown") == 0) {
    req = 999;
    r = fe_send(d, req, NULL, 0, NULL, 0, ack);
  } else if (strcmp(kind, "msg-oversize") == 0) {
    /* a header announcing 1 MiB of payload, then 64 bytes and silence */
    struct {
      struct vu_msg_hdr h;
      uint8_t junk[64];
    } m = { { VU_SET_MEM_TABLE, VU_VERSION, 1u << 20 }, { 0 } };
    req = VU_SET_MEM_TABLE;
    r = write(d->sock, &m, sizeof(m)) == (ssize_t)sizeof(m) ? 0 : -errno;
    ack = false;
  } else if (strcmp(kind, "msg-vring-num") == 0) {
    struct vhost_vring_state s = { 0, 3 };
    if (stop_ring(d) < 0)
      return OUT_SETUP;
    req = VU_SET_VRING_NUM;
    r = fe_send(d, req, &s, sizeof(s), NULL, 0, ack);
  } else if (strcmp(kind, "msg-ring-addr") == 0) {
    struct vhost_vring_addr a = { 0, 0, h->bad_gpa, h->bad_gpa, h->bad_gpa, 0 };
    if (stop_ring(d) < 0)
      return OUT_SETUP;
    req = VU_SET_VRING_ADDR;
    r = fe_send(d, req, &a, sizeof(a), NULL, 0, ack);
  } else if (strcmp(kind, "msg-mem-wrap") == 0) {
    /* one region whose guest addresses wrap around 2^64 */
    struct vu_memory t = { .nregions = 1 };
    t.regions[0] =
        (struct vu_mem_region){ UINT64_MAX - 65535, d->mem.size, (uintptr_t)d->mem.base, 0 };
    req = VU_SET_MEM_TABLE;
    r = fe_send(d, req, &t, 8 + 32, &d->mem.fd, 1, ack);
  } else {
    return OUT_SETUP;
  }
  if (r < 0)
    return r == -EPIPE || r == -ECONNRESET ? OUT_CLOSED : OUT_SETUP;
  if (!ack)
    return fe_wait_closed(d, d->o->timeout_s * 1000) ? OUT_CLOSED : OUT_IGNORED;
  enum outcome out = ack_outcome(d, req);
  if (out == OUT_ACCEPTED && req == VU_SET_VRING_ADDR)
    out = start_bad_ring(h);
  return out;
}

static bool is_kind(const char *kind)
{
  size_t n = strlen(kind);
  const char *p = fe_hostile_kinds;
  while ((p = strstr(p, kind))) {
    if ((p == fe_hostile_kinds || p[-1] == ' ') && (p[n] == ' ' || p[n] == 0))
      return true;
    p += n;
  }
  return false;
}

bool fe_process_alive(int pid)
{
  char path[64], buf[512];
  if (pid <= 0)
    return true;
  snprintf(path, sizeof(path), "/proc/%d/stat", pid);
  FILE *f = fopen(path, "r");
  if (!f)
    return false;
  size_t n = fread(buf, 1, sizeof(buf) - 1, f);
  fclose(f);
  buf[n] = 0;
  const char *p = strrchr(buf, ')');
  return p && p[1] == ' ' && p[2] != 'Z' && p[2] != 'X';
}

int fe_fresh_check(const struct fe_opts *o)
{
  struct fe_opts fo = *o;
  struct fe_dev d;
  fo.indirect = false;
  fo.inflight = false;
  fo.mem_slots = false;
  fo.queues = 1;
  if (fe_connect(&d, &fo) < 0)
    return -1;
  if (fe_setup(&d) < 0 || fe_smoke(&d) != 0) {
    fe_close(&d);
    return -1;
  }
  return fe_teardown(&d);
}

static int hostile_one(const struct fe_opts *o, const char *kind, int backend_pid)
{
  struct fe_opts ho = *o;
  struct hostile h;
  enum outcome out = OUT_SETUP;
  int wait_ms = 2000;
  bool msg = strncmp(kind, "msg-", 4) == 0;
  ho.queues = 1;
  ho.timeout_s = 2; /* the wait for a reaction; then "stopped" or "ignored" */
  if (strcmp(kind, "chain-long") == 0 || strncmp(kind, "indirect-", 9) == 0)
    ho.indirect = true;
  if (strcmp(kind, "mem-beyond-fd") == 0)
    ho.mem_claim_extra = 1 << 20; /* 1 MiB announced past the memfd's end */
  if (strcmp(kind, "inflight-beyond-fd") == 0) {
    ho.inflight = false;
    ho.inflight_lie = true;
  }
  if (fe_connect(&h.d, &ho) < 0)
    goto report;
  if (fe_setup(&h.d) < 0) {
    /* refusing the memory table or the inflight area is the right answer to these */
    if (ho.mem_claim_extra || ho.inflight_lie)
      out = fe_wait_closed(&h.d, 0) ? OUT_CLOSED : OUT_NACK;
    goto report;
  }
  if (ho.inflight_lie) {
    /* taken: requests must still be served, without the backend touching what no page backs */
    out = fe_smoke(&h.d) == 0 ? OUT_SURVIVED : fe_wait_closed(&h.d, 0) ? OUT_CLOSED : OUT_STOPPED;
    goto report;
  }
  h.q = &h.d.vq[0];
  h.hdr = fe_mem_alloc(&h.d.mem, 0, 16, 16, &h.hdr_gpa);
  h.status = fe_mem_alloc(&h.d.mem, 0, 1, 1, &h.status_gpa);
  h.data = fe_mem_alloc(&h.d.mem, 0, 4096, 4096, &h.data_gpa);
  h.table = fe_mem_alloc(&h.d.mem, 0, 32ull * h.q->num, 16, &h.table_gpa);
  h.table2 = fe_mem_alloc(&h.d.mem, 0, 64, 16, &h.table2_gpa);
  h.bad_gpa = fe_mem_gpa_end(&h.d.mem) + 65536;
  if (!h.hdr || !h.status || !h.data || !h.table || !h.table2)
    goto report;
  out = msg ? msg_kind(&h, kind) : ring_kind(&h, kind, wait_ms);
report:;
  if (h.d.sock >= 0 || h.d.mem.base)
    fe_close(&h.d);
  bool fresh = fe_fresh_check(o) == 0;
  bool alive = fe_process_alive(backend_pid); /* after the check: a crash takes a moment */
  bool ok = out != OUT_ACCEPTED && out != OUT_GARBAGE && out != OUT_SETUP && alive && fresh;
  if (out == OUT_ACCEPTED)
    FE_ERR("%s: the backend accepted it", kind);
  if (!alive)
    FE_ERR("%s: the backend (pid %d) is gone", kind, backend_pid);
  else if (!fresh)
    FE_ERR("%s: a fresh connection afterwards could not do verified I/O", kind);
  printf("{\"mode\":\"hostile\",\"kind\":\"%s\",\"result\":\"%s\",\"outcome\":\"%s\","
         "\"backend_alive\":%s,\"fresh_connection_verified\":%s}\n",
         kind, ok ? "ok" : "fail", outcome_name[out], alive ? "true" : "false",
         fresh ? "true" : "false");
  fflush(stdout);
  return ok ? 0 : 1;
}

int fe_hostile(const struct fe_opts *o, const char *kind, int backend_pid, uint64_t rounds)
{
  signal(SIGPIPE, SIG_IGN);
  if (strcmp(kind, "fuzz") == 0)
    return fe_fuzz(o, backend_pid, rounds);
  if (strcmp(kind, "all") == 0) {
    char list[sizeof(fe_hostile_kinds)];
    int rc = 0;
    strcpy(list, fe_hostile_kinds);
    for (char *save, *k = strtok_r(list, " ", &save); k; k = strtok_r(NULL, " ", &save))
      rc |= hostile_one(o, k, backend_pid);
    return rc;
  }
  if (!is_kind(kind)) {
    FE_ERR("unknown hostile kind %s; known: %s", kind, fe_hostile_kinds);
    return 2;
  }
  return hostile_one(o, kind, backend_pid);
}
