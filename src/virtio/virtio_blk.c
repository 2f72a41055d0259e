/* virtio_blk.c: virtio-blk requests parsed from a chain, the feature bits and
 * the configuration space. */
#include <endian.h>
#include <errno.h>
#include <string.h>

#include "common/checked.h"
#include "virtio/virtio_blk.h"

uint64_t vblk_features(const struct vblk_params *p)
{
  uint64_t f = VU_BIT(VIRTIO_F_VERSION_1) | VU_BIT(VIRTIO_RING_F_EVENT_IDX)
    | VU_BIT(VIRTIO_RING_F_INDIRECT_DESC) | VU_BIT(VIRTIO_BLK_F_SEG_MAX)
    | VU_BIT(VIRTIO_BLK_F_BLK_SIZE) | VU_BIT(VIRTIO_BLK_F_MQ);

  if (p->flush)
    f |= VU_BIT(VIRTIO_BLK_F_FLUSH);
  if (p->discard && !p->read_only)
    f |= VU_BIT(VIRTIO_BLK_F_DISCARD);
  if (p->write_zeroes && !p->read_only)
    f |= VU_BIT(VIRTIO_BLK_F_WRITE_ZEROES);
  if (p->read_only)
    f |= VU_BIT(VIRTIO_BLK_F_RO);
  return f;
}

void vblk_config_fill(const struct vblk_params *p, struct virtio_blk_config *cfg)
{
  memset(cfg, 0, sizeof *cfg);
  cfg->capacity = htole64(p->capacity);
  cfg->seg_max = htole32(p->seg_max);
  cfg->blk_size = htole32(p->blk_size);
  cfg->num_queues = htole16(p->num_queues);
  cfg->wce = p->flush ? 1 : 0;
  if (p->discard && !p->read_only) {
    cfg->max_discard_sectors = htole32(p->max_discard_sectors);
    cfg->max_discard_seg = htole32(p->max_discard_seg);
    cfg->discard_sector_alignment = htole32(p->blk_size / VBLK_SECTOR);
  }
  if (p->write_zeroes && !p->read_only) {
    cfg->max_write_zeroes_sectors = htole32(p->max_write_zeroes_sectors);
    cfg->max_write_zeroes_seg = htole32(p->max_write_zeroes_seg);
    cfg->write_zeroes_may_unmap = p->write_zeroes_may_unmap ? 1 : 0;
  }
}

/* Copy len bytes from iov[0..n) starting skip bytes in; returns the bytes
 * copied (fewer when the iovecs end first). */
static size_t iov_copy_out(const struct iovec *iov, unsigned n, uint64_t skip, void *dst, size_t len)
{
  uint8_t *d = dst;
  size_t done = 0;

  for (unsigned i = 0; i < n && done < len; i++) {
    size_t l = iov[i].iov_len;
    if (skip >= l) {
      skip -= l;
      continue;
    }
    l -= (size_t)skip;
    if (l > len - done)
      l = len - done;
    memcpy(d + done, (uint8_t *)iov[i].iov_base + skip, l);
    done += l;
    skip = 0;
  }
  return done;
}

/* Drop the first skip bytes of iov[0..*n): returns the first remaining iovec
 * (trimmed in place) and updates *n. */
static struct iovec *iov_skip(struct iovec *iov, unsigned *n, uint64_t skip)
{
  while (*n > 0 && skip >= iov->iov_len) {
    skip -= iov->iov_len;
    iov++;
    (*n)--;
  }
  if (*n > 0 && skip > 0) {
    iov->iov_base = (uint8_t *)iov->iov_base + skip;
    iov->iov_len -= (size_t)skip;
  }
  return iov;
}

/* Are [sector, sector + bytes / 512) inside the device and aligned to its
 * block size? */
static bool range_ok(const struct vblk_params *p, uint64_t sector, uint64_t bytes)
{
  uint32_t bs = p->blk_size >= VBLK_SECTOR ? p->blk_size : VBLK_SECTOR;

  if (bytes == 0 || bytes % bs || !is_aligned(sector, bs / VBLK_SECTOR))
    return false;
  return range_within(sector, bytes / VBLK_SECTOR, p->capacity);
}

static int parse_segments(const struct vblk_params *p, const struct iovec *iov, unsigned n_out,
                          uint64_t out_bytes, struct vblk_seg *segs, unsigned max_segs,
                          struct vblk_req *r)
{
  bool discard = r->type == VIRTIO_BLK_T_DISCARD;
  uint32_t max_seg = discard ? p->max_discard_seg : p->max_write_zeroes_seg;
  uint32_t max_sectors = discard ? p->max_discard_sectors : p->max_write_zeroes_sectors;
  uint64_t bytes = out_bytes - sizeof(struct virtio_blk_outhdr), n;

