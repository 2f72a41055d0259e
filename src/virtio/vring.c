/* vring.c: split virtqueue, device side, on a VM's memory table.  Every value
 * read from the VM's memory is read once into a local and checked there. */
#include <endian.h>
#include <errno.h>
#include <stddef.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "common/checked.h"
#include "virtio/vring.h"

__attribute__((format(printf, 3, 4)))
static int vring_fail(struct vring_q *q, int rc, const char *fmt, ...)
{
  va_list ap;

  va_start(ap, fmt);
  vsnprintf(q->why, sizeof q->why, fmt, ap);
  va_end(ap);
  return rc;
}

/* Mark the queue broken: nothing more is popped from it. */
__attribute__((format(printf, 2, 3)))
static int vring_break(struct vring_q *q, const char *fmt, ...)
{
  va_list ap;

  va_start(ap, fmt);
  vsnprintf(q->why, sizeof q->why, fmt, ap);
  va_end(ap);
  q->broken = true;
  return -EIO;
}

static inline uint16_t load16(const uint16_t *p, int order)
{
  return le16toh(__atomic_load_n(p, order));
}

static inline void store16(uint16_t *p, uint16_t v, int order)
{
  __atomic_store_n(p, htole16(v), order);
}

/* The used_event field: after the available ring's num entries. */
static inline uint16_t *used_event_field(struct vring_q *q)
{
  return &q->avail->ring[q->num];
}

/* The avail_event field: after the used ring's num elements. */
static inline uint16_t *avail_event_field(struct vring_q *q)
{
  return (uint16_t *)(void *)((uint8_t *)q->used + offsetof(struct vring_used, ring)
                              + (size_t)q->num * sizeof(struct vring_used_elem));
}

static void *ring_part(const struct memtable *mt, uint64_t uaddr, uint64_t len, uint64_t align)
{
  void *p;

  if (!is_aligned(uaddr, align))
    return NULL;
  p = memtable_uaddr_range(mt, uaddr, len);
  return p && is_aligned((uintptr_t)p, align) ? p : NULL;
}

/* Translate the three ring parts of q (num, features and user addresses
 * set) on mt. */
static int map_rings(struct vring_q *q, const struct memtable *mt)
{
  uint64_t ev = q->event_idx ? sizeof(uint16_t) : 0;
  unsigned num = q->num;

  q->mt = mt;
  q->desc = ring_part(mt, q->desc_uaddr, (uint64_t)num * sizeof(struct vring_desc), 16);
  if (!q->desc)
    return vring_fail(q, -EINVAL, "descriptor table at 0x%llx (%u entries) is not 16-aligned inside one memory region",
                      (unsigned long long)q->desc_uaddr, num);
  q->avail = ring_part(mt, q->avail_uaddr, 4 + 2 * (uint64_t)num + ev, 2);
  if (!q->avail)
    return vring_fail(q, -EINVAL, "available ring at 0x%llx (%u entries) is not 2-aligned inside one memory region",
                      (unsigned long long)q->avail_uaddr, num);
  q->used = ring_part(mt, q->used_uaddr, 4 + 8 * (uint64_t)num + ev, 4);
  if (!q->used)
    return vring_fail(q, -EINVAL, "used ring at 0x%llx (%u entries) is not 4-aligned inside one memory region",
                      (unsigned long long)q->used_uaddr, num);
  return 0;
}

int vring_setup(struct vring_q *q, const struct memtable *mt, unsigned num, uint64_t desc_uaddr,
                uint64_t avail_uaddr, uint64_t used_uaddr, uint64_t features, uint16_t base)
{
  int rc;

  memset(q, 0, sizeof *q);
  q->mt = mt;
  if (num == 0 || num > VU_QUEUE_SIZE_MAX || (num & (num - 1)))
    return vring_fail(q, -EINVAL, "queue size %u is not a power of two from 1 to %u", num,
                      VU_QUEUE_SIZE_MAX);
  q->num = (uint16_t)num;   /* 32768 fits; "% num" below is on unsigned */
  q->event_idx = features & VU_BIT(VIRTIO_RING_F_EVENT_IDX);
  q->indirect = features & VU_BIT(VIRTIO_RING_F_INDIRECT_DESC);
  q->desc_uaddr = desc_uaddr;
  q->avail_uaddr = avail_uaddr;
  q->used_uaddr = used_uaddr;
  if ((rc = map_rings(q, mt)) < 0)
    return rc;
  q->last_avail = base;
  q->used_idx = load16(&q->used->idx, __ATOMIC_ACQUIRE);
  return 0;
}

int vring_remap(struct vring_q *q, const struct memtable *mt)
{
  if (map_rings(q, mt) < 0) {
    q->desc = NULL;
    q->avail = NULL;
    q->used = NULL;
    q->broken = true;
    return -EIO;
  }
  return 0;
}

/* Where the descriptors of a chain are read from: the queue's table or an
 * indirect one, both host memory of size entries. */
struct desc_table {
  const struct vring_desc *d;
  unsigned size;
  bool indirect;
};

