/* test_limits.c: the server's limits: defaults and config keys of
 * --handshake-timeout and --max-connections, the option payload cap
 * (PROTO_MAX_OPTION_DATA), and the handshake's output cap (out_max) that keeps
 * a client sending options without reading replies from growing memory. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/wire.h"
#include "proto/handshake.h"
#include "proto/nbd-protocol.h"
#include "server/config.h"
#include "tap.h"
#include "tmptext.h"

static int load(const char *text, struct server_config *cfg, char *err, size_t errlen)
{
  char path[TMPTEXT_PATH];
  int r;

  if (tmptext_file(text, strlen(text), path) < 0)
    return -EIO;
  config_init(cfg);
  r = config_load_file(cfg, path, err, errlen);
  unlink(path);
  return r;
}

static const struct proto_export exports[1] = {
  { .name = "disk", .description = "a description long enough to make LIST replies large",
    .size = 1 << 20, .min_block = 512, .pref_block = 4096, .max_payload = 32 << 20 },
};

static size_t put_opt(uint8_t *p, uint32_t opt, uint32_t len)
{
  put_be64(p, NBD_NEW_VERSION);
  put_be32(p + 8, opt);
  put_be32(p + 12, len);
  return 16;
}

/* Count option replies in out and return the type of the last one. */
static int count_replies(const struct proto_buf *out, uint32_t *last)
{
  size_t p = 0;
  int n = 0;
  while (p + 20 <= out->len && get_be64(out->data + p) == NBD_REP_MAGIC) {
    *last = get_be32(out->data + p + 12);
    p += 20 + get_be32(out->data + p + 16);
    n++;
  }
  return p == out->len ? n : -1;
}

static void test_config(void)
{
  struct server_config cfg;
  char err[256];

  config_init(&cfg);
  ok(cfg.handshake_timeout == SHUNT_DEFAULT_HANDSHAKE_TIMEOUT && SHUNT_DEFAULT_HANDSHAKE_TIMEOUT == 10,
     "default handshake timeout is 10 s");
  ok(cfg.max_connections == SHUNT_DEFAULT_MAX_CONNECTIONS && SHUNT_DEFAULT_MAX_CONNECTIONS == 1000,
     "default maximum connections is 1000");
  config_free(&cfg);

  ok(load("handshake-timeout = 3\nmax-connections = 7\n", &cfg, err, sizeof err) == 0
     && cfg.handshake_timeout == 3 && cfg.max_connections == 7, "config keys handshake-timeout, max-connections");
  config_free(&cfg);
  ok(load("[server]\nhandshake-timeout = 0\nmax-connections = 0\n", &cfg, err, sizeof err) == 0
     && cfg.handshake_timeout == 0 && cfg.max_connections == 0, "0 turns either limit off");
  config_free(&cfg);
  ok(load("handshake-timeout = soon\n", &cfg, err, sizeof err) == -EINVAL
     && strstr(err, ":1: bad value 'soon' for 'handshake-timeout'"), "a bad handshake-timeout names the line: %s", err);
  config_free(&cfg);
  ok(load("max-connections = -1\n", &cfg, err, sizeof err) == -EINVAL, "a negative max-connections is refused");
  config_free(&cfg);
  ok(load("handshake-timeout = 86401\n", &cfg, err, sizeof err) == -EINVAL, "a handshake timeout above a day is refused");
  config_free(&cfg);
}

