/* blkconfig.h: what a device offers the frontend: its virtio-blk
 * parameters (virtio/virtio_blk.h: capacity, block size, seg_max, queues,
 * flush, discard and write-zeroes limits, serial), the feature bits and
 * config space made from them, and the vhost-user protocol features. */
#ifndef SHUNT_VHOST_BLKCONFIG_H
#define SHUNT_VHOST_BLKCONFIG_H

#include <stddef.h>
#include <stdint.h>

#include "vhost/vu_handler.h"
#include "virtio/virtio_blk.h"

struct vdev;

/* The largest DISCARD / WRITE_ZEROES one request may ask (sectors). */
#define VHOST_MAX_DISCARD_SECTORS (UINT32_C(1) << 22)   /* 2 GiB */

/* d's virtio-blk parameters, from its configuration and source (d->dx open). */
void vhost_blk_params(const struct vdev *d, struct vblk_params *p);

/* Fill *offer for device d. */
void vhost_blk_offer(const struct vdev *d, struct vu_handler_setup *offer);

/* d's config space (struct virtio_blk_config, little-endian) into buf;
 * returns its size (at most len). */
size_t vhost_blk_config(const struct vdev *d, uint8_t *buf, size_t len);

#endif
