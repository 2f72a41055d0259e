/* memtable.c: a VM's memory regions and bounded address translation. */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "common/checked.h"
#include "virtio/memtable.h"

void memtable_init(struct memtable *mt)
{
  memset(mt, 0, sizeof *mt);
}

__attribute__((format(printf, 4, 5)))
static int refuse(int rc, char *err, size_t errlen, const char *fmt, ...)
{
  va_list ap;

  if (err && errlen) {
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
  }
  return rc;
}

int memtable_check(const struct memtable *mt, const struct vu_mem_region *d, char *err, size_t errlen)
{
  uint64_t end;

  if (d->size == 0)
    return refuse(-EINVAL, err, errlen, "memory region at guest 0x%llx has size 0",
                  (unsigned long long)d->guest_addr);
  if (ck_add_overflow(d->guest_addr, d->size, &end) || ck_add_overflow(d->user_addr, d->size, &end)
      || ck_add_overflow(d->mmap_offset, d->size, &end))
    return refuse(-EINVAL, err, errlen,
                  "memory region guest 0x%llx user 0x%llx offset 0x%llx size 0x%llx wraps around",
                  (unsigned long long)d->guest_addr, (unsigned long long)d->user_addr,
                  (unsigned long long)d->mmap_offset, (unsigned long long)d->size);
  for (unsigned i = 0; i < mt->n; i++) {
    const struct mt_region *r = &mt->r[i];
    /* Both ends fit in 64 bits (checked when each was added). */
    if (d->guest_addr < r->gpa + r->size && r->gpa < d->guest_addr + d->size)
      return refuse(-EEXIST, err, errlen,
                    "memory region guest 0x%llx size 0x%llx overlaps guest 0x%llx size 0x%llx",
                    (unsigned long long)d->guest_addr, (unsigned long long)d->size,
                    (unsigned long long)r->gpa, (unsigned long long)r->size);
  }
  if (mt->n >= VU_MEM_SLOTS_MAX)
    return refuse(-ENOSPC, err, errlen, "memory table full (%d regions)", VU_MEM_SLOTS_MAX);
  return 0;
}

int memtable_add(struct memtable *mt, const struct vu_mem_region *d, void *host, void *map_base,
                 uint64_t map_len, char *err, size_t errlen)
{
  uintptr_t end;
  int rc;

  if ((rc = memtable_check(mt, d, err, errlen)) < 0)
    return rc;
  if (!host || d->size > UINTPTR_MAX || ck_add_overflow((uintptr_t)host, (uintptr_t)d->size, &end))
    return refuse(-EINVAL, err, errlen, "memory region of size 0x%llx mapped at %p wraps around",
                  (unsigned long long)d->size, host);
  mt->r[mt->n++] = (struct mt_region){
    .gpa = d->guest_addr, .size = d->size, .uaddr = d->user_addr, .mmap_offset = d->mmap_offset,
    .host = host, .map_base = map_base, .map_len = map_len,
  };
  return 0;
}

int memtable_remove(struct memtable *mt, const struct vu_mem_region *d, struct mt_region *out)
{
  for (unsigned i = 0; i < mt->n; i++) {
    struct mt_region *r = &mt->r[i];
    if (r->gpa == d->guest_addr && r->uaddr == d->user_addr && r->size == d->size) {
      if (out)
        *out = *r;
      mt->r[i] = mt->r[--mt->n];
      memset(&mt->r[mt->n], 0, sizeof mt->r[mt->n]);
      return 0;
    }
  }
  return -ENOENT;
}

void *memtable_gpa(const struct memtable *mt, uint64_t gpa, uint64_t *contig)
{
  for (unsigned i = 0; i < mt->n; i++) {
    const struct mt_region *r = &mt->r[i];
    if (gpa >= r->gpa && gpa - r->gpa < r->size) {
      *contig = r->size - (gpa - r->gpa);
      return r->host + (gpa - r->gpa);
    }
  }
  *contig = 0;
  return NULL;
}

void *memtable_gpa_range(const struct memtable *mt, uint64_t gpa, uint64_t len)
{
  uint64_t contig;
  void *p;

  if (len == 0)
    return NULL;
  p = memtable_gpa(mt, gpa, &contig);
  return p && len <= contig ? p : NULL;
}

void *memtable_uaddr_range(const struct memtable *mt, uint64_t uaddr, uint64_t len)
{
  if (len == 0)
    return NULL;
  for (unsigned i = 0; i < mt->n; i++) {
    const struct mt_region *r = &mt->r[i];
    if (uaddr >= r->uaddr && uaddr - r->uaddr < r->size)
      return len <= r->size - (uaddr - r->uaddr) ? r->host + (uaddr - r->uaddr) : NULL;
  }
  return NULL;
}
