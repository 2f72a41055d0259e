/* handshake.c: fixed-newstyle negotiation, client side ("Newstyle negotiation"
 * and "Option types" in the NBD spec).  Each option is one request/replies
 * exchange; replies are read into a bounded buffer, never sized by the peer. */
#include "client/handshake.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "client/transport.h"
#include "proto/option.h"
#include "proto/reply.h"
#include "proto/request.h"
#include "common/text.h"
#include "common/wire.h"
#include "proto/nbd-protocol.h"

/* No option reply we care about needs more: strings are at most 4096 bytes. */
#define OPT_REPLY_MAX (2 * NBD_MAX_STRING + 64)
/* A LIST longer than this is a misbehaving server, not a catalogue. */
#define MAX_EXPORTS 65536u

struct opt_reply {
  uint32_t reply;
  uint32_t len;
  unsigned char data[OPT_REPLY_MAX];
};

static int failf(char *err, size_t errlen, int r, const char *fmt, ...)
{
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(err, errlen, fmt, ap);
  va_end(ap);
  return r;
}

static int send_option(struct sh_transport *t, uint32_t opt, const void *data, uint32_t len)
{
  unsigned char hdr[PROTO_OPT_SIZE];
  proto_opt_encode(hdr, opt, len);
  int r = sh_transport_write_full(t, hdr, sizeof hdr);
  if (r == 0 && len)
    r = sh_transport_write_full(t, data, len);
  return r;
}

static int read_reply(struct sh_transport *t, uint32_t opt, struct opt_reply *o,
                      char *err, size_t errlen)
{
  unsigned char hdr[PROTO_OPT_REPLY_SIZE];
  int r = sh_transport_read_full(t, hdr, sizeof hdr);
  if (r < 0)
    return failf(err, errlen, r, "reading the reply to option %u: %s", opt, strerror(-r));
  if (proto_opt_reply_decode(hdr, opt, &o->reply, &o->len) < 0)
    return failf(err, errlen, -EPROTO, "bad option reply header (option %u)", opt);
  if (o->len > OPT_REPLY_MAX)
    return failf(err, errlen, -EPROTO, "option %u reply of %u bytes is too large", opt, o->len);
  r = sh_transport_read_full(t, o->data, o->len);
  if (r < 0)
    return failf(err, errlen, r, "reading the reply to option %u: %s", opt, strerror(-r));
  return 0;
}

/* An error reply may carry a message for humans. */
static void error_text(const struct opt_reply *o, char *buf, size_t len)
{
  if (o->len)
    snprintf(buf, len, "%s: %.*s", proto_rep_name(o->reply), (int)o->len, (const char *)o->data);
  else
    snprintf(buf, len, "%s", proto_rep_name(o->reply));
}

static int reply_errno(uint32_t reply)
{
  switch (reply) {
  case NBD_REP_ERR_UNSUP: return -ENOTSUP;
  case NBD_REP_ERR_POLICY: return -EACCES;
  case NBD_REP_ERR_UNKNOWN: return -ENOENT;
  case NBD_REP_ERR_TLS_REQD: return -EACCES;
  case NBD_REP_ERR_SHUTDOWN: return -ESHUTDOWN;
  case NBD_REP_ERR_TOO_BIG: return -E2BIG;
  default: return -EINVAL;
  }
}

/* A simple option whose only success reply is ACK: returns 1 (ACK), 0 (refused)
 * or -errno. */
static int simple_option(struct sh_transport *t, uint32_t opt, char *err, size_t errlen)
{
  struct opt_reply *o = malloc(sizeof *o);
  if (!o)
    return -ENOMEM;
  int r = send_option(t, opt, NULL, 0);
  if (r < 0) {
    free(o);
    return failf(err, errlen, r, "sending option %u: %s", opt, strerror(-r));
  }
  r = read_reply(t, opt, o, err, errlen);
  if (r == 0)
    r = o->reply == NBD_REP_ACK ? 1 : (o->reply & NBD_REP_FLAG_ERROR) ? 0 : -EPROTO;
  if (r == -EPROTO)
    failf(err, errlen, r, "unexpected reply %u to option %u", o->reply, opt);
  free(o);
  return r;
}