/* 2000 NBD_OPT_LIST in one buffer (a client that never reads replies). */
static void test_out_max(void)
{
  enum { NOPT = 2000 };
  static uint8_t in[4 + NOPT * 16];
  struct proto_hs hs;
  struct proto_buf out = { 0 };
  size_t len = 0, pos = 0, used, maxout = 0;
  int rounds = 0, replies = 0, st = 0, n;
  uint32_t last = 0;

  put_be32(in, NBD_FLAG_C_FIXED_NEWSTYLE | NBD_FLAG_C_NO_ZEROES);
  len = 4;
  for (int i = 0; i < NOPT; i++)
    len += put_opt(in + len, NBD_OPT_LIST, 0);

  proto_hs_init(&hs, exports, 1);
  hs.out_max = 4096;
  st = proto_hs_input(&hs, in, len, &used, &out);
  ok(st == PROTO_HS_OPTION && used > 4 && used < len,
     "with out_max, the handshake stops taking options (%zu of %zu bytes taken)", used, len);
  ok(out.len >= 4096 && out.len < 4096 + 2 * (20 + 4 + 4 + 64),
     "output stops within one reply of out_max (%zu bytes)", out.len);
  /* The caller sends, then feeds the rest: everything is answered in the end. */
  do {
    n = count_replies(&out, &last);
    if (n < 0)
      break;
    replies += n;
    if (out.len > maxout)
      maxout = out.len;
    out.len = 0;
    pos += used;
    rounds++;
    st = proto_hs_input(&hs, in + pos, len - pos, &used, &out);
  } while (st >= 0 && (used > 0 || out.len > 0) && rounds < 10000);
  ok(n >= 0 && pos == len && replies == 2 * NOPT && last == NBD_REP_ACK && maxout < 4096 + 200,
     "fed in %d rounds, all %d options answered (SERVER + ACK each), at most %zu bytes buffered",
     rounds, NOPT, maxout);

  proto_hs_init(&hs, exports, 1);
  out.len = 0;
  st = proto_hs_input(&hs, in, len, &used, &out);
  ok(used == len && count_replies(&out, &last) == 2 * NOPT, "without out_max every option is answered at once");
  proto_buf_free(&out);
}

/* An option of exactly PROTO_MAX_OPTION_DATA is read; one byte more is skipped
 * and refused with NBD_REP_ERR_TOO_BIG, after which the stream is in step. */
static void test_option_cap(void)
{
  static uint8_t in[4 + 2 * (16 + PROTO_MAX_OPTION_DATA + 1) + 16];
  struct proto_hs hs;
  struct proto_buf out = { 0 };
  size_t len = 4, used;
  uint32_t last = 0;
  int st;

  ok(PROTO_MAX_OPTION_DATA == 65536, "the option payload cap is 64 KiB");
  put_be32(in, NBD_FLAG_C_FIXED_NEWSTYLE);
  len += put_opt(in + len, 0x4242, PROTO_MAX_OPTION_DATA);
  len += PROTO_MAX_OPTION_DATA;
  proto_hs_init(&hs, exports, 1);
  st = proto_hs_input(&hs, in, len, &used, &out);
  ok(st == PROTO_HS_OPTION && used == len && count_replies(&out, &last) == 1 && last == NBD_REP_ERR_UNSUP,
     "a 64 KiB unknown option is read and answered NBD_REP_ERR_UNSUP");

  len = 4;
  len += put_opt(in + len, NBD_OPT_GO, PROTO_MAX_OPTION_DATA + 1);
  memset(in + len, 'a', PROTO_MAX_OPTION_DATA + 1);
  len += PROTO_MAX_OPTION_DATA + 1;
  len += put_opt(in + len, NBD_OPT_ABORT, 0);
  proto_hs_init(&hs, exports, 1);
  out.len = 0;
  /* Fed in 1000-byte pieces: nothing above the cap is ever held. */
  size_t pos = 0, held = 0;
  st = PROTO_HS_OPTION;
  while (pos < len && st != PROTO_HS_CLOSED) {
    size_t end = pos + 1000 + held < len ? pos + 1000 + held : len;
    st = proto_hs_input(&hs, in + pos, end - pos, &used, &out);
    pos += used;
    held = end - pos;
  }
  uint32_t types[2] = { 0, 0 };
  size_t p = 0;
  for (int i = 0; i < 2 && p + 20 <= out.len; i++) {
    types[i] = get_be32(out.data + p + 12);
    p += 20 + get_be32(out.data + p + 16);
  }
  ok(st == PROTO_HS_CLOSED && types[0] == NBD_REP_ERR_TOO_BIG && types[1] == NBD_REP_ACK,
     "a GO one byte over the cap gets NBD_REP_ERR_TOO_BIG, then ABORT is understood");
  proto_buf_free(&out);
}

int main(void)
{
  test_config();
  test_out_max();
  test_option_cap();
  return tap_done();
}
