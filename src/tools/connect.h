/* connect.h: how the client tools connect: a libshunt handle configured from
 * their options, and when the server has no such export, the names it has in
 * the message (what 'shunt info --list' or 'nbdinfo --list' would show). */
#ifndef SHUNT_TOOLS_CONNECT_H
#define SHUNT_TOOLS_CONNECT_H

#include <stdbool.h>
#include <stddef.h>

#include "shunt/shunt.h"

/* Failover URIs of one export, each given as its own argument (--failover
 * URI, repeated): no separator to split on, since commas, semicolons and even
 * spaces (in a unix socket path) can appear in a URI.  The strings are the
 * caller's (argv). */
#define TOOLS_MAX_FAILOVER 15
struct tools_failover {
  const char *uris[TOOLS_MAX_FAILOVER];
  unsigned n;
};

/* Reconnect attempts when failover URIs are given without --reconnect. */
#define TOOLS_FAILOVER_ATTEMPTS 10

/* Add uri to f for option `option` of command `cmd`: 0, or a usage error
 * printed and 2 (an NBD URI is expected, at most TOOLS_MAX_FAILOVER). */
int tools_failover_add(struct tools_failover *f, const char *cmd, const char *option,
                       const char *uri);

/* The connection options the tools take (zero: libshunt's defaults). */
struct tools_conn_opts {
  unsigned connections;        /* 0: 1 */
  unsigned reconnect;          /* attempts after a dropped connection */
  unsigned reconnect_delay_ms; /* 0: libshunt's default */
  bool no_structured, no_extended, no_block_status;
  bool copy_reads;             /* shunt_set_copy_reads (bench --staged) */
  const struct tools_failover *failover; /* other URIs of the export, or NULL */
};

/* A new handle with o applied (NULL: defaults), or NULL (out of memory). */
struct shunt_handle *tools_handle(const struct tools_conn_opts *o);

/* tools_handle() + shunt_connect_uri(); on failure *hp is NULL and err has
 * libshunt's message, with the export names appended after -ENOENT
 * (NBD_REP_ERR_UNKNOWN).  Returns 0 or -errno. */
int tools_connect(struct shunt_handle **hp, const char *uri, const struct tools_conn_opts *o,
                  char *err, size_t errlen);

#endif