/* The server's greeting must arrive within this long (or the connection's
 * timeout when shorter): an NBD server sends it as soon as it accepts, while
 * e.g. an HTTP server sends nothing and waits for a request. */
#define GREETING_TIMEOUT_MS 10000u

/* Read the 18-byte greeting.  The magic is checked byte by byte as it
 * arrives, so a peer that is not an NBD server is recognised by its first
 * byte, however little it sends and however long it then waits. */
static int read_greeting(struct sh_transport *t, uint8_t *g, char *err, size_t errlen)
{
  static const char magic[8] = "NBDMAGIC";
  unsigned full = t->timeout_ms;
  unsigned wait = full && full < GREETING_TIMEOUT_MS ? full : GREETING_TIMEOUT_MS;
  int r = sh_transport_set_timeout(t, wait);

  for (size_t i = 0; r == 0 && i < sizeof magic; i++) {
    if ((r = sh_transport_read_full(t, g + i, 1)) < 0)
      break;
    if (g[i] != (unsigned char)magic[i]) {
      /* Show what the peer said (e.g. "HTTP/1.1 400 Bad Request"). */
      char got[40], shown[4 * sizeof got + 1];
      size_t n = i + 1;
      memcpy(got, g, n);
      ssize_t more = sh_transport_read_ready(t, got + n, sizeof got - n);
      n += more > 0 ? (size_t)more : 0;
      return failf(err, errlen, -EPROTO, "not an NBD server (it sent \"%s\")",
                   text_escape(got, n, shown, sizeof shown));
    }
  }
  if (r == 0)
    r = sh_transport_read_full(t, g + sizeof magic, PROTO_GREETING_SIZE - sizeof magic);
  if (r == -ETIMEDOUT)
    return failf(err, errlen, r, "no NBD greeting within %g s: not an NBD server?", wait / 1000.0);
  if (r < 0)
    return failf(err, errlen, r, "reading the server greeting: %s", strerror(-r));
  if ((r = sh_transport_set_timeout(t, full)) < 0)
    return failf(err, errlen, r, "setting the timeout: %s", strerror(-r));
  return 0;
}

static int greet(struct sh_transport *t, char *err, size_t errlen)
{
  uint8_t g[PROTO_GREETING_SIZE];
  uint16_t gflags;
  int r = read_greeting(t, g, err, errlen);
  if (r < 0)
    return r;
  if (proto_greeting_decode(g, &gflags) < 0)  /* the magic is checked already */
    return failf(err, errlen, -EPROTO, "server speaks the oldstyle protocol (unsupported)");
  if (!(gflags & NBD_FLAG_FIXED_NEWSTYLE))
    return failf(err, errlen, -EPROTO, "server does not speak fixed newstyle");
  uint8_t cflags[4];
  put_be32(cflags, NBD_FLAG_C_FIXED_NEWSTYLE | (gflags & NBD_FLAG_NO_ZEROES));
  r = sh_transport_write_full(t, cflags, sizeof cflags);
  if (r < 0)
    return failf(err, errlen, r, "sending client flags: %s", strerror(-r));
  if (t->tls) {
    /* nbds://: STARTTLS first, so that no option travels in plaintext; an
     * error reply ends the connection ("a client which only wishes to use
     * TLS SHOULD terminate the session"). */
    r = simple_option(t, NBD_OPT_STARTTLS, err, errlen);
    if (r < 0)
      return r;
    if (r == 0)
      return failf(err, errlen, -ENOTSUP, "the server refused STARTTLS (TLS is not enabled there?)");
    if ((r = sh_transport_starttls(t, err, errlen)) < 0)
      return r;
  }
  return gflags & NBD_FLAG_NO_ZEROES ? 1 : 0;
}

/* NBD_OPT_SET_META_CONTEXT with every wanted context: the server replies with
 * an id for each one it takes (spec: "Metadata querying"), then ACK. */
