/* fuzz_vhost_msg.c: libFuzzer harness for the vhost-user message checks
 * (src/virtio/vhost_user.c) and the memory table the accepted messages build
 * (src/virtio/memtable.c).  Each message's payload is a separate allocation
 * of exactly the size its header says, so ASan sees a check that reads past
 * what was received.
 * Input: a stream of messages, each: 1 byte fd count (mod 10), the 12-byte
 * header (native byte order), then the payload (header size bytes, cut short
 * at the end of the input). */
#include <errno.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz_check.h"
#include "virtio/memtable.h"
#include "virtio/vhost_user.h"

/* No two regions overlap; each has a size and does not wrap. */
static void check_table(const struct memtable *mt)
{
  FUZZ_CHECK(mt->n <= VU_MEM_SLOTS_MAX);
  for (unsigned i = 0; i < mt->n; i++) {
    const struct mt_region *a = &mt->r[i];
    FUZZ_CHECK(a->size > 0 && a->gpa + a->size > a->gpa);
    for (unsigned j = i + 1; j < mt->n; j++) {
      const struct mt_region *b = &mt->r[j];
      FUZZ_CHECK(a->gpa + a->size <= b->gpa || b->gpa + b->size <= a->gpa);
    }
  }
}

/* Apply an accepted memory message; translate a few addresses it names. */
static void apply(struct memtable *mt, const struct vu_msg *m)
{
  /* A fake host address: never dereferenced, only range-checked. */
  void *fake = (void *)(uintptr_t)0x10000;
  uint64_t contig;

  switch (m->hdr.request) {
  case VU_SET_MEM_TABLE:
    memtable_init(mt);
    for (unsigned i = 0; i < m->payload.memory.nregions; i++)
      memtable_add(mt, &m->payload.memory.regions[i], fake, fake, 0, NULL, 0);
    break;
  case VU_ADD_MEM_REG:
    memtable_add(mt, &m->payload.mem_reg.region, fake, fake, 0, NULL, 0);
    break;
  case VU_REM_MEM_REG:
    memtable_remove(mt, &m->payload.mem_reg.region, NULL);
    break;
  case VU_SET_VRING_ADDR:
    memtable_uaddr_range(mt, m->payload.addr.desc_user_addr, 16);
    memtable_uaddr_range(mt, m->payload.addr.used_user_addr, 4 + 8 * 256);
    break;
  default:
    return;
  }
  check_table(mt);
  for (unsigned i = 0; i < mt->n; i++) {
    const struct mt_region *r = &mt->r[i];
    uint8_t *h = memtable_gpa(mt, r->gpa + r->size - 1, &contig);
    FUZZ_CHECK(h == r->host + r->size - 1 && contig == 1);
    FUZZ_CHECK(memtable_gpa_range(mt, r->gpa, r->size) == r->host);
  }
}

/* A message allocated to exactly its header and plen bytes of payload. */
static struct vu_msg *msg_new(const struct vu_msg_hdr *h, const uint8_t *payload, size_t plen)
{
  uint8_t *buf = malloc(offsetof(struct vu_msg, payload) + (plen ? plen : 1));

  FUZZ_CHECK(buf != NULL);
  memcpy(buf, h, sizeof *h);
  if (plen)
    memcpy(buf + offsetof(struct vu_msg, payload), payload, plen);
  return (struct vu_msg *)(void *)buf;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
  static struct memtable mt;
  char err[256];
  size_t off = 0;

  memtable_init(&mt);
  while (size - off >= 1 + VU_HDR_SIZE) {
    size_t nfds = data[off] % 10, plen;
    struct vu_msg_hdr h;
    struct vu_msg *m;
    int rc;

    memcpy(&h, data + off + 1, sizeof h);
    off += 1 + VU_HDR_SIZE;
    if (h.size > VU_MAX_PAYLOAD) {
      /* A receiver checks the header before reading the payload. */
      m = msg_new(&h, NULL, 0);
      err[0] = 0;
      rc = vu_msg_check(m, nfds, err, sizeof err);
      FUZZ_CHECK(rc == -EPROTO && err[0]);
      free(m);
      continue;
    }
    plen = h.size < size - off ? h.size : size - off;
    h.size = (uint32_t)plen;
    m = msg_new(&h, data + off, plen);
    off += plen;
    err[0] = 0;
    rc = vu_msg_check(m, nfds, err, sizeof err);
    FUZZ_CHECK(rc == 0 || rc == -EPROTO || rc == -EOPNOTSUPP);
    FUZZ_CHECK(rc == 0 || (err[0] && strlen(err) < sizeof err));
    if (rc == 0)
      apply(&mt, m);
    /* The same bytes as a reply to the request they name. */
    rc = vu_reply_check(h.request, h.flags & VU_FLAG_NEED_REPLY, h.size > 12 ? h.size - 12 : 0, m, nfds,
                        err, sizeof err);
    FUZZ_CHECK(rc == 0 || rc == -EPROTO);
    free(m);
  }
  return 0;
}