/* Append guest buffer [addr, addr + len) to iov, split at region boundaries. */
static int add_buffer(struct vring_q *q, uint64_t addr, uint32_t len, struct iovec *iov,
                      unsigned max_iov, unsigned *niov)
{
  uint64_t left = len, a = addr;

  while (left > 0) {
    uint64_t contig, chunk;
    void *p = memtable_gpa(q->mt, a, &contig);
    if (!p)
      return vring_fail(q, -EINVAL, "buffer at guest 0x%llx length %u is outside the VM's memory",
                        (unsigned long long)addr, len);
    if (*niov == max_iov)
      return vring_fail(q, -EINVAL, "chain needs more than %u segments", max_iov);
    chunk = left < contig ? left : contig;
    iov[*niov].iov_base = p;
    iov[*niov].iov_len = (size_t)chunk;
    (*niov)++;
    a += chunk;   /* inside a region, whose end does not wrap */
    left -= chunk;
  }
  return 0;
}

/* A chain's last writable descriptor (host byte order). */
struct last_writable {
  uint64_t addr;
  uint32_t len;
};

/* Walk the chain from head, filling iov and c.  With iov NULL, only the
 * chain's structure is checked (no buffer is translated, no bound applies)
 * and *last_w gets the last writable descriptor's address and length. */
static int walk_chain(struct vring_q *q, uint16_t head, struct iovec *iov, unsigned max_iov,
                      uint64_t max_bytes, struct vring_chain *c, struct last_writable *last_w)
{
  struct desc_table t = { q->desc, q->num, false };
  unsigned i = head, count = 0, niov = 0;
  bool writable = false;
  uint64_t total = 0;
  int rc;

  for (;;) {
    struct vring_desc d;
    uint16_t flags;
    uint32_t len;
    uint64_t addr;

    if (count++ >= t.size)
      return vring_fail(q, -EINVAL, "chain from head %u is longer than its %s table (%u entries): a loop",
                        head, t.indirect ? "indirect" : "descriptor", t.size);
    memcpy(&d, &t.d[i], sizeof d);
    __atomic_signal_fence(__ATOMIC_SEQ_CST);   /* d is a copy: never re-read */
    flags = le16toh(d.flags);
    len = le32toh(d.len);
    addr = le64toh(d.addr);
    if (flags & VRING_DESC_F_INDIRECT) {
      if (t.indirect)
        return vring_fail(q, -EINVAL, "chain from head %u: indirect descriptor inside an indirect table", head);
      if (!q->indirect)
        return vring_fail(q, -EINVAL, "chain from head %u: indirect descriptor, feature not negotiated", head);
      if (count != 1 || (flags & VRING_DESC_F_NEXT))
        return vring_fail(q, -EINVAL, "chain from head %u: indirect descriptor not alone in the chain", head);
      if (len == 0 || len % sizeof(struct vring_desc) || len / sizeof(struct vring_desc) > VU_QUEUE_SIZE_MAX)
        return vring_fail(q, -EINVAL, "chain from head %u: indirect table of %u bytes", head, len);
      t.d = memtable_gpa_range(q->mt, addr, len);
      if (!t.d || !is_aligned((uintptr_t)t.d, _Alignof(struct vring_desc)))
        return vring_fail(q, -EINVAL, "chain from head %u: indirect table at guest 0x%llx length %u is not inside one memory region",
                          head, (unsigned long long)addr, len);
      t.size = len / sizeof(struct vring_desc);
      t.indirect = true;
      i = 0;
      count = 0;
      continue;
    }
    if (flags & VRING_DESC_F_WRITE) {
      writable = true;
    } else if (writable) {
      return vring_fail(q, -EINVAL, "chain from head %u: readable descriptor after a writable one", head);
    }
    if (!iov) {
      if (flags & VRING_DESC_F_WRITE) {
        last_w->addr = addr;
        last_w->len = len;
      }
    } else {
      unsigned before = niov;
      if (ck_add_overflow(total, (uint64_t)len, &total) || total > max_bytes)
        return vring_fail(q, -EINVAL, "chain from head %u: more than %llu bytes", head,
                          (unsigned long long)max_bytes);
      if ((rc = add_buffer(q, addr, len, iov, max_iov, &niov)) < 0)
        return rc;
      if (flags & VRING_DESC_F_WRITE) {
        c->n_in += niov - before;
        c->in_bytes += len;
      } else {
        c->n_out += niov - before;
        c->out_bytes += len;
      }
    }
    if (!(flags & VRING_DESC_F_NEXT))
      return 0;
    i = le16toh(d.next);
    if (i >= t.size)
      return vring_fail(q, -EINVAL, "chain from head %u: next index %u past its table (%u entries)",
                        head, i, t.size);
  }
}

/* The chain from head into iov and c (vring_pop, vring_chain_at): 1, or
 * -errno with c holding no buffers. */
static int take_chain(struct vring_q *q, uint16_t head, struct iovec *iov, unsigned max_iov,
                      uint64_t max_bytes, struct vring_chain *c)
{
  int rc = walk_chain(q, head, iov, max_iov, max_bytes, c, NULL);

  if (rc < 0) {
    c->n_out = c->n_in = 0;
    c->out_bytes = c->in_bytes = 0;
    return rc;
  }
  return 1;
}

