/* fuzz_handshake.c: libFuzzer harness for the server's handshake and option
 * parsing (proto_hs_input), fed as conn.c feeds it: bytes arrive in chunks
 * whose boundaries the fuzzer picks, into a receive buffer of conn.c's size;
 * replies are drained after each call.  A handshake that reaches transmission
 * goes on into the request parser with the negotiated session.
 * Input: byte 0 = export table (bits 0-1) and an output cap (bit 2);
 * byte 1 = chunking seed (0: all at once); the rest = the client's bytes. */
#include "fuzz_requests.h"
#include "proto/handshake.h"

#define RX_CAP (PROTO_HS_MAX_UNIT + 4096)   /* as RXBUF_CAP in src/server/rxbuf.h */

/* Walk the replies one proto_hs_input() call appended.  An EXPORT_NAME
 * success (no option-reply header) may only end the output of the call that
 * entered transmission. */
static void check_output(const struct proto_hs *hs, const uint8_t *d, size_t len, int st)
{
  size_t p = 0;

  while (p < len) {
    if (len - p >= 20 && get_be64(d + p) == NBD_REP_MAGIC) {
      uint32_t type = get_be32(d + p + 12), rlen = get_be32(d + p + 16);
      FUZZ_CHECK(rlen <= len - p - 20);
      if (type == NBD_REP_INFO)
        FUZZ_CHECK(rlen >= 2 && rlen <= 2 + NBD_MAX_STRING);
      if (type == NBD_REP_SERVER)
        FUZZ_CHECK(rlen >= 4 && get_be32(d + p + 20) <= rlen - 4);
      if (type & NBD_REP_FLAG_ERROR)
        FUZZ_CHECK(rlen <= NBD_MAX_STRING);
      p += 20 + rlen;
      continue;
    }
    /* NBD_OPT_EXPORT_NAME's reply: size, flags, and 124 zeroes unless NO_ZEROES. */
    FUZZ_CHECK(st == PROTO_HS_DONE);
    FUZZ_CHECK(len - p == (hs->no_zeroes ? 10u : 134u));
    FUZZ_CHECK(get_be64(d + p) == hs->session.export->size);
    FUZZ_CHECK(get_be16(d + p + 8) == hs->session.eflags);
    break;
  }
}

static void check_session(const struct proto_hs *hs, const struct proto_export *ex, size_t n)
{
  const struct proto_session *s = &hs->session;

  FUZZ_CHECK(s->export_index < n && s->export == &ex[s->export_index]);
  FUZZ_CHECK(!(s->structured && s->extended));
  FUZZ_CHECK(s->eflags == proto_export_eflags(s->export, s->structured || s->extended));
  if (s->meta_base_allocation)
    FUZZ_CHECK(s->export->base_allocation && (s->structured || s->extended));
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
  struct proto_hs hs;
  struct proto_buf out = { 0 };
  struct fuzz_chunker ch;
  const struct proto_export *ex;
  size_t nex, pos = 2, rx_len = 0;
  uint8_t *rx;
  int st;

  if (size < 2)
    return 0;
  fuzz_exports_init();
  ex = fuzz_exports[(data[0] & 3) % 3];
  nex = fuzz_nexports[(data[0] & 3) % 3];
  fuzz_chunker_init(&ch, data[1]);
  rx = malloc(RX_CAP);
  FUZZ_CHECK(rx);

  proto_hs_init(&hs, ex, nex);
  if (data[0] & 4)
    hs.out_max = 1024;
  FUZZ_CHECK(proto_hs_greeting(&out) == 0 && out.len == 18);
  out.len = 0;

  for (;;) {
    size_t room = RX_CAP - rx_len, left = size - pos;
    size_t n = fuzz_chunk(&ch, data[1], left < room ? left : room), used = 0;

    memcpy(rx + rx_len, data + pos, n);
    rx_len += n;
    pos += n;
    st = proto_hs_input(&hs, rx, rx_len, &used, &out);
    FUZZ_CHECK(st >= 0);   /* -ENOMEM only */
    FUZZ_CHECK(used <= rx_len);
    FUZZ_CHECK(st == (int)hs.stage);
    check_output(&hs, out.data, out.len, st);
    if (hs.out_max)   /* one option's replies past the cap at most (LIST: every export) */
      FUZZ_CHECK(out.len <= hs.out_max + 3 * (20 + 4 + 2 * NBD_MAX_STRING) + 20);
    /* conn.c treats a full receive buffer with no progress as a violation:
     * it must never happen for any input. */
    FUZZ_CHECK(!(rx_len == RX_CAP && used == 0 && out.len == 0 && st != PROTO_HS_DONE
                 && st != PROTO_HS_CLOSED));
    memmove(rx, rx + used, rx_len - used);
    rx_len -= used;
    if (st == PROTO_HS_DONE || st == PROTO_HS_CLOSED)
      break;
    if (n == 0 && used == 0 && out.len == 0)
      break;   /* input exhausted: the client went quiet */
    out.len = 0;   /* "sent" */
  }
  if (st == PROTO_HS_CLOSED)
    FUZZ_CHECK(hs.close_reason != NULL);
  if (st == PROTO_HS_DONE) {
    /* Bytes after the handshake belong to transmission, as in conn.c. */
    uint8_t *rest = malloc(rx_len + (size - pos) + 1);
    FUZZ_CHECK(rest);
    check_session(&hs, ex, nex);
    memcpy(rest, rx, rx_len);
    memcpy(rest + rx_len, data + pos, size - pos);
    fuzz_requests(&hs.session, rest, rx_len + (size - pos));
    free(rest);
  }
  proto_buf_free(&out);
  free(rx);
  return 0;
}
