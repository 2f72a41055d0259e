/* connect.h: how the client tools connect: shunt_connect(), and when the
 * server has no such export, the names it has in the message (what
 * 'shunt info --list' or 'nbdinfo --list' would show). */
#ifndef SHUNT_TOOLS_CONNECT_H
#define SHUNT_TOOLS_CONNECT_H

#include <stddef.h>

#include "shunt/shunt.h"

/* shunt_connect(), with the export names appended to err after -ENOENT
 * (NBD_REP_ERR_UNKNOWN).  Returns what shunt_connect returned. */
int tools_connect(struct shunt_handle **hp, const char *uri, const struct shunt_options *opt,
                  char *err, size_t errlen);

#endif
