/* endpoint.c: choosing the kind of a `shunt copy` endpoint by its name (see
 * endpoint.h). */
#include <stdio.h>
#include <stdlib.h>

#include "common/uri.h"
#include "tools/copy_same.h"
#include "tools/endpoint.h"

int endpoint_open(struct endpoint **ep, const char *name, const struct endpoint_params *p,
                  char *err, size_t errlen)
{
  *ep = NULL;
  if (!nbd_uri_is_nbd(name))
    return endpoint_open_file(ep, name, p, err, errlen);
  /* Writing an export onto itself would read what it just wrote. */
  if (p->source && nbd_uri_is_nbd(p->source->name) && copy_same_export(p->source->name, name)) {
    snprintf(err, errlen, "%s and %s are the same export", p->source->name, name);
    return -1;
  }
  return endpoint_open_nbd(ep, name, p, err, errlen);
}

int endpoint_close(struct endpoint *e, char *err, size_t errlen)
{
  return e ? e->ops->close(e, err, errlen) : 0;
}