static int set_meta(struct sh_transport *t, const struct sh_want *w, struct sh_negotiated *n,
                    char *err, size_t errlen)
{
  size_t nl = strlen(w->export_name), len = 4 + nl + 4;
  for (unsigned i = 0; i < w->nmetas; i++)
    len += 4 + strlen(w->metas[i]);
  unsigned char *buf = malloc(len);
  struct opt_reply *o = malloc(sizeof *o);
  int r = -ENOMEM;
  if (!buf || !o)
    goto out;
  put_be32(buf, (uint32_t)nl);
  memcpy(buf + 4, w->export_name, nl);
  put_be32(buf + 4 + nl, w->nmetas);
  size_t at = 8 + nl;
  for (unsigned i = 0; i < w->nmetas; i++) {
    size_t cl = strlen(w->metas[i]);
    put_be32(buf + at, (uint32_t)cl);
    memcpy(buf + at + 4, w->metas[i], cl);
    at += 4 + cl;
  }
  if ((r = send_option(t, NBD_OPT_SET_META_CONTEXT, buf, (uint32_t)len)) < 0) {
    failf(err, errlen, r, "sending SET_META_CONTEXT: %s", strerror(-r));
    goto out;
  }
  for (;;) {
    if ((r = read_reply(t, NBD_OPT_SET_META_CONTEXT, o, err, errlen)) < 0)
      goto out;
    if (o->reply == NBD_REP_ACK || (o->reply & NBD_REP_FLAG_ERROR))
      break;
    if (o->reply != NBD_REP_META_CONTEXT || o->len < 4)
      continue;
    for (unsigned i = 0; i < w->nmetas; i++) {
      size_t cl = strlen(w->metas[i]);
      if (o->len - 4 == cl && !memcmp(o->data + 4, w->metas[i], cl)) {
        n->meta_ids[i] = get_be32(o->data);
        n->meta_ok[i] = true;
        n->have_meta = true;
      }
    }
  }
  r = 0;
out:
  free(buf);
  free(o);
  return r;
}

static char *dup_bytes(const unsigned char *p, size_t len)
{
  if (memchr(p, '\0', len))
    return NULL;
  return strndup((const char *)p, len);
}

/* Parse one NBD_REP_INFO payload into *n. */
static int parse_info(const struct opt_reply *o, struct sh_negotiated *n, bool *got_export)
{
  uint16_t type;
  if (proto_info_type(o->data, o->len, &type) < 0)
    return -EPROTO;
  switch (type) {
  case NBD_INFO_EXPORT:
    if (proto_info_export_decode(o->data, o->len, &n->size, &n->eflags) < 0)
      return -EPROTO;
    *got_export = true;
    break;
  case NBD_INFO_BLOCK_SIZE:
    if (proto_info_block_size_decode(o->data, o->len, &n->min_block, &n->pref_block,
                                     &n->max_block) < 0)
      return -EPROTO;
    n->have_block_size = true;
    break;
  case NBD_INFO_NAME:
    free(n->name);
    n->name = dup_bytes(o->data + 2, o->len - 2);
    break;
  case NBD_INFO_DESCRIPTION:
    free(n->description);
    n->description = dup_bytes(o->data + 2, o->len - 2);
    break;
  default:
    break; /* Spec: the client MUST ignore unknown info types. */
  }
  return 0;
}

/* NBD_OPT_GO or NBD_OPT_INFO: returns 0 on ACK, 1 if the server does not know
 * the option (ERR_UNSUP), or -errno. */
