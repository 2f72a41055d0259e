/* vhostfe_mem.c: the test frontend's guest memory: one memfd mapped shared, split into
 * regions whose guest physical addresses leave holes between them (so that a backend's
 * address translation is exercised), with a bump allocator per region. */
#include "vhostfe.h"

#include <errno.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

/* The guest physical hole left after each region: addresses in it belong to no region. */
#define FE_GPA_HOLE (1ull << 30)

int fe_mem_init(struct fe_mem *m, uint64_t size, unsigned nregions)
{
  memset(m, 0, sizeof(*m));
  m->fd = -1;
  if (nregions == 0 || nregions > FE_MAX_REGIONS || size < nregions * 1048576ull)
    return -EINVAL;
  m->fd = memfd_create("vhostfe-guest", MFD_CLOEXEC);
  if (m->fd < 0)
    return -errno;
  if (ftruncate(m->fd, (off_t)size) < 0)
    goto fail;
  m->base = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, m->fd, 0);
  if (m->base == MAP_FAILED) {
    m->base = NULL;
    goto fail;
  }
  m->size = size;
  m->nregions = nregions;
  uint64_t per = (size / nregions) & ~4095ull, gpa = 0;
  for (unsigned i = 0; i < nregions; i++) {
    struct fe_region *r = &m->r[i];
    r->offset = i * per;
    r->size = i + 1 == nregions ? size - r->offset : per;
    r->host = m->base + r->offset;
    r->gpa = gpa;
    gpa += r->size + FE_GPA_HOLE;
  }
  return 0;
fail:;
  int e = -errno;
  close(m->fd);
  m->fd = -1;
  return e;
}

void fe_mem_free(struct fe_mem *m)
{
  if (m->base)
    munmap(m->base, m->size);
  if (m->fd >= 0)
    close(m->fd);
  m->base = NULL;
  m->fd = -1;
}

void *fe_mem_alloc(struct fe_mem *m, unsigned i, uint64_t len, uint64_t align, uint64_t *gpa)
{
  struct fe_region *r = &m->r[i % m->nregions];
  uint64_t at = (r->used + align - 1) / align * align;
  if (at > r->size || len > r->size - at)
    return NULL;
  r->used = at + len;
  *gpa = r->gpa + at;
  memset(r->host + at, 0, len);
  return r->host + at;
}

uint64_t fe_mem_gpa(const struct fe_mem *m, const void *p)
{
  const uint8_t *b = p;
  for (unsigned i = 0; i < m->nregions; i++)
    if (b >= m->r[i].host && b < m->r[i].host + m->r[i].size)
      return m->r[i].gpa + (uint64_t)(b - m->r[i].host);
  return UINT64_MAX;
}

uint64_t fe_mem_gpa_end(const struct fe_mem *m)
{
  const struct fe_region *r = &m->r[m->nregions - 1];
  return r->gpa + r->size;
}