/* Available entries not yet popped; breaks the queue when the driver's index
 * jumped by more than the queue size. */
static int avail_pending(struct vring_q *q)
{
  uint16_t idx = load16(&q->avail->idx, __ATOMIC_ACQUIRE);
  uint16_t n = (uint16_t)(idx - q->last_avail);

  if (n > q->num)
    return vring_break(q, "available index jumped from %u to %u (queue size %u)", q->last_avail,
                       idx, q->num);
  return n;
}

int vring_pop(struct vring_q *q, struct iovec *iov, unsigned max_iov, uint64_t max_bytes,
              struct vring_chain *c)
{
  uint16_t head;
  int n;

  memset(c, 0, sizeof *c);
  if (q->broken)
    return -EIO;
  if ((n = avail_pending(q)) <= 0)
    return n;
  head = le16toh(__atomic_load_n(&q->avail->ring[q->last_avail % q->num], __ATOMIC_RELAXED));
  if (head >= q->num)
    return vring_break(q, "available entry %u names head %u (queue size %u)", q->last_avail, head,
                       q->num);
  q->last_avail++;
  c->head = head;
  return take_chain(q, head, iov, max_iov, max_bytes, c);
}

int vring_chain_at(struct vring_q *q, uint16_t head, struct iovec *iov, unsigned max_iov,
                   uint64_t max_bytes, struct vring_chain *c)
{
  memset(c, 0, sizeof *c);
  c->head = head;
  if (q->broken)
    return -EIO;
  if (head >= q->num)
    return vring_fail(q, -EINVAL, "resubmitted head %u past the queue (size %u)", head, q->num);
  return take_chain(q, head, iov, max_iov, max_bytes, c);
}

uint8_t *vring_chain_last_writable(struct vring_q *q, uint16_t head)
{
  struct last_writable last = { 0, 0 };
  struct vring_chain c;
  char why[sizeof q->why];
  uint8_t *p = NULL;
  uint64_t end;

  if (q->broken || head >= q->num)
    return NULL;
  memcpy(why, q->why, sizeof why);   /* keep the reason the chain failed */
  memset(&c, 0, sizeof c);
  if (walk_chain(q, head, NULL, 0, 0, &c, &last) == 0 && last.len > 0
      && !ck_add_overflow(last.addr, (uint64_t)last.len - 1, &end))
    p = memtable_gpa_range(q->mt, end, 1);
  memcpy(q->why, why, sizeof why);
  return p;
}

void vring_push(struct vring_q *q, uint16_t head, uint32_t len)
{
  struct vring_used_elem *e;

  if (!q->used)   /* rings gone (vring_remap() failed) */
    return;
  e = &q->used->ring[q->used_idx % q->num];
  __atomic_store_n(&e->id, htole32((uint32_t)head), __ATOMIC_RELAXED);
  __atomic_store_n(&e->len, htole32(len), __ATOMIC_RELAXED);
  q->used_idx++;
  store16(&q->used->idx, q->used_idx, __ATOMIC_RELEASE);
}

bool vring_need_notify(struct vring_q *q)
{
  uint16_t old = q->signalled_used, cur = q->used_idx;
  bool valid = q->signalled_valid;

  if (!q->avail)
    return false;
  /* The used index published above must be visible before the driver's
   * event index or flags are read (the driver does the mirror image). */
  __atomic_thread_fence(__ATOMIC_SEQ_CST);
  if (!q->event_idx)
    return !(load16(&q->avail->flags, __ATOMIC_RELAXED) & VRING_AVAIL_F_NO_INTERRUPT);
  q->signalled_used = cur;
  q->signalled_valid = true;
  if (!valid)
    return true;
  return vring_need_event(load16(used_event_field(q), __ATOMIC_RELAXED), cur, old);
}

bool vring_kick_enable(struct vring_q *q)
{
  if (q->broken)
    return false;
  if (q->event_idx) {
    store16(avail_event_field(q), q->last_avail, __ATOMIC_RELAXED);
  } else {
    uint16_t f = load16(&q->used->flags, __ATOMIC_RELAXED);
    store16(&q->used->flags, (uint16_t)(f & ~VRING_USED_F_NO_NOTIFY), __ATOMIC_RELAXED);
  }
  /* The request for kicks must be visible before the index is read again. */
  __atomic_thread_fence(__ATOMIC_SEQ_CST);
  return vring_avail_count(q) > 0;
}

void vring_kick_disable(struct vring_q *q)
{
  if (!q->broken && !q->event_idx) {
    uint16_t f = load16(&q->used->flags, __ATOMIC_RELAXED);
    store16(&q->used->flags, (uint16_t)(f | VRING_USED_F_NO_NOTIFY), __ATOMIC_RELAXED);
  }
}

unsigned vring_avail_count(struct vring_q *q)
{
  int n;

  if (q->broken)
    return 0;
  n = avail_pending(q);
  return n > 0 ? (unsigned)n : 0;
}
