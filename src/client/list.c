/* list.c: shunt_list_exports(): NBD_OPT_LIST (then NBD_OPT_INFO for each
 * description) on a connection of its own, with the handle's settings; the
 * handle stays unconnected. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "client/client.h"

int shunt_list_exports(struct shunt_handle *h, const char *uri, shunt_export_fn fn, void *user)
{
  struct nbd_uri u;
  struct sh_transport t = { .fd = -1 };
  char **names = NULL, **descs = NULL;
  size_t n = 0;
  char e[512], msg[1024];
  int r = nbd_uri_parse(uri, &u, e, sizeof e);
  if (r < 0) {
    snprintf(msg, sizeof msg, "%s: %s", uri, r == -EINVAL ? e : strerror(-r));
    sh_set_error(h, msg);
    return r;
  }
  sh_lock(h);
  unsigned timeout = h->opt.timeout_ms;
  if (!u.tls_psk_file && h->opt.tls_psk_file && !(u.tls_psk_file = strdup(h->opt.tls_psk_file)))
    r = -ENOMEM;
  if (!u.tls_certificates && h->opt.tls_certificates &&
      !(u.tls_certificates = strdup(h->opt.tls_certificates)))
    r = -ENOMEM;
  if (u.tls_verify_peer < 0)
    u.tls_verify_peer = h->opt.tls_verify_peer;
  sh_unlock(h);
  if (r < 0)
    snprintf(e, sizeof e, "out of memory");
  if (r == 0)
    r = sh_transport_dial(&u, timeout, &t, e, sizeof e);
  if (r == 0 && (r = sh_transport_set_timeout(&t, timeout)) < 0)
    snprintf(e, sizeof e, "%s", strerror(-r));
  if (r == 0)
    r = sh_list(&t, &names, &descs, &n, e, sizeof e);
  sh_transport_close(&t);
  nbd_uri_free(&u);
  if (r < 0) {
    snprintf(msg, sizeof msg, "%s: %s", uri, e);
    sh_set_error(h, msg);
    return r;
  }
  for (size_t i = 0; i < n; i++) {
    if (fn)
      fn(user, names[i], descs[i]);
    free(names[i]);
    free(descs[i]);
  }
  free(names);
  free(descs);
  return 0;
}
