/* connect.c: connecting with a hint for an unknown export (see connect.h). */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "tools/connect.h"

/* Names shown at most: a server with hundreds of exports gets a count. */
#define HINT_MAX_NAMES 8

int tools_connect(struct shunt_handle **hp, const char *uri, const struct shunt_options *opt,
                  char *err, size_t errlen)
{
  struct shunt_export *list;
  struct shunt_options lo = { 0 };
  char ignored[256];
  size_t n, len;
  int r = shunt_connect(hp, uri, opt, err, errlen);

  if (r != -ENOENT || !errlen)
    return r;
  if (opt)
    lo = *opt;
  lo.connections = 1;
  if (shunt_list_exports(uri, &lo, &list, &n, ignored, sizeof ignored) < 0)
    return r;   /* listing refused (or TLS required first): no hint */
  len = strlen(err);
  len += (size_t)snprintf(err + len, len < errlen ? errlen - len : 0, "; the server's exports: ");
  for (size_t i = 0; i < n && i < HINT_MAX_NAMES && len < errlen; i++)
    len += (size_t)snprintf(err + len, errlen - len, "%s'%s'", i ? ", " : "", list[i].name);
  if (n == 0 && len < errlen)
    len += (size_t)snprintf(err + len, errlen - len, "none listed");
  if (n > HINT_MAX_NAMES && len < errlen)
    len += (size_t)snprintf(err + len, errlen - len, " and %zu more", n - HINT_MAX_NAMES);
  if (len < errlen)
    snprintf(err + len, errlen - len, " (shunt info --list)");
  shunt_free_exports(list, n);
  return r;
}
