/* session.h: what the pure protocol code knows about exports and about one
 * negotiated connection.  Filled by the server, read by handshake.c, request.c
 * and reply.c; no I/O, no pointers into peer-controlled memory. */
#ifndef SHUNT_PROTO_SESSION_H
#define SHUNT_PROTO_SESSION_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* One export as the protocol sees it. */
struct proto_export {
  const char *name;          /* NUL-terminated, at most NBD_MAX_STRING bytes */
  const char *description;   /* NULL or "" when there is none */
  uint64_t size;
  bool read_only;
  bool can_trim, can_zero, can_fast_zero, can_cache, can_flush, can_fua;
  bool can_multi_conn;
  bool rotational;
  bool base_allocation;      /* offers the base:allocation context */
  uint32_t min_block;        /* advertised minimum block size (power of 2) */
  uint32_t pref_block;       /* preferred block size */
  uint32_t max_payload;      /* maximum payload size */
};

/* The context id the server hands out for base:allocation. */
#define PROTO_META_BASE_ALLOCATION_ID 1u

/* The state negotiated in the handshake that governs transmission. */
struct proto_session {
  const struct proto_export *export;  /* the export chosen by GO/EXPORT_NAME */
  size_t export_index;
  uint16_t eflags;           /* transmission flags sent to the client */
  bool structured;           /* NBD_OPT_STRUCTURED_REPLY acknowledged */
  bool extended;             /* NBD_OPT_EXTENDED_HEADERS acknowledged */
  bool meta_base_allocation; /* base:allocation selected for this export */
  bool strict_block_size;    /* client asked for NBD_INFO_BLOCK_SIZE: enforce alignment */
};

/* The transmission flags an export advertises, given what was negotiated. */
uint16_t proto_export_eflags(const struct proto_export *ex, bool structured_or_extended);

#endif
