/* connect.c: connecting with a hint for an unknown export (see connect.h). */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "common/uri.h"
#include "tools/cli.h"
#include "tools/connect.h"

/* Names shown at most: a server with hundreds of exports gets a count. */
#define HINT_MAX_NAMES 8

int tools_failover_add(struct tools_failover *f, const char *cmd, const char *option,
                       const char *uri)
{
  if (!nbd_uri_is_nbd(uri))
    return cli_usage_error(cmd, "%s '%s': not an NBD URI", option, uri);
  if (f->n == TOOLS_MAX_FAILOVER)
    return cli_usage_error(cmd, "%s: at most %d failover URIs", option, TOOLS_MAX_FAILOVER);
  f->uris[f->n++] = uri;
  return 0;
}

struct shunt_handle *tools_handle(const struct tools_conn_opts *o)
{
  struct shunt_handle *h = shunt_create();
  if (!h || !o)
    return h;
  int r = 0;
  unsigned nfail = o->failover ? o->failover->n : 0;
  unsigned attempts = o->reconnect ? o->reconnect : nfail ? TOOLS_FAILOVER_ATTEMPTS : 0;
  if (o->connections)
    r = shunt_set_connections(h, o->connections);
  if (r == 0 && attempts)
    r = shunt_set_reconnect(h, attempts, o->reconnect_delay_ms);
  for (unsigned i = 0; r == 0 && i < nfail; i++)
    r = shunt_add_uri(h, o->failover->uris[i]);
  if (r == 0 && o->no_structured)
    r = shunt_set_request_structured_replies(h, false);
  if (r == 0 && o->no_extended)
    r = shunt_set_request_extended_headers(h, false);
  if (r == 0 && o->copy_reads)
    r = shunt_set_copy_reads(h, true);
  if (r == 0 && o->no_block_status)
    r = shunt_clear_meta_contexts(h);
  if (r < 0) {
    shunt_close(h);
    return NULL;
  }
  return h;
}

struct hint {
  char *err;
  size_t errlen, len, n;
};

static void add_name(void *user, const char *name, const char *description)
{
  struct hint *x = user;
  (void)description;
  if (x->n < HINT_MAX_NAMES && x->len < x->errlen)
    x->len += (size_t)snprintf(x->err + x->len, x->errlen - x->len, "%s'%s'", x->n ? ", " : "", name);
  x->n++;
}

int tools_connect(struct shunt_handle **hp, const char *uri, const struct tools_conn_opts *o,
                  char *err, size_t errlen)
{
  struct shunt_handle *h = tools_handle(o);
  *hp = NULL;
  if (!h) {
    snprintf(err, errlen, "%s: out of memory (or a bad connection option)", uri);
    return -ENOMEM;
  }
  int r = shunt_connect_uri(h, uri);
  if (r == 0) {
    *hp = h;
    return 0;
  }
  snprintf(err, errlen, "%s", shunt_last_error(h));
  if (r != -ENOENT || !errlen) {
    shunt_close(h);
    return r;
  }
  size_t base = strlen(err), len = base;
  len += (size_t)snprintf(err + len, len < errlen ? errlen - len : 0, "; the server's exports: ");
  struct hint x = { .err = err, .errlen = errlen, .len = len };
  if (shunt_list_exports(h, uri, add_name, &x) < 0) {
    err[base] = '\0';
    shunt_close(h);
    return r;   /* listing refused (or TLS required first): no hint */
  }
  len = x.len;
  if (x.n == 0 && len < errlen)
    len += (size_t)snprintf(err + len, errlen - len, "none listed");
  if (x.n > HINT_MAX_NAMES && len < errlen)
    len += (size_t)snprintf(err + len, errlen - len, " and %zu more", x.n - HINT_MAX_NAMES);
  if (len < errlen)
    snprintf(err + len, errlen - len, " (shunt info --list)");
  shunt_close(h);
  return r;
}
