/* test_hs_tls.c: TLS modes and per-client access in the pure handshake
 * (src/proto/handshake.c): FORCEDTLS refusals before STARTTLS, STARTTLS
 * replies, what is forgotten at TLS start, hidden and read-only exports. */
#include <string.h>

#include "common/wire.h"
#include "proto/handshake.h"
#include "proto/nbd-protocol.h"
#include "tap.h"

static const uint8_t access[3] = { PROTO_ACCESS_DENIED, PROTO_ACCESS_RO, PROTO_ACCESS_RW };
static struct proto_export exports[3] = {
  { .name = "secret", .size = 1 << 20, .can_flush = 1, .can_trim = 1, .base_allocation = 1,
    .min_block = 512, .pref_block = 4096, .max_payload = 32 << 20 },
  { .name = "shared", .size = 8192, .can_flush = 1, .can_trim = 1,
    .min_block = 512, .pref_block = 4096, .max_payload = 32 << 20 },
  { .name = "other", .size = 4096, .min_block = 512, .pref_block = 4096, .max_payload = 32 << 20 },
};

static uint8_t in[100000];
static size_t inlen;

static void opt(uint32_t o, const void *data, uint32_t len)
{
  put_be64(in + inlen, NBD_NEW_VERSION);
  put_be32(in + inlen + 8, o);
  put_be32(in + inlen + 12, len);
  if (len)
    memcpy(in + inlen + 16, data, len);
  inlen += 16 + len;
}

static uint32_t name_data(uint8_t *d, const char *name)
{
  uint32_t n = (uint32_t)strlen(name);
  put_be32(d, n);
  memcpy(d + 4, name, n);
  put_be16(d + 4 + n, 0);
  return n + 6;
}

/* Feed everything in in[]; return the stage. */
static int feed(struct proto_hs *hs, struct proto_buf *out)
{
  size_t used = 0;
  int st = proto_hs_input(hs, in, inlen, &used, out);
  memmove(in, in + used, inlen - used);
  inlen -= used;
  return st;
}

/* The reply types in out, in order, as a count and array. */
static int reply_types(const struct proto_buf *out, uint32_t *types, int max)
{
  size_t p = 0;
  int n = 0;
  while (p + 20 <= out->len && n < max) {
    types[n++] = get_be32(out->data + p + 12);
    p += 20 + get_be32(out->data + p + 16);
  }
  return n;
}

static bool contains(const struct proto_buf *b, const char *s)
{
  return memmem(b->data, b->len, s, strlen(s)) != NULL;
}

