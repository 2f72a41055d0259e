/* virtio_blk.h: virtio-blk on top of a popped chain (virtio 1.x "Block
 * Device"): the request header (copied out, it may span descriptors), the
 * data segments, the status byte (the last byte of the writable part), the
 * discard/write-zeroes segment list, GET_ID; the features offered and the
 * configuration space.  Every value the driver wrote is checked against the
 * device's limits before the caller may act on it.  Pure: the caller runs the
 * I/O and pushes the used element. */
#ifndef SHUNT_VIRTIO_VIRTIO_BLK_H
#define SHUNT_VIRTIO_VIRTIO_BLK_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/uio.h>

#include "virtio/vring.h"

#define VBLK_SECTOR 512u

/* What the device is: its size and limits, fixed for its lifetime. */
struct vblk_params {
  uint64_t capacity;                 /* in 512-byte sectors */
  uint32_t blk_size;                 /* logical block size: a power of two >= 512 */
  uint32_t seg_max;                  /* data segments per request (config seg_max) */
  uint16_t num_queues;
  bool read_only;                    /* VIRTIO_BLK_F_RO: OUT, DISCARD, WRITE_ZEROES fail */
  bool flush;                        /* VIRTIO_BLK_F_FLUSH */
  bool discard;                      /* VIRTIO_BLK_F_DISCARD */
  bool write_zeroes;                 /* VIRTIO_BLK_F_WRITE_ZEROES */
  bool write_zeroes_may_unmap;
  uint32_t max_discard_sectors, max_discard_seg;
  uint32_t max_write_zeroes_sectors, max_write_zeroes_seg;
  const char *serial;                /* GET_ID answer (at most 20 bytes used), or NULL */
};

/* The device feature bits offered for p (virtio-blk and ring bits, VERSION_1;
 * not the vhost-user protocol bit): VERSION_1, RING_EVENT_IDX,
 * RING_INDIRECT_DESC, SEG_MAX, BLK_SIZE, MQ, and FLUSH, DISCARD,
 * WRITE_ZEROES, RO as p says. */
uint64_t vblk_features(const struct vblk_params *p);

/* Fill cfg (little-endian, as the driver reads it) from p: capacity, seg_max,
 * blk_size, num_queues, the discard and write-zeroes limits (discard
 * alignment = blk_size), write_zeroes_may_unmap; wce = 1 when p->flush. */
void vblk_config_fill(const struct vblk_params *p, struct virtio_blk_config *cfg);

/* One discard or write-zeroes segment, host byte order, checked. */
struct vblk_seg {
  uint64_t sector;
  uint32_t num_sectors;
  uint32_t flags;          /* VIRTIO_BLK_WRITE_ZEROES_FLAG_UNMAP or 0 */
};

/* A parsed request. */
struct vblk_req {
  uint32_t type;           /* VIRTIO_BLK_T_* */
  uint64_t sector;         /* IN/OUT: the first sector */
  struct iovec *data;      /* IN, GET_ID: the writable part without the status
                            * byte; OUT: the readable part after the header */
  unsigned ndata;
  uint64_t len;            /* bytes in data */
  uint8_t *status;         /* where the status byte goes (host memory) */
  unsigned nseg;           /* DISCARD, WRITE_ZEROES: segments in the caller's array */
};

/* Parse the chain c (its iovecs iov, as vring_pop() returned them; they are
 * trimmed in place: data points into iov) as a request to device p.
 * DISCARD/WRITE_ZEROES segments are copied into segs[0..max_segs).
 * Returns:
 *   -EINVAL             no status byte (no writable byte, or a header shorter
 *                       than 16 bytes with none): nothing can be answered,
 *                       push the chain with length 0;
 *   VIRTIO_BLK_S_OK     r is valid: run it, then write the status;
 *   VIRTIO_BLK_S_IOERR  malformed or outside the device (data not a multiple
 *                       of the block size, past the capacity, a write to a
 *                       read-only device, too many segments...): write it
 *                       at r->status and push;
 *   VIRTIO_BLK_S_UNSUPP a type or flag the device does not offer: likewise. */
int vblk_parse(const struct vblk_params *p, struct iovec *iov, const struct vring_chain *c,
               struct vblk_seg *segs, unsigned max_segs, struct vblk_req *r);

/* GET_ID: write the serial (zero-padded to the 20 bytes of
 * VIRTIO_BLK_ID_BYTES, cut to the data's length) into r's data; returns the
 * bytes written. */
uint32_t vblk_fill_id(const struct vblk_req *r, const char *serial);

/* The used length for r completed with status (the bytes written to the
 * writable part): data + 1 for a successful IN, id bytes + 1 for GET_ID,
 * else 1. */
uint32_t vblk_used_len(const struct vblk_req *r, uint8_t status, uint32_t id_len);

/* Write the status byte (before the used element is pushed). */
static inline void vblk_set_status(const struct vblk_req *r, uint8_t status)
{
  *r->status = status;
}

#endif