static int go_or_info(struct sh_transport *t, uint32_t opt, const char *name,
                      struct sh_negotiated *n, char *err, size_t errlen)
{
  static const uint16_t infos[] = { NBD_INFO_BLOCK_SIZE, NBD_INFO_NAME, NBD_INFO_DESCRIPTION };
  size_t nl = strlen(name);
  size_t len = 4 + nl + 2 + sizeof infos;
  unsigned char *buf = malloc(len);
  struct opt_reply *o = malloc(sizeof *o);
  bool got_export = false;
  int r = -ENOMEM;
  if (!buf || !o)
    goto out;
  put_be32(buf, (uint32_t)nl);
  memcpy(buf + 4, name, nl);
  put_be16(buf + 4 + nl, sizeof infos / sizeof infos[0]);
  for (size_t i = 0; i < sizeof infos / sizeof infos[0]; i++)
    put_be16(buf + 6 + nl + 2 * i, infos[i]);
  if ((r = send_option(t, opt, buf, (uint32_t)len)) < 0) {
    failf(err, errlen, r, "sending %s: %s", opt == NBD_OPT_GO ? "GO" : "INFO", strerror(-r));
    goto out;
  }
  for (;;) {
    if ((r = read_reply(t, opt, o, err, errlen)) < 0)
      goto out;
    if (o->reply == NBD_REP_INFO) {
      if (parse_info(o, n, &got_export) < 0) {
        r = failf(err, errlen, -EPROTO, "malformed NBD_REP_INFO");
        goto out;
      }
      continue;
    }
    if (o->reply == NBD_REP_ACK) {
      r = got_export ? 0 : failf(err, errlen, -EPROTO, "server acknowledged GO without export info");
      goto out;
    }
    if (o->reply == NBD_REP_ERR_UNSUP) {
      r = 1;
      goto out;
    }
    if (o->reply & NBD_REP_FLAG_ERROR) {
      char text[512];
      error_text(o, text, sizeof text);
      r = failf(err, errlen, reply_errno(o->reply), "export '%s': %s", name, text);
      goto out;
    }
    r = failf(err, errlen, -EPROTO, "unexpected reply %u to GO", o->reply);
    goto out;
  }
out:
  free(buf);
  free(o);
  return r;
}

static int export_name(struct sh_transport *t, const char *name, bool no_zeroes,
                       struct sh_negotiated *n, char *err, size_t errlen)
{
  int r = send_option(t, NBD_OPT_EXPORT_NAME, name, (uint32_t)strlen(name));
  if (r < 0)
    return failf(err, errlen, r, "sending EXPORT_NAME: %s", strerror(-r));
  uint8_t rep[PROTO_EXPORT_NAME_REPLY_FULL];
  size_t len = no_zeroes ? PROTO_EXPORT_NAME_REPLY_SHORT : PROTO_EXPORT_NAME_REPLY_FULL;
  r = sh_transport_read_full(t, rep, len);
  if (r < 0)
    return failf(err, errlen, r == -ECONNRESET ? -ENOENT : r,
                 "export '%s': server closed the connection after EXPORT_NAME (no such export?)",
                 name);
  proto_export_name_reply_decode(rep, &n->size, &n->eflags);
  n->used_export_name = true;
  return 0;
}

int sh_handshake(struct sh_transport *t, const struct sh_want *w, struct sh_negotiated *n,
                 char *err, size_t errlen)
{
  memset(n, 0, sizeof *n);
  int no_zeroes = greet(t, err, errlen);
  if (no_zeroes < 0)
    return no_zeroes;
  int r;
  if (w->extended) {
    /* Spec: clients SHOULD be prepared for ERR_UNSUP and fall back to compact. */
    if ((r = simple_option(t, NBD_OPT_EXTENDED_HEADERS, err, errlen)) < 0)
      return r;
    n->extended = n->structured = r == 1;
  }
  if (w->structured && !n->extended) {
    if ((r = simple_option(t, NBD_OPT_STRUCTURED_REPLY, err, errlen)) < 0)
      return r;
    n->structured = r == 1;
  }
  if (w->nmetas && n->structured && (r = set_meta(t, w, n, err, errlen)) < 0)
    return r;
  r = go_or_info(t, NBD_OPT_GO, w->export_name, n, err, errlen);
  if (r == 1) {
    if (n->extended) {
      sh_negotiated_free(n);   /* INFO replies may have come before ERR_UNSUP */
      return failf(err, errlen, -EPROTO, "server negotiated extended headers but not GO");
    }
    n->have_meta = false; /* meta contexts need GO */
    memset(n->meta_ok, 0, sizeof n->meta_ok);
    r = export_name(t, w->export_name, no_zeroes, n, err, errlen);
  }
  if (r < 0) {
    sh_negotiated_free(n);
    return r;
  }
  if (!(n->eflags & NBD_FLAG_HAS_FLAGS))
    n->eflags = NBD_FLAG_HAS_FLAGS;
  if (!n->have_block_size) {
    n->min_block = 1;
    n->pref_block = 4096;
    n->max_block = NBD_DEFAULT_MAX_PAYLOAD;
  }
  if (n->min_block == 0 || n->max_block == 0) {
    sh_negotiated_free(n);   /* callers free nothing on failure */
    return failf(err, errlen, -EPROTO, "server sent a zero block size");
  }
  return 0;
}

