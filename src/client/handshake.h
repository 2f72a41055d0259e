/* handshake.h: the client side of NBD fixed-newstyle negotiation on one blocking
 * connection: extended headers, structured replies, base:allocation, GO with
 * fallback to EXPORT_NAME, and LIST/INFO for listing exports. */
#ifndef SHUNT_CLIENT_HANDSHAKE_H
#define SHUNT_CLIENT_HANDSHAKE_H

#include <stdbool.h>
#include <stdint.h>

#include "client/transport.h"

#define SH_MAX_META 16

struct sh_negotiated {
  uint64_t size;
  uint16_t eflags;
  bool structured, extended, used_export_name, have_meta;
  uint32_t meta_ids[SH_MAX_META]; /* the id of each wanted context the server took */
  bool meta_ok[SH_MAX_META];
  uint32_t min_block, pref_block, max_block;
  bool have_block_size;
  char *name;                    /* NBD_INFO_NAME, or NULL */
  char *description;             /* NBD_INFO_DESCRIPTION, or NULL */
};

struct sh_want {
  const char *export_name;
  bool structured, extended;
  char *const *metas;            /* meta contexts to request (none: no SET_META_CONTEXT) */
  unsigned nmetas;
};

/* Negotiate on t (blocking, timeouts already set).  Returns 0 and fills *n (free
 * with sh_negotiated_free), or -errno with a message in err. */
int sh_handshake(struct sh_transport *t, const struct sh_want *w, struct sh_negotiated *n,
                 char *err, size_t errlen);
void sh_negotiated_free(struct sh_negotiated *n);

/* After the greeting: list exports (NBD_OPT_LIST), then NBD_OPT_INFO each one
 * for its description, then NBD_OPT_ABORT.  names and descs are arrays of *count
 * malloc'd strings (descs entries may be NULL). */
int sh_list(struct sh_transport *t, char ***names, char ***descs, size_t *count,
            char *err, size_t errlen);

#endif
