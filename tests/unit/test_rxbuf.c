/* test_rxbuf.c: a connection's receive buffers (src/server/rxbuf.c): the
 * handshake's recv space moves unparsed bytes to the start; in place, a recv
 * fills up to RXBUF_CAP or exactly to the end of a unit begun before it;
 * an idle buffer starts over, a pinned one is retired (reported once) and
 * released by its last unpin (reported once), spares are reused. */
#include <errno.h>
#include <string.h>

#include "server/rxbuf.h"
#include "tap.h"

int main(void)
{
  struct rxbufs rx;
  struct rxbuf *pin1, *pin2, *first;
  void *buf;
  size_t len;

  ok(rxbuf_init(&rx) == 0 && rx.cur && rx.start == 0 && rx.end == 0, "init: one empty buffer");

  /* Handshake: unparsed bytes move to the start, the recv may fill to CAP. */
  memcpy(rx.cur->data, "xxabc", 5);
  rx.start = 2;
  rx.end = 5;
  ok(rxbuf_recv_space(&rx, false, &buf, &len) == 0, "compacting space");
  ok(rx.start == 0 && rx.end == 3 && memcmp(rx.cur->data, "abc", 3) == 0, "unparsed bytes moved to the start");
  ok(buf == rx.cur->data + 3 && len == RXBUF_CAP - 3, "space up to RXBUF_CAP");
  rx.end = RXBUF_CAP;
  ok(rxbuf_recv_space(&rx, false, &buf, &len) == -ENOSPC, "full buffer: -ENOSPC");

  /* In place: all parsed and nothing pinned: start over. */
  rx.start = rx.end = 1000;
  ok(rxbuf_recv_space(&rx, true, &buf, &len) == 0 && rx.start == 0 && buf == rx.cur->data
     && len == RXBUF_CAP, "idle buffer starts over");

  /* A unit begun just before CAP gets exactly its missing bytes. */
  rx.start = RXBUF_CAP - 10;
  rx.end = RXBUF_CAP;
  rx.need = 10 + RXBUF_SMALL_WRITE;
  ok(rxbuf_recv_space(&rx, true, &buf, &len) == 0 && buf == rx.cur->data + RXBUF_CAP
     && len == RXBUF_SMALL_WRITE, "a unit begun before CAP completes in the reserve");
  rx.need = RXBUF_SIZE;
  ok(rxbuf_recv_space(&rx, true, &buf, &len) == -ENOSPC, "a unit that cannot fit: -ENOSPC");

  /* Pin two payloads, consume the rest: the buffer is retired, not reused. */
  rx.start = 0;
  rx.end = RXBUF_CAP;
  first = rx.cur;
  ok(rxbuf_pin(&rx, 100, &pin1) == first->data && pin1 == first && rx.start == 100, "pin returns the payload");
  ok(rxbuf_pin(&rx, 100, &pin2) == first->data + 100 && first->refs == 2, "second pin");
  rx.start = rx.end;
  ok(rxbuf_recv_space(&rx, true, &buf, &len) == 1 && rx.cur != first && first->retired,
     "a pinned, used-up buffer is retired (reported)");
  ok(rx.start == 0 && buf == rx.cur->data && len == RXBUF_CAP, "the connection goes on in a new buffer");
  ok(!rxbuf_unpin(&rx, pin1), "first unpin: still held");
  ok(rxbuf_unpin(&rx, pin2) && rx.nspare == 1 && rx.spare[0] == first, "last unpin releases it (reported) as a spare");

  /* Pinned but room left behind: no retirement. */
  struct rxbuf *cur = rx.cur;
  ok(rxbuf_pin(&rx, 10, &pin1) == cur->data, "pin in the new buffer");
  rx.end = rx.start = 10;
  ok(rxbuf_recv_space(&rx, true, &buf, &len) == 0 && rx.cur == cur && buf == cur->data + 10,
     "room behind a pinned request: the buffer goes on");
  rx.start = rx.end = RXBUF_CAP;
  ok(rxbuf_recv_space(&rx, true, &buf, &len) == 1 && rx.cur == first && rx.nspare == 0,
     "retired again: the spare is reused");
  ok(rxbuf_unpin(&rx, pin1) && rx.nspare == 1, "released into the spares");

  rxbuf_fini(&rx);
  ok(rx.cur == NULL && rx.nspare == 0, "fini frees everything");
  return tap_done();
}
