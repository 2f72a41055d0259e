/* test_handshake.c: the pure handshake state machine (src/proto/handshake.c):
 * greeting, each option's replies, malformed and oversized options, and the
 * session it hands to transmission. */
#include <stdlib.h>
#include <string.h>

#include "common/wire.h"
#include "proto/handshake.h"
#include "proto/nbd-protocol.h"
#include "tap.h"

static struct proto_export exports[2] = {
  { .name = "disk", .description = "the disk", .size = 1 << 20, .can_trim = 1, .can_zero = 1,
    .can_flush = 1, .can_fua = 1, .can_multi_conn = 1, .can_cache = 1, .base_allocation = 1,
    .min_block = 512, .pref_block = 4096, .max_payload = 32 << 20 },
  { .name = "ro", .size = 4096, .read_only = 1, .can_flush = 1,
    .min_block = 512, .pref_block = 4096, .max_payload = 32 << 20 },
};

static uint8_t in[200000];
static size_t inlen;

static void add_flags(uint32_t f) { put_be32(in + inlen, f); inlen += 4; }
static void add_opt(uint32_t opt, const void *data, uint32_t len)
{
  put_be64(in + inlen, NBD_NEW_VERSION);
  put_be32(in + inlen + 8, opt);
  put_be32(in + inlen + 12, len);
  if (len)
    memcpy(in + inlen + 16, data, len);
  inlen += 16 + len;
}
/* INFO/GO data for a name with the given info requests. */
static uint32_t go_data(uint8_t *d, const char *name, int nreq, const uint16_t *req)
{
  uint32_t n = strlen(name);
  put_be32(d, n);
  memcpy(d + 4, name, n);
  put_be16(d + 4 + n, nreq);
  for (int i = 0; i < nreq; i++)
    put_be16(d + 6 + n + 2 * i, req[i]);
  return 6 + n + 2 * nreq;
}
static uint32_t meta_data(uint8_t *d, const char *name, int nq, const char **q)
{
  uint32_t n = strlen(name), p;
  put_be32(d, n);
  memcpy(d + 4, name, n);
  put_be32(d + 4 + n, nq);
  p = 8 + n;
  for (int i = 0; i < nq; i++) {
    uint32_t l = strlen(q[i]);
    put_be32(d + p, l);
    memcpy(d + p + 4, q[i], l);
    p += 4 + l;
  }
  return p;
}

/* Walk the option replies in out; return the count and the last reply type;
 * *types_seen collects the types in order. */
static int parse_replies(const struct proto_buf *out, size_t start, uint32_t *types, int max, uint32_t *opt0)
{
  size_t p = start;
  int n = 0;
  while (p + 20 <= out->len) {
    if (get_be64(out->data + p) != NBD_REP_MAGIC)
      return -1;
    if (opt0 && n == 0) *opt0 = get_be32(out->data + p + 8);
    if (n < max) types[n] = get_be32(out->data + p + 12);
    n++;
    p += 20 + get_be32(out->data + p + 16);
  }
  return p == out->len ? n : -1;
}

static int run(struct proto_hs *hs, struct proto_buf *out, size_t *consumed)
{
  proto_hs_init(hs, exports, 2);
  out->len = 0;
  return proto_hs_input(hs, in, inlen, consumed, out);
}