void sh_negotiated_free(struct sh_negotiated *n)
{
  free(n->name);
  free(n->description);
  n->name = n->description = NULL;
}

int sh_list(struct sh_transport *t, char ***names, char ***descs, size_t *count,
            char *err, size_t errlen)
{
  *names = *descs = NULL;
  *count = 0;
  int r = greet(t, err, errlen);
  if (r < 0)
    return r;
  struct opt_reply *o = malloc(sizeof *o);
  size_t cap = 0;
  if (!o)
    return -ENOMEM;
  if ((r = send_option(t, NBD_OPT_LIST, NULL, 0)) < 0) {
    failf(err, errlen, r, "sending LIST: %s", strerror(-r));
    goto fail;
  }
  for (;;) {
    if ((r = read_reply(t, NBD_OPT_LIST, o, err, errlen)) < 0)
      goto fail;
    if (o->reply == NBD_REP_ACK)
      break;
    if (o->reply & NBD_REP_FLAG_ERROR) {
      char text[512];
      error_text(o, text, sizeof text);
      r = failf(err, errlen, reply_errno(o->reply), "LIST refused: %s", text);
      goto fail;
    }
    if (o->reply != NBD_REP_SERVER || o->len < 4) {
      r = failf(err, errlen, -EPROTO, "malformed LIST reply");
      goto fail;
    }
    uint32_t nl = get_be32(o->data);
    if (nl > o->len - 4) {
      r = failf(err, errlen, -EPROTO, "LIST reply name longer than the reply");
      goto fail;
    }
    if (*count == MAX_EXPORTS) {
      r = failf(err, errlen, -E2BIG, "server lists more than %u exports", MAX_EXPORTS);
      goto fail;
    }
    if (*count == cap) {
      cap = cap ? 2 * cap : 8;
      char **nn = realloc(*names, cap * sizeof *nn);
      if (!nn) { r = -ENOMEM; goto fail; }
      *names = nn;
    }
    if (!((*names)[*count] = dup_bytes(o->data + 4, nl))) {
      r = failf(err, errlen, -EPROTO, "export name with a NUL byte");
      goto fail;
    }
    (*count)++;
  }
  *descs = calloc(*count ? *count : 1, sizeof **descs);
  if (!*descs) { r = -ENOMEM; goto fail; }
  for (size_t i = 0; i < *count; i++) {
    struct sh_negotiated n = { 0 };
    char e2[256];
    r = go_or_info(t, NBD_OPT_INFO, (*names)[i], &n, e2, sizeof e2);
    if (r == 0 && n.description) {
      (*descs)[i] = n.description;
      n.description = NULL;
    }
    sh_negotiated_free(&n);
    if (r < 0 && r != -ENOENT && r != -EACCES && r != -EINVAL && r != -ENOTSUP) {
      failf(err, errlen, r, "INFO for export '%s': %s", (*names)[i], e2);
      goto fail;
    }
  }
  send_option(t, NBD_OPT_ABORT, NULL, 0);
  free(o);
  return 0;
fail:
  free(o);
  for (size_t i = 0; i < *count; i++) {
    free((*names)[i]);
    if (*descs)
      free((*descs)[i]);
  }
  free(*names);
  free(*descs);
  *names = *descs = NULL;
  *count = 0;
  return r;
}
