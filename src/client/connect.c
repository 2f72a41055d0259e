/* connect.c: connecting a libshunt handle: the URI and its failover URIs
 * (targets), a socket given by the caller, the first connection and the
 * multi-conn ones, and what a later connection must agree with. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/timerfd.h>
#include <unistd.h>

#include "client/client.h"
#include "proto/nbd-protocol.h"

/* Dial target k (or take the socket given to shunt_connect_socket/command),
 * then negotiate.  On failure err names the server and t is closed.  Reads
 * only what connecting fixed: called without the lock when reconnecting. */
int sh_open_conn(struct shunt_handle *h, unsigned k, struct sh_transport *t,
                 struct sh_negotiated *n, char *err, size_t errlen)
{
  char e[512];
  int r = 0;
  struct sh_want w = h->want;
  const char *name = h->uri_text;
  if (h->given_fd >= 0) {
    *t = (struct sh_transport){ .fd = h->given_fd };
    h->given_fd = -1;
  } else {
    name = h->targets[k].text;
    w.export_name = h->targets[k].uri.export_name;
    r = sh_transport_dial(&h->targets[k].uri, h->opt.timeout_ms, t, e, sizeof e);
  }
  if (r == 0)
    r = sh_transport_set_timeout(t, h->opt.timeout_ms);
  if (r == 0)
    r = sh_handshake(t, &w, n, e, sizeof e);
  if (r == 0)
    r = sh_transport_set_nonblock(t);
  if (r < 0) {
    snprintf(err, errlen, "%s: %s", name, e);
    sh_transport_close(t);
  }
  return r;
}

void sh_init_conn(struct sh_conn *c, struct sh_transport *t, unsigned target,
                  const struct sh_negotiated *n)
{
  memset(c, 0, sizeof *c);
  c->t = *t;
  c->live = true;
  c->extended = n->extended;
  c->target = target;
  c->rs = RS_HDR;
  c->hneed = proto_reply_min_header(n->extended);
  memcpy(c->meta_ids, n->meta_ids, sizeof c->meta_ids);
  memcpy(c->meta_ok, n->meta_ok, sizeof c->meta_ok);
}

/* A later connection (multi-conn, or a reconnect, maybe to another server of
 * a failover list) must see the export the first one negotiated: the same
 * size, reply format and contexts, the same read-only status, at least the
 * write commands and flags that were advertised, and block sizes that the
 * requests already sized for the first one fit.  Extended headers may differ
 * between servers (each connection encodes and parses its own).  False with
 * a message in why when not. */
bool sh_same_export(const struct sh_negotiated *a, const struct sh_negotiated *n,
                    char *why, size_t len)
{
  const uint16_t need = NBD_FLAG_SEND_FLUSH | NBD_FLAG_SEND_FUA | NBD_FLAG_SEND_TRIM |
                        NBD_FLAG_SEND_WRITE_ZEROES;
  if (n->size != a->size)
    snprintf(why, len, "export size %llu differs from %llu: not the same export",
             (unsigned long long)n->size, (unsigned long long)a->size);
  else if ((n->eflags & NBD_FLAG_READ_ONLY) != (a->eflags & NBD_FLAG_READ_ONLY))
    snprintf(why, len, "the export is %s now", n->eflags & NBD_FLAG_READ_ONLY ? "read-only" : "writable");
  else if ((a->eflags & need) & ~n->eflags)
    snprintf(why, len, "the server lacks commands the first one offered (flags 0x%04x, were 0x%04x)",
             n->eflags, a->eflags);
  else if (n->structured != a->structured || n->have_meta != a->have_meta ||
           memcmp(n->meta_ok, a->meta_ok, sizeof a->meta_ok))
    snprintf(why, len, "structured replies or meta contexts differ from the first connection's");
  else if (n->min_block > a->min_block || a->min_block % n->min_block || n->max_block < a->max_block)
    snprintf(why, len, "block sizes %u..%u do not fit %u..%u", n->min_block, n->max_block,
             a->min_block, a->max_block);
  else
    return true;
  return false;
}

