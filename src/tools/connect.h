/* connect.h: how the client tools connect: a libshunt handle configured from
 * their options, and when the server has no such export, the names it has in
 * the message (what 'shunt info --list' or 'nbdinfo --list' would show). */
#ifndef SHUNT_TOOLS_CONNECT_H
#define SHUNT_TOOLS_CONNECT_H

#include <stdbool.h>
#include <stddef.h>

#include "shunt/shunt.h"

/* The connection options the tools take (zero: libshunt's defaults). */
struct tools_conn_opts {
  unsigned connections;        /* 0: 1 */
  unsigned reconnect;          /* attempts after a dropped connection */
  unsigned reconnect_delay_ms; /* 0: libshunt's default */
  bool no_structured, no_extended, no_block_status;
  bool copy_reads;             /* shunt_set_copy_reads (bench --staged) */
};

/* A new handle with o applied (NULL: defaults), or NULL (out of memory). */
struct shunt_handle *tools_handle(const struct tools_conn_opts *o);

/* tools_handle() + shunt_connect_uri(); on failure *hp is NULL and err has
 * libshunt's message, with the export names appended after -ENOENT
 * (NBD_REP_ERR_UNKNOWN).  Returns 0 or -errno. */
int tools_connect(struct shunt_handle **hp, const char *uri, const struct tools_conn_opts *o,
                  char *err, size_t errlen);

#endif
