/* memtable.h: one VM's memory as the vhost-user front-end described it: the
 * regions (guest physical address, size, the front-end's user address, the
 * offset in the region's fd) and where this process mapped each one.
 * Translates guest physical addresses (descriptor buffers) and front-end
 * user addresses (ring addresses) to host pointers, with bounds: nothing
 * outside a region is ever returned.  Pure: the caller maps and unmaps; this
 * only records and checks (sizes are never trusted, all arithmetic is
 * overflow-checked).  Not locked: the caller keeps lookups and changes apart
 * (a queue stops before its VM's table changes). */
#ifndef SHUNT_VIRTIO_MEMTABLE_H
#define SHUNT_VIRTIO_MEMTABLE_H

#include <stddef.h>
#include <stdint.h>

#include "virtio/vhost_user.h"

/* One mapped region. */
struct mt_region {
  uint64_t gpa;          /* guest physical address of the first byte */
  uint64_t size;         /* bytes, > 0 */
  uint64_t uaddr;        /* the front-end's address of the first byte */
  uint64_t mmap_offset;  /* offset of the first byte in the region's fd */
  uint8_t *host;         /* this process's address of the first byte */
  void *map_base;        /* the caller's mapping (to unmap), opaque here */
  uint64_t map_len;
};

struct memtable {
  unsigned n;
  struct mt_region r[VU_MEM_SLOTS_MAX];
};

/* An empty table. */
void memtable_init(struct memtable *mt);

/* May region d be added to mt?  Checks before the caller maps anything: size
 * > 0; gpa + size, uaddr + size and mmap_offset + size do not overflow; the
 * guest range overlaps no region of mt; the table has room.  Returns 0, or
 * -EINVAL (bad region), -EEXIST (overlap), -ENOSPC (full), with a reason in
 * err (errlen bytes) when err is not NULL. */
int memtable_check(const struct memtable *mt, const struct vu_mem_region *d, char *err, size_t errlen);

/* Add region d, whose first byte the caller mapped at host (the mapping
 * itself being map_base/map_len, kept for the caller).  Checks as
 * memtable_check() does, and that host + size does not wrap; same returns. */
int memtable_add(struct memtable *mt, const struct vu_mem_region *d, void *host, void *map_base,
                 uint64_t map_len, char *err, size_t errlen);

/* Remove the region with d's guest address, user address and size (the
 * mmap offset is ignored, as REM_MEM_REG says).  Copies it to *out (for the
 * caller to unmap) and returns 0, or -ENOENT. */
int memtable_remove(struct memtable *mt, const struct vu_mem_region *d, struct mt_region *out);

/* The host address of guest physical address gpa, and in *contig how many
 * bytes from there lie in the same region (the most the caller may touch
 * before translating again).  NULL when gpa is in no region. */
void *memtable_gpa(const struct memtable *mt, uint64_t gpa, uint64_t *contig);

/* The host address of [gpa, gpa + len) when it lies in one region, else NULL
 * (len 0 is refused). */
void *memtable_gpa_range(const struct memtable *mt, uint64_t gpa, uint64_t len);

/* The host address of the front-end's [uaddr, uaddr + len) when it lies in
 * one region (ring addresses), else NULL (len 0 is refused). */
void *memtable_uaddr_range(const struct memtable *mt, uint64_t uaddr, uint64_t len);

#endif
