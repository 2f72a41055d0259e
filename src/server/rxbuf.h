/* rxbuf.h: a connection's receive buffers.  Bytes are parsed where they were
 * received; a small WRITE is executed from the buffer itself, which it pins
 * until its request is freed.  A buffer still pinned when the connection
 * needs room is retired (the connection goes on in a spare or a new buffer)
 * and released by its last unpin.  Nothing here counts memory: the caller
 * charges a retired buffer (RXBUF_SIZE bytes) against its in-flight cap, from
 * rxbuf_recv_space() saying it retired one to rxbuf_unpin() saying it is
 * released. */
#ifndef SHUNT_SERVER_RXBUF_H
#define SHUNT_SERVER_RXBUF_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "proto/handshake.h"

/* Recvs fill a buffer up to RXBUF_CAP (the whole buffer of the handshake and
 * of TLS); behind that, RXBUF_UNIT_MAX more bytes are reserved so that a unit
 * (a request header, or a small WRITE with its payload) that started before
 * RXBUF_CAP can always complete in place. */
#define RXBUF_CAP         (PROTO_HS_MAX_UNIT + 4096)
#define RXBUF_SMALL_WRITE (16u * 1024)   /* WRITEs up to this may be executed in place */
#define RXBUF_UNIT_MAX    (32u + RXBUF_SMALL_WRITE)   /* the largest unit waited for in place */
#define RXBUF_SIZE        (RXBUF_CAP + RXBUF_UNIT_MAX)
#define RXBUF_SPARES      2u             /* unpinned buffers kept for reuse */

/* One buffer.  Requests executed from it hold references. */
struct rxbuf {
  unsigned refs;                /* requests whose payload lies in data[] */
  bool retired;                 /* no longer the connection's: recycled at refs 0 */
  uint8_t data[];               /* RXBUF_SIZE bytes */
};

/* A connection's receive side: the current buffer and its spares. */
struct rxbufs {
  struct rxbuf *cur;            /* bytes are received into cur->data */
  size_t start, end;            /* unparsed bytes: cur->data[start..end) */
  size_t need;                  /* transmission: bytes from start the unit there needs */
  struct rxbuf *spare[RXBUF_SPARES];
  unsigned nspare;
};

/* Allocate the first buffer.  Returns 0 or -ENOMEM. */
int rxbuf_init(struct rxbufs *rx);

/* Free the current buffer and the spares (no request may pin the current
 * one any more; retired ones go with their last rxbuf_unpin()). */
void rxbuf_fini(struct rxbufs *rx);

/* The unparsed bytes and their number. */
static inline uint8_t *rxbuf_data(const struct rxbufs *rx) { return rx->cur->data + rx->start; }
static inline size_t rxbuf_avail(const struct rxbufs *rx) { return rx->end - rx->start; }

/* Where the next recv may write, and how much (then rx->end += what came).
 * in_place (transmission without TLS): bytes already received never move;
 * the recv fills up to RXBUF_CAP, or exactly to the end of a unit that began
 * before it; when everything is parsed and too little room is left, it
 * starts over in this buffer if nothing pins it, else in a spare or new one.
 * Otherwise (handshake, decrypted TLS) the unparsed bytes are first moved to
 * the start and the recv may fill up to RXBUF_CAP.
 * Returns 0; 1 when it retired the current buffer (the caller counts
 * RXBUF_SIZE in flight until rxbuf_unpin() releases it); -ENOSPC when there
 * is no room for the unit (not expected: every unit waited for fits), or
 * -ENOMEM. */
int rxbuf_recv_space(struct rxbufs *rx, bool in_place, void **buf, size_t *len);

/* The n parsed bytes at rx->start become a request's (a WRITE payload
 * executed in place): returns them and the buffer to unpin once the request
 * is freed, and moves rx->start past them. */
uint8_t *rxbuf_pin(struct rxbufs *rx, size_t n, struct rxbuf **pin);

/* A request pinning b was freed.  True when b was retired and is now
 * released: its RXBUF_SIZE bytes leave the caller's in-flight count. */
bool rxbuf_unpin(struct rxbufs *rx, struct rxbuf *b);

#endif