static void fill_info(struct shunt_handle *h)
{
  struct sh_info *i = &h->info;
  const struct sh_negotiated *n = &h->neg;
  uint16_t f = n->eflags;
  i->size = n->size;
  i->eflags = f;
  i->read_only = f & NBD_FLAG_READ_ONLY;
  i->can_flush = f & NBD_FLAG_SEND_FLUSH;
  i->can_fua = f & NBD_FLAG_SEND_FUA;
  i->can_trim = f & NBD_FLAG_SEND_TRIM;
  i->can_zero = f & NBD_FLAG_SEND_WRITE_ZEROES;
  i->can_fast_zero = f & NBD_FLAG_SEND_FAST_ZERO;
  i->can_df = (f & NBD_FLAG_SEND_DF) && n->structured;
  i->can_multi_conn = f & NBD_FLAG_CAN_MULTI_CONN;
  i->can_cache = f & NBD_FLAG_SEND_CACHE;
  i->rotational = f & NBD_FLAG_ROTATIONAL;
  i->structured = n->structured;
  i->extended = n->extended;
  i->block_status = n->have_meta;
  i->used_export_name = n->used_export_name;
  i->min_block = n->min_block;
  i->pref_block = n->pref_block;
  i->max_block = n->max_block;
  i->export_name = n->name ? n->name : h->want.export_name;
  i->description = n->description;
  i->server = h->uri_text;
}

/* Apply the options to what the handshake asks for. */
static void fill_want(struct shunt_handle *h, const char *export_name)
{
  h->want.export_name = export_name;
  h->want.structured = !h->opt.no_structured;
  h->want.extended = !h->opt.no_structured && !h->opt.no_extended;
  h->want.metas = h->metas;
  h->want.nmetas = h->opt.no_structured ? 0 : h->nmetas;
}

/* The first connection: the targets in order until one answers (one socket
 * for socket/command connections).  Returns the target or -errno, with the
 * failures in err. */
static int open_first(struct shunt_handle *h, struct sh_transport *t, char *err, size_t errlen)
{
  size_t len = 0;
  int r = -ENOTCONN;
  unsigned n = h->given_fd >= 0 ? 1 : h->ntargets;
  for (unsigned k = 0; k < n; k++) {
    char e[768];
    if ((r = sh_open_conn(h, k, t, &h->neg, e, sizeof e)) == 0)
      return (int)k;
    if (len < errlen)
      len += (size_t)snprintf(err + len, errlen - len, "%s%s", k ? "; " : "", e);
  }
  return r;
}

/* Open the first connection, then the multi-conn ones to the same target.
 * On failure the handle is left unconnected. */
static int connect_all(struct shunt_handle *h, unsigned want_conns)
{
  char err[1536];
  int r;
  if ((h->wakefd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK)) < 0) {
    r = -errno;
    snprintf(err, sizeof err, "%s: eventfd: %s", h->uri_text, strerror(-r));
    goto fail;
  }
  if (h->opt.reconnect &&
      (h->timerfd = timerfd_create(CLOCK_MONOTONIC, TFD_CLOEXEC | TFD_NONBLOCK)) < 0) {
    r = -errno;
    snprintf(err, sizeof err, "%s: timerfd: %s", h->uri_text, strerror(-r));
    goto fail;
  }
  if (!(h->conns = calloc(want_conns, sizeof *h->conns))) {
    r = -ENOMEM;
    snprintf(err, sizeof err, "%s: out of memory", h->uri_text);
    goto fail;
  }
  struct sh_transport t;
  int k = open_first(h, &t, err, sizeof err);
  if ((r = k) < 0)
    goto fail;
  if (h->ntargets)
    h->uri_text = h->targets[k].text;
  sh_init_conn(&h->conns[0], &t, (unsigned)k, &h->neg);
  h->nconns = 1;
  /* Spec (NBD_FLAG_CAN_MULTI_CONN): only then may several connections share
   * the export with consistent flush semantics. */
  unsigned want = (h->neg.eflags & NBD_FLAG_CAN_MULTI_CONN) ? want_conns : 1;
  while (h->nconns < want) {
    struct sh_negotiated n;
    char why[256];
    if ((r = sh_open_conn(h, (unsigned)k, &t, &n, err, sizeof err)) < 0)
      goto fail;
    bool same = sh_same_export(&h->neg, &n, why, sizeof why) && n.eflags == h->neg.eflags &&
                n.extended == h->neg.extended;
    for (unsigned i = 0; same && i < SH_MAX_META; i++)
      same = !n.meta_ok[i] || n.meta_ids[i] == h->neg.meta_ids[i];
    sh_negotiated_free(&n);
    if (!same) {
      sh_transport_close(&t);
      snprintf(err, sizeof err, "%s: connection %u negotiated different parameters",
               h->uri_text, h->nconns);
      r = -EPROTO;
      goto fail;
    }
    sh_init_conn(&h->conns[h->nconns++], &t, (unsigned)k, &h->neg);
  }
  fill_info(h);
  h->connected = true;
  return 0;