int main(void)
{
  struct proto_hs hs;
  struct proto_buf out = { 0 };
  uint8_t d[64];
  uint32_t t[16];
  int n, st;

  /* FORCEDTLS. */
  proto_hs_init(&hs, exports, 3);
  hs.tls_mode = PROTO_TLS_REQUIRE;
  put_be32(in, NBD_FLAG_C_FIXED_NEWSTYLE);
  inlen = 4;
  opt(NBD_OPT_LIST, NULL, 0);
  opt(NBD_OPT_INFO, d, name_data(d, "secret"));
  opt(NBD_OPT_GO, d, name_data(d, "secret"));
  opt(NBD_OPT_STRUCTURED_REPLY, NULL, 0);
  opt(77, "x", 1);
  st = feed(&hs, &out);
  n = reply_types(&out, t, 16);
  ok(st == PROTO_HS_OPTION && n == 5, "require: five options, five replies, still haggling");
  bool all = n == 5;
  for (int i = 0; i < n; i++)
    all = all && t[i] == NBD_REP_ERR_TLS_REQD;
  ok(all, "require: LIST, INFO, GO, STRUCTURED_REPLY, unknown all get NBD_REP_ERR_TLS_REQD");
  ok(!contains(&out, "secret") && !contains(&out, "shared"), "require: no export name in the replies");
  proto_buf_free(&out);

  opt(NBD_OPT_STARTTLS, "x", 1);
  st = feed(&hs, &out);
  ok(reply_types(&out, t, 16) == 1 && t[0] == NBD_REP_ERR_INVALID, "STARTTLS with data: NBD_REP_ERR_INVALID");
  proto_buf_free(&out);
  opt(NBD_OPT_STARTTLS, NULL, 0);
  opt(NBD_OPT_LIST, NULL, 0);   /* pipelined: must not be parsed as plaintext */
  st = feed(&hs, &out);
  ok(st == PROTO_HS_STARTTLS, "STARTTLS: stage STARTTLS");
  ok(reply_types(&out, t, 16) == 1 && t[0] == NBD_REP_ACK, "STARTTLS: ACK and nothing else");
  ok(inlen == 16, "bytes after STARTTLS are left unconsumed (they belong to TLS)");
  proto_buf_free(&out);
  inlen = 0;

  hs.structured = true;   /* as if negotiated in plaintext (mode on) */
  proto_hs_tls_started(&hs);
  ok(hs.tls_active && !hs.structured && hs.stage == PROTO_HS_OPTION, "TLS started: options again, plaintext choices forgotten");
  opt(NBD_OPT_STARTTLS, NULL, 0);
  opt(NBD_OPT_LIST, NULL, 0);
  st = feed(&hs, &out);
  n = reply_types(&out, t, 16);
  ok(n >= 1 && t[0] == NBD_REP_ERR_INVALID, "STARTTLS under TLS: NBD_REP_ERR_INVALID");
  ok(n == 5 && t[4] == NBD_REP_ACK && contains(&out, "secret"), "LIST under TLS names the exports");
  proto_buf_free(&out);

  /* EXPORT_NAME before TLS with require: the session ends, nothing sent. */
  proto_hs_init(&hs, exports, 3);
  hs.tls_mode = PROTO_TLS_REQUIRE;
  put_be32(in, NBD_FLAG_C_FIXED_NEWSTYLE);
  inlen = 4;
  opt(NBD_OPT_EXPORT_NAME, "secret", 6);
  st = feed(&hs, &out);
  ok(st == PROTO_HS_CLOSED && out.len == 0, "require: EXPORT_NAME before TLS closes without a reply");
  proto_buf_free(&out);

  /* Mode off: STARTTLS gets POLICY. Mode on: LIST works in plaintext. */
  proto_hs_init(&hs, exports, 3);
  put_be32(in, NBD_FLAG_C_FIXED_NEWSTYLE);
  inlen = 4;
  opt(NBD_OPT_STARTTLS, NULL, 0);
  feed(&hs, &out);
  ok(reply_types(&out, t, 16) == 1 && t[0] == NBD_REP_ERR_POLICY, "off: STARTTLS gets NBD_REP_ERR_POLICY");
  proto_buf_free(&out);
  proto_hs_init(&hs, exports, 3);
  hs.tls_mode = PROTO_TLS_ON;
  put_be32(in, NBD_FLAG_C_FIXED_NEWSTYLE);
  inlen = 4;
  opt(NBD_OPT_LIST, NULL, 0);
  feed(&hs, &out);
  ok(reply_types(&out, t, 16) == 4 && t[3] == NBD_REP_ACK, "on: plaintext LIST answered");
  proto_buf_free(&out);

  /* SELECTIVETLS with a TLS-only export (denied before TLS): INFO gets
   * TLS_REQD, as does a name that does not exist; LIST hides it. */
  static const uint8_t before_tls[3] = { PROTO_ACCESS_DENIED, PROTO_ACCESS_RW, PROTO_ACCESS_RW };
  proto_hs_init(&hs, exports, 3);
  hs.tls_mode = PROTO_TLS_ON;
  hs.access = before_tls;
  put_be32(in, NBD_FLAG_C_FIXED_NEWSTYLE);
  inlen = 4;
  opt(NBD_OPT_INFO, d, name_data(d, "secret"));
  opt(NBD_OPT_INFO, d, name_data(d, "nosuch"));
  opt(NBD_OPT_INFO, d, name_data(d, "shared"));
  feed(&hs, &out);
  n = reply_types(&out, t, 16);
  ok(n >= 2 && t[0] == NBD_REP_ERR_TLS_REQD && t[1] == NBD_REP_ERR_TLS_REQD,
     "on: INFO on a TLS-only export and on a missing one both get NBD_REP_ERR_TLS_REQD");
  ok(n >= 3 && t[2] == NBD_REP_INFO, "on: a plaintext-visible export answers INFO");
  proto_buf_free(&out);
  inlen = 0;
  opt(NBD_OPT_STARTTLS, NULL, 0);
  st = feed(&hs, &out);
  proto_buf_free(&out);
  proto_hs_tls_started(&hs);
  hs.access = access;   /* (re-evaluated with the identity; here: still denied) */
  opt(NBD_OPT_INFO, d, name_data(d, "nosuch"));
  feed(&hs, &out);
  ok(reply_types(&out, t, 16) == 1 && t[0] == NBD_REP_ERR_UNKNOWN, "on, after TLS: a missing export gets NBD_REP_ERR_UNKNOWN (never TLS_REQD)");
  proto_buf_free(&out);

  /* Access: secret denied, shared read-only, other read-write. */
  proto_hs_init(&hs, exports, 3);
  hs.access = access;
  put_be32(in, NBD_FLAG_C_FIXED_NEWSTYLE);
  inlen = 4;
  opt(NBD_OPT_LIST, NULL, 0);
  opt(NBD_OPT_INFO, d, name_data(d, "secret"));
  feed(&hs, &out);
  n = reply_types(&out, t, 16);
  ok(n == 4 && t[0] == NBD_REP_SERVER && t[1] == NBD_REP_SERVER && t[2] == NBD_REP_ACK,
     "LIST lists only the two visible exports");
  ok(t[3] == NBD_REP_ERR_UNKNOWN, "INFO on a denied export: NBD_REP_ERR_UNKNOWN");
  ok(!contains(&out, "secret"), "the denied export's name appears nowhere");
  proto_buf_free(&out);
  opt(NBD_OPT_GO, d, name_data(d, ""));
  st = feed(&hs, &out);
  ok(st == PROTO_HS_DONE && hs.session.export_index == 1, "empty name: the first visible export");
  ok(hs.session.eflags & NBD_FLAG_READ_ONLY, "read-only rule: NBD_FLAG_READ_ONLY advertised");
  ok(!(hs.session.eflags & NBD_FLAG_SEND_TRIM), "read-only rule: no TRIM advertised");
  proto_buf_free(&out);

  proto_hs_init(&hs, exports, 3);
  hs.access = access;
  put_be32(in, NBD_FLAG_C_FIXED_NEWSTYLE);
  inlen = 4;
  opt(NBD_OPT_EXPORT_NAME, "secret", 6);
  st = feed(&hs, &out);
  ok(st == PROTO_HS_CLOSED && out.len == 0, "EXPORT_NAME of a denied export closes like an unknown one");
  proto_buf_free(&out);
  return tap_done();
}
