/* blkconfig.c: the virtio-blk device a source becomes (see blkconfig.h). */
#include <string.h>

#include "backend/backend.h"
#include "shunt/shunt.h"
#include "vhost/blkconfig.h"
#include "vhost/device.h"
#include "vhost/queue.h"
#include "vhost/remote.h"

void vhost_blk_params(const struct vdev *d, struct vblk_params *p)
{
  bool rw = !d->cfg->read_only, can_trim, can_zero, can_flush = true;

  if (d->remote) {
    const struct shunt_handle *h = d->remote[0].h;
    can_trim = shunt_get_flag(h, SHUNT_CAN_TRIM) == 1;
    can_zero = shunt_get_flag(h, SHUNT_CAN_ZERO) == 1;
    can_flush = shunt_get_flag(h, SHUNT_CAN_FLUSH) == 1;
  } else {
    can_trim = d->dx.backend->can_trim;
    can_zero = d->dx.backend->can_zero;
  }
  memset(p, 0, sizeof *p);
  p->capacity = d->size / VBLK_SECTOR;
  p->blk_size = d->blk_size;
  p->seg_max = VQ_SEG_MAX;
  p->num_queues = (uint16_t)d->nqueues;
  p->read_only = d->cfg->read_only;
  p->flush = can_flush;
  p->discard = d->cfg->discard && rw && can_trim;
  p->write_zeroes = d->cfg->discard && rw && can_zero;
  p->write_zeroes_may_unmap = p->write_zeroes && can_trim;
  p->max_discard_sectors = p->max_write_zeroes_sectors = VHOST_MAX_DISCARD_SECTORS;
  p->max_discard_seg = p->max_write_zeroes_seg = 1;
  p->serial = d->cfg->serial;
}

void vhost_blk_offer(const struct vdev *d, struct vu_handler_setup *offer)
{
  memset(offer, 0, sizeof *offer);
  offer->features = vblk_features(&d->blk) | VU_BIT(VU_F_PROTOCOL_FEATURES);
  offer->protocol_features = VU_BIT(VU_PROTOCOL_F_MQ) | VU_BIT(VU_PROTOCOL_F_REPLY_ACK) |
                             VU_BIT(VU_PROTOCOL_F_CONFIG) | VU_BIT(VU_PROTOCOL_F_INFLIGHT_SHMFD) |
                             VU_BIT(VU_PROTOCOL_F_CONFIGURE_MEM_SLOTS);
  offer->nqueues = d->nqueues;
  offer->max_mem_slots = VU_MEM_SLOTS_MAX;
}

size_t vhost_blk_config(const struct vdev *d, uint8_t *buf, size_t len)
{
  struct virtio_blk_config c;
  size_t n = sizeof c < len ? sizeof c : len;

  vblk_config_fill(&d->blk, &c);
  memcpy(buf, &c, n);
  return n;
}
