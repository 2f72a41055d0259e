/* rxbuf.c: a connection's receive buffers (see rxbuf.h).  In transmission
 * without TLS a small WRITE waits until its whole payload is in the buffer
 * and is executed from there, so it costs two copies per byte: recv(2) into
 * the buffer and the backend write.  Parsing goes on behind pinned requests;
 * a buffer is never compacted under them. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "server/rxbuf.h"

static struct rxbuf *rxbuf_alloc(struct rxbufs *rx)
{
  struct rxbuf *b = rx->nspare ? rx->spare[--rx->nspare] : malloc(sizeof *b + RXBUF_SIZE);
  if (b) {
    b->refs = 0;
    b->retired = false;
  }
  return b;
}

static void rxbuf_recycle(struct rxbufs *rx, struct rxbuf *b)
{
  if (rx->nspare < RXBUF_SPARES)
    rx->spare[rx->nspare++] = b;
  else
    free(b);
}

int rxbuf_init(struct rxbufs *rx)
{
  *rx = (struct rxbufs){ 0 };
  rx->cur = rxbuf_alloc(rx);
  return rx->cur ? 0 : -ENOMEM;
}

void rxbuf_fini(struct rxbufs *rx)
{
  free(rx->cur);
  rx->cur = NULL;
  while (rx->nspare)
    free(rx->spare[--rx->nspare]);
}

/* Start over in this buffer or a fresh one when everything in it is parsed
 * and too little room is left.  Returns 0, 1 (retired), or -errno. */
static int rxbuf_make_room(struct rxbufs *rx)
{
  struct rxbuf *b;

  if (rx->start < rx->end)
    return rx->start + rx->need <= RXBUF_SIZE ? 0 : -ENOSPC;   /* fits (always: see rxbuf.h) */
  if (rx->cur->refs == 0) {
    rx->start = rx->end = 0;
    return 0;
  }
  if (rx->end + RXBUF_UNIT_MAX <= RXBUF_CAP)
    return 0;   /* room for more behind the pinned requests */
  if (!(b = rxbuf_alloc(rx)))
    return -ENOMEM;
  rx->cur->retired = true;
  rx->cur = b;
  rx->start = rx->end = 0;
  return 1;
}

int rxbuf_recv_space(struct rxbufs *rx, bool in_place, void **buf, size_t *len)
{
  size_t end = RXBUF_CAP;
  int r = 0;

  if (in_place) {
    /* Up to RXBUF_CAP, or further to the end of the unit begun before it. */
    if ((r = rxbuf_make_room(rx)) < 0)
      return r;
    if (rx->start < rx->end && rx->start + rx->need > end)
      end = rx->start + rx->need;
  } else if (rx->start > 0) {
    memmove(rx->cur->data, rx->cur->data + rx->start, rx->end - rx->start);
    rx->end -= rx->start;
    rx->start = 0;
  }
  if (end <= rx->end)
    return -ENOSPC;
  *buf = rx->cur->data + rx->end;
  *len = end - rx->end;
  return r;
}

uint8_t *rxbuf_pin(struct rxbufs *rx, size_t n, struct rxbuf **pin)
{
  uint8_t *p = rx->cur->data + rx->start;

  rx->cur->refs++;
  *pin = rx->cur;
  rx->start += n;
  return p;
}

bool rxbuf_unpin(struct rxbufs *rx, struct rxbuf *b)
{
  if (--b->refs || !b->retired)
    return false;
  rxbuf_recycle(rx, b);
  return true;
}