int main(void)
{
  struct proto_hs hs;
  struct proto_buf out = { 0 };
  size_t used;
  uint8_t d[70000];
  uint32_t types[16], opt0 = 0;
  int st, n;

  ok(proto_hs_greeting(&out) == 0 && out.len == 18, "greeting is 18 bytes");
  ok(get_be64(out.data) == NBD_MAGIC && get_be64(out.data + 8) == NBD_NEW_VERSION,
     "greeting carries NBDMAGIC IHAVEOPT");
  ok(get_be16(out.data + 16) == (NBD_FLAG_FIXED_NEWSTYLE | NBD_FLAG_NO_ZEROES), "fixed newstyle, no zeroes");

  /* Partial input is not consumed. */
  inlen = 0;
  add_flags(NBD_FLAG_C_FIXED_NEWSTYLE | NBD_FLAG_C_NO_ZEROES);
  add_opt(NBD_OPT_LIST, NULL, 0);
  proto_hs_init(&hs, exports, 2);
  out.len = 0;
  st = proto_hs_input(&hs, in, 10, &used, &out);
  ok(st == PROTO_HS_OPTION && used == 4 && out.len == 0, "partial option header waits (used %zu)", used);
  st = proto_hs_input(&hs, in + used, inlen - used, &used, &out);
  n = parse_replies(&out, 0, types, 16, NULL);
  ok(n == 3 && types[0] == NBD_REP_SERVER && types[1] == NBD_REP_SERVER && types[2] == NBD_REP_ACK,
     "LIST: two SERVER replies then ACK (n=%d)", n);
  ok(out.len > 24 && get_be32(out.data + 20) == 4 && !memcmp(out.data + 24, "disk", 4), "LIST names 'disk'");
  ok(get_be32(out.data + 16) == 4 + 4 + 8 && !memcmp(out.data + 28, "the disk", 8), "LIST carries the description after the name");

  /* LIST with data is invalid. */
  inlen = 0; add_flags(3); add_opt(NBD_OPT_LIST, "x", 1);
  st = run(&hs, &out, &used);
  n = parse_replies(&out, 0, types, 16, NULL);
  ok(n == 1 && types[0] == NBD_REP_ERR_INVALID, "LIST with data: ERR_INVALID");

  /* Unknown option, STARTTLS. */
  inlen = 0; add_flags(3); add_opt(99, "abc", 3); add_opt(NBD_OPT_STARTTLS, NULL, 0);
  add_opt(NBD_OPT_PEEK_EXPORT, NULL, 0);
  st = run(&hs, &out, &used);
  n = parse_replies(&out, 0, types, 16, NULL);
  ok(n == 3 && types[0] == NBD_REP_ERR_UNSUP && types[1] == NBD_REP_ERR_POLICY && types[2] == NBD_REP_ERR_UNSUP,
     "unknown option UNSUP, STARTTLS POLICY");
  ok(st == PROTO_HS_OPTION && used == inlen, "still negotiating, all consumed");

  /* GO with block size request: INFO replies then ACK, session strict. */
  {
    uint16_t req[] = { NBD_INFO_NAME, NBD_INFO_DESCRIPTION, NBD_INFO_BLOCK_SIZE, 999 };
    inlen = 0; add_flags(3);
    add_opt(NBD_OPT_STRUCTURED_REPLY, NULL, 0);
    add_opt(NBD_OPT_GO, d, go_data(d, "disk", 4, req));
    add_opt(NBD_OPT_LIST, NULL, 0);   /* after GO: transmission bytes, untouched */
    st = run(&hs, &out, &used);
    n = parse_replies(&out, 0, types, 16, NULL);
    ok(st == PROTO_HS_DONE, "GO enters transmission");
    ok(used == inlen - 16, "bytes after GO are left for transmission");
    ok(n == 6 && types[0] == NBD_REP_ACK && types[1] == NBD_REP_INFO && types[5] == NBD_REP_ACK,
       "GO: ACK(structured), 4 INFO, ACK (n=%d)", n);
    ok(hs.session.structured && !hs.session.extended && hs.session.strict_block_size,
       "session: structured, strict block size");
    ok(hs.session.export == &exports[0], "session export is 'disk'");
    ok(hs.session.eflags & NBD_FLAG_SEND_DF, "DF advertised with structured replies");
    ok((hs.session.eflags & NBD_FLAG_CAN_MULTI_CONN) && (hs.session.eflags & NBD_FLAG_SEND_TRIM),
       "multi-conn and trim advertised");
    ok(!hs.session.meta_base_allocation, "no meta context without SET_META_CONTEXT");
    /* Find the block size info. */
    size_t p = 20;  /* skip structured ACK */
    int found = 0;
    while (p + 20 <= out.len) {
      uint32_t l = get_be32(out.data + p + 16);
      if (get_be32(out.data + p + 12) == NBD_REP_INFO && get_be16(out.data + p + 20) == NBD_INFO_BLOCK_SIZE)
        found = get_be32(out.data + p + 22) == 512 && get_be32(out.data + p + 26) == 4096
                && get_be32(out.data + p + 30) == (32u << 20);
      p += 20 + l;
    }
    ok(found, "INFO_BLOCK_SIZE 512/4096/32M");
  }

  /* GO for an unknown export. */
  inlen = 0; add_flags(3); add_opt(NBD_OPT_GO, d, go_data(d, "nope", 0, NULL));
  st = run(&hs, &out, &used);
  n = parse_replies(&out, 0, types, 16, NULL);
  ok(st == PROTO_HS_OPTION && n == 1 && types[0] == NBD_REP_ERR_UNKNOWN, "GO unknown export: ERR_UNKNOWN");

  /* GO with a name length pointing past the option. */
  put_be32(d, 1000); put_be16(d + 4, 0);
  inlen = 0; add_flags(3); add_opt(NBD_OPT_INFO, d, 6);
  st = run(&hs, &out, &used);
  n = parse_replies(&out, 0, types, 16, NULL);
  ok(n == 1 && types[0] == NBD_REP_ERR_INVALID, "INFO with bad name length: ERR_INVALID");
  /* Info count not matching the length. */
  inlen = 0; add_flags(3);
  { uint32_t l = go_data(d, "disk", 0, NULL); put_be16(d + 8, 5); add_opt(NBD_OPT_INFO, d, l); }
  st = run(&hs, &out, &used);
  n = parse_replies(&out, 0, types, 16, NULL);
  ok(n == 1 && types[0] == NBD_REP_ERR_INVALID, "INFO with wrong request count: ERR_INVALID");

  /* Empty name selects the default (first) export; no block size: lenient. */
  inlen = 0; add_flags(3); add_opt(NBD_OPT_GO, d, go_data(d, "", 0, NULL));
  st = run(&hs, &out, &used);
  ok(st == PROTO_HS_DONE && hs.session.export == &exports[0] && !hs.session.strict_block_size,
     "empty name: default export, lenient block sizes");

  /* EXPORT_NAME with and without NO_ZEROES. */
  inlen = 0; add_flags(1); add_opt(NBD_OPT_EXPORT_NAME, "ro", 2);
  st = run(&hs, &out, &used);
  ok(st == PROTO_HS_DONE && out.len == 134, "EXPORT_NAME reply has 124 zero bytes without NO_ZEROES");
  ok(get_be64(out.data) == 4096 && (get_be16(out.data + 8) & NBD_FLAG_READ_ONLY), "size and READ_ONLY");
  ok(!(get_be16(out.data + 8) & NBD_FLAG_SEND_TRIM), "read-only export does not advertise trim");
  inlen = 0; add_flags(3); add_opt(NBD_OPT_EXPORT_NAME, "disk", 4);
  st = run(&hs, &out, &used);
  ok(st == PROTO_HS_DONE && out.len == 10, "EXPORT_NAME reply 10 bytes with NO_ZEROES");
  inlen = 0; add_flags(3); add_opt(NBD_OPT_EXPORT_NAME, "zzz", 3);
  st = run(&hs, &out, &used);
  ok(st == PROTO_HS_CLOSED && out.len == 0, "EXPORT_NAME unknown: close");

  /* Meta contexts. */
  {
    const char *q1[] = { "base:allocation", "qemu:dirty-bitmap:x", "nocolon" };
    const char *q2[] = { "base:" };
    inlen = 0; add_flags(3);
    add_opt(NBD_OPT_SET_META_CONTEXT, d, meta_data(d, "disk", 1, q1));   /* before structured */
    st = run(&hs, &out, &used);
    n = parse_replies(&out, 0, types, 16, NULL);
    ok(n == 1 && types[0] == NBD_REP_ERR_INVALID, "SET_META_CONTEXT before structured: ERR_INVALID");

    inlen = 0; add_flags(3);
    add_opt(NBD_OPT_STRUCTURED_REPLY, NULL, 0);
    add_opt(NBD_OPT_LIST_META_CONTEXT, d, meta_data(d, "disk", 0, NULL));
    add_opt(NBD_OPT_LIST_META_CONTEXT, d, meta_data(d, "disk", 1, q2));
    add_opt(NBD_OPT_SET_META_CONTEXT, d, meta_data(d, "disk", 3, q1));
    add_opt(NBD_OPT_GO, d, go_data(d, "disk", 0, NULL));
    st = run(&hs, &out, &used);
    n = parse_replies(&out, 0, types, 16, NULL);
    ok(n == 10 && types[1] == NBD_REP_META_CONTEXT && types[2] == NBD_REP_ACK && types[3] == NBD_REP_META_CONTEXT
       && types[5] == NBD_REP_META_CONTEXT && types[6] == NBD_REP_ACK,
       "LIST/SET_META_CONTEXT reply base:allocation (n=%d)", n);
    ok(st == PROTO_HS_DONE && hs.session.meta_base_allocation, "base:allocation selected in session");

    /* Selected for another export: not active. */
    inlen = 0; add_flags(3);
    add_opt(NBD_OPT_STRUCTURED_REPLY, NULL, 0);
    add_opt(NBD_OPT_SET_META_CONTEXT, d, meta_data(d, "disk", 1, q1));
    add_opt(NBD_OPT_GO, d, go_data(d, "ro", 0, NULL));
    st = run(&hs, &out, &used);
    ok(st == PROTO_HS_DONE && !hs.session.meta_base_allocation, "meta context for another export is dropped");

    /* A query length that overruns the option. */
    uint32_t l = meta_data(d, "disk", 1, q1);
    put_be32(d + 12, 60000);
    inlen = 0; add_flags(3); add_opt(NBD_OPT_STRUCTURED_REPLY, NULL, 0);
    add_opt(NBD_OPT_SET_META_CONTEXT, d, l);
    st = run(&hs, &out, &used);
    n = parse_replies(&out, 0, types, 16, NULL);
    ok(n == 2 && types[1] == NBD_REP_ERR_INVALID, "overrunning query: ERR_INVALID");
  }

  /* Extended headers: precedence over structured; EXPORT_NAME forbidden after. */
  inlen = 0; add_flags(3);
  add_opt(NBD_OPT_EXTENDED_HEADERS, NULL, 0);
  add_opt(NBD_OPT_STRUCTURED_REPLY, NULL, 0);
  add_opt(NBD_OPT_GO, d, go_data(d, "disk", 0, NULL));
  st = run(&hs, &out, &used);
  n = parse_replies(&out, 0, types, 16, NULL);
  ok(n == 5 && types[0] == NBD_REP_ACK && types[1] == NBD_REP_ERR_EXT_HEADER_REQD, "structured after extended: EXT_HEADER_REQD");
  ok(st == PROTO_HS_DONE && hs.session.extended && !hs.session.structured, "session extended");
  inlen = 0; add_flags(3); add_opt(NBD_OPT_EXTENDED_HEADERS, NULL, 0); add_opt(NBD_OPT_EXPORT_NAME, "disk", 4);
  st = run(&hs, &out, &used);
  ok(st == PROTO_HS_CLOSED, "EXPORT_NAME after extended headers closes");

  /* Oversized option: discarded in pieces, TOO_BIG, then negotiation goes on. */
  {
    uint8_t hdr[16];
    put_be64(hdr, NBD_NEW_VERSION); put_be32(hdr + 8, NBD_OPT_INFO); put_be32(hdr + 12, 0xffffffffu);
    proto_hs_init(&hs, exports, 2);
    out.len = 0;
    put_be32(d, 3);
    proto_hs_input(&hs, d, 4, &used, &out);
    st = proto_hs_input(&hs, hdr, 16, &used, &out);
    ok(st == PROTO_HS_DISCARD && used == 16, "4 GiB option: discarding");
    uint64_t left = 0xffffffffull;
    static uint8_t junk[1 << 16];
    int rounds = 0;
    while (left > 0 && rounds < 10) {   /* feed only a little: it must not wait for all of it */
      size_t k = left < sizeof junk ? left : sizeof junk;
      st = proto_hs_input(&hs, junk, k, &used, &out);
      if (used != k) break;
      left -= k;
      rounds++;
    }
    ok(rounds == 10 && out.len == 0 && hs.discard_left == 0xffffffffull - 10 * sizeof junk,
       "discard consumes input as it arrives");
    hs.discard_left = 3;
    st = proto_hs_input(&hs, junk, 3, &used, &out);
    n = parse_replies(&out, 0, types, 16, &opt0);
    ok(st == PROTO_HS_OPTION && n == 1 && types[0] == NBD_REP_ERR_TOO_BIG && opt0 == NBD_OPT_INFO,
       "after discarding: ERR_TOO_BIG for that option");
  }

  /* Bad magic, unknown client flags, ABORT. */
  inlen = 0; add_flags(3); add_opt(NBD_OPT_LIST, NULL, 0); in[4] ^= 0xff;
  st = run(&hs, &out, &used);
  ok(st == PROTO_HS_CLOSED && out.len == 0, "bad option magic closes");
  inlen = 0; add_flags(0x80);
  st = run(&hs, &out, &used);
  ok(st == PROTO_HS_CLOSED, "unknown client flags close");
  inlen = 0; add_flags(3); add_opt(NBD_OPT_ABORT, "x", 1);
  st = run(&hs, &out, &used);
  n = parse_replies(&out, 0, types, 16, NULL);
  ok(st == PROTO_HS_CLOSED && n == 1 && types[0] == NBD_REP_ACK, "ABORT: ACK then close");

  proto_buf_free(&out);
  return tap_done();
}