  if (discard ? !p->discard : !p->write_zeroes)
    return VIRTIO_BLK_S_UNSUPP;
  if (p->read_only)
    return VIRTIO_BLK_S_IOERR;
  n = bytes / sizeof(struct virtio_blk_discard_write_zeroes);
  if (bytes == 0 || bytes % sizeof(struct virtio_blk_discard_write_zeroes) || n > max_seg || n > max_segs)
    return VIRTIO_BLK_S_IOERR;
  for (unsigned i = 0; i < n; i++) {
    struct virtio_blk_discard_write_zeroes w;
    struct vblk_seg *s = &segs[i];

    iov_copy_out(iov, n_out, sizeof(struct virtio_blk_outhdr) + i * sizeof w, &w, sizeof w);
    s->sector = le64toh(w.sector);
    s->num_sectors = le32toh(w.num_sectors);
    s->flags = le32toh(w.flags);
    if (discard ? s->flags != 0 : (s->flags & ~VIRTIO_BLK_WRITE_ZEROES_FLAG_UNMAP) != 0)
      return VIRTIO_BLK_S_UNSUPP;
    if (s->num_sectors > max_sectors || !range_ok(p, s->sector, (uint64_t)s->num_sectors * VBLK_SECTOR))
      return VIRTIO_BLK_S_IOERR;
  }
  r->nseg = (unsigned)n;
  return VIRTIO_BLK_S_OK;
}

int vblk_parse(const struct vblk_params *p, struct iovec *iov, const struct vring_chain *c,
               struct vblk_seg *segs, unsigned max_segs, struct vblk_req *r)
{
  struct virtio_blk_outhdr h;
  struct iovec *last;
  unsigned n_out = c->n_out, n_in = c->n_in;

  memset(r, 0, sizeof *r);
  if (c->in_bytes == 0 || n_in == 0)
    return -EINVAL;
  /* The status byte: the last byte of the writable part. */
  last = &iov[n_out + n_in - 1];
  r->status = (uint8_t *)last->iov_base + last->iov_len - 1;
  last->iov_len--;
  if (last->iov_len == 0)
    n_in--;
  if (c->out_bytes < sizeof h)
    return VIRTIO_BLK_S_IOERR;
  iov_copy_out(iov, n_out, 0, &h, sizeof h);
  r->type = le32toh(h.type);
  r->sector = le64toh(h.sector);
  switch (r->type) {
  case VIRTIO_BLK_T_IN:
  case VIRTIO_BLK_T_GET_ID:
    r->data = &iov[n_out];
    r->ndata = n_in;
    r->len = c->in_bytes - 1;
    if (r->type == VIRTIO_BLK_T_GET_ID)
      return r->len > 0 ? VIRTIO_BLK_S_OK : VIRTIO_BLK_S_IOERR;
    return range_ok(p, r->sector, r->len) ? VIRTIO_BLK_S_OK : VIRTIO_BLK_S_IOERR;
  case VIRTIO_BLK_T_OUT:
    if (p->read_only)
      return VIRTIO_BLK_S_IOERR;
    r->ndata = n_out;
    r->data = iov_skip(iov, &r->ndata, sizeof h);
    r->len = c->out_bytes - sizeof h;
    return range_ok(p, r->sector, r->len) ? VIRTIO_BLK_S_OK : VIRTIO_BLK_S_IOERR;
  case VIRTIO_BLK_T_FLUSH:
    return p->flush ? VIRTIO_BLK_S_OK : VIRTIO_BLK_S_UNSUPP;
  case VIRTIO_BLK_T_DISCARD:
  case VIRTIO_BLK_T_WRITE_ZEROES:
    return parse_segments(p, iov, n_out, c->out_bytes, segs, max_segs, r);
  default:
    return VIRTIO_BLK_S_UNSUPP;
  }
}

uint32_t vblk_fill_id(const struct vblk_req *r, const char *serial)
{
  uint8_t id[VIRTIO_BLK_ID_BYTES] = { 0 };
  uint64_t want = r->len < sizeof id ? r->len : sizeof id;
  size_t done = 0;

  if (serial)
    memcpy(id, serial, strnlen(serial, sizeof id));
  for (unsigned i = 0; i < r->ndata && done < want; i++) {
    size_t l = r->data[i].iov_len < want - done ? r->data[i].iov_len : (size_t)(want - done);
    memcpy(r->data[i].iov_base, id + done, l);
    done += l;
  }
  return (uint32_t)done;
}

uint32_t vblk_used_len(const struct vblk_req *r, uint8_t status, uint32_t id_len)
{
  if (status != VIRTIO_BLK_S_OK)
    return 1;
  if (r->type == VIRTIO_BLK_T_IN)
    return r->len < UINT32_MAX ? (uint32_t)r->len + 1 : UINT32_MAX;
  if (r->type == VIRTIO_BLK_T_GET_ID)
    return id_len + 1;
  return 1;
}