fail:
  sh_set_error(h, err);
  sh_disconnect(h);
  return r;
}

/* Parse text into target k, with the TLS credentials the setters gave where
 * the URI has none.  0 or -errno with a message set. */
static int add_target(struct shunt_handle *h, const char *text)
{
  char e[256], msg[768];
  struct sh_target *tg = &h->targets[h->ntargets];
  int r = nbd_uri_parse(text, &tg->uri, e, sizeof e);
  if (r < 0) {
    snprintf(msg, sizeof msg, "%s: %s", text, r == -EINVAL ? e : strerror(-r));
    sh_set_error(h, msg);
    return r;
  }
  h->ntargets++;
  struct nbd_uri *u = &tg->uri;
  if (!(tg->text = strdup(text)) ||
      (!u->tls_psk_file && h->opt.tls_psk_file && !(u->tls_psk_file = strdup(h->opt.tls_psk_file))) ||
      (!u->tls_certificates && h->opt.tls_certificates &&
       !(u->tls_certificates = strdup(h->opt.tls_certificates)))) {
    sh_set_error(h, "out of memory");
    return -ENOMEM;
  }
  if (u->tls_verify_peer < 0)
    u->tls_verify_peer = h->opt.tls_verify_peer;
  if (h->ntargets > 1 && u->tls != h->tls) {
    snprintf(msg, sizeof msg, "%s: failover URIs must all use TLS (nbds) or none (nbd)", text);
    sh_set_error(h, msg);
    return -EINVAL;
  }
  h->tls = u->tls;
  return 0;
}

static int check_connectable(struct shunt_handle *h)
{
  if (h->connected) {
    sh_set_error(h, "the handle is already connected");
    return -EISCONN;
  }
  return 0;
}

int shunt_connect_uri(struct shunt_handle *h, const char *uri)
{
  int r = check_connectable(h);
  if (r < 0)
    return r;
  if (!uri) {
    sh_set_error(h, "shunt_connect_uri: no URI");
    return -EINVAL;
  }
  r = add_target(h, uri);
  for (unsigned i = 0; r == 0 && i < h->opt.nalt; i++)
    r = add_target(h, h->opt.alt_uris[i]);
  if (r < 0) {
    sh_disconnect(h);
    return r;
  }
  h->uri_text = h->targets[0].text;
  fill_want(h, h->targets[0].uri.export_name);
  return connect_all(h, h->opt.connections);
}

int sh_connect_fd(struct shunt_handle *h, int fd, const char *what)
{
  int r = check_connectable(h);
  if (r < 0) {
    close(fd);
    return r;
  }
  if (!(h->fd_what = strdup(what))) {
    close(fd);
    sh_set_error(h, "out of memory");
    return -ENOMEM;
  }
  h->uri_text = h->fd_what;
  h->given_fd = fd;
  unsigned reconnect = h->opt.reconnect;
  h->opt.reconnect = 0; /* nothing to dial again */
  fill_want(h, h->opt.export_name ? h->opt.export_name : "");
  r = connect_all(h, 1);
  h->opt.reconnect = reconnect;
  return r;
}

int shunt_connect_socket(struct shunt_handle *h, int fd)
{
  char what[64];
  if (fd < 0) {
    sh_set_error(h, "shunt_connect_socket: a negative fd");
    return -EINVAL;
  }
  snprintf(what, sizeof what, "fd %d", fd);
  return sh_connect_fd(h, fd, what);
}

