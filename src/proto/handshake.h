/* handshake.h: the fixed-newstyle handshake as a pure state machine.
 * Bytes from the client go in, option replies come out in a proto_buf; the
 * caller only moves bytes.  Nothing is allocated from a size the peer claims:
 * option data larger than PROTO_MAX_OPTION_DATA is skipped and refused. */
#ifndef SHUNT_PROTO_HANDSHAKE_H
#define SHUNT_PROTO_HANDSHAKE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "proto/session.h"

/* Largest option payload the server reads into memory; larger options are
 * discarded and answered with NBD_REP_ERR_TOO_BIG.  The caller's receive
 * buffer must hold PROTO_HS_MAX_UNIT bytes contiguously. */
#define PROTO_MAX_OPTION_DATA (64u * 1024)
#define PROTO_HS_MAX_UNIT     (16u + PROTO_MAX_OPTION_DATA)

/* A growable output buffer for replies.  It grows only with what the server
 * itself decides to send (export lists, fixed-size replies). */
struct proto_buf {
  uint8_t *data;
  size_t len, cap;
};

/* Append n bytes; returns 0 or -ENOMEM. */
int proto_buf_append(struct proto_buf *b, const void *p, size_t n);
/* Release the buffer's memory. */
void proto_buf_free(struct proto_buf *b);

enum proto_hs_stage {
  PROTO_HS_CLIENT_FLAGS,     /* waiting for the client's 32-bit flags */
  PROTO_HS_OPTION,           /* waiting for an option header (and its data) */
  PROTO_HS_DISCARD,          /* skipping the data of an oversized option */
  PROTO_HS_DONE,             /* transmission phase entered */
  PROTO_HS_CLOSED,           /* the connection must close after sending out */
  PROTO_HS_STARTTLS,         /* send out, then run the TLS handshake, then
                                call proto_hs_tls_started() */
};

/* How the server treats TLS (the spec's NOTLS, SELECTIVETLS with no TLS-only
 * export, FORCEDTLS). */
enum proto_tls_mode { PROTO_TLS_OFF, PROTO_TLS_ON, PROTO_TLS_REQUIRE };

/* Per-export access for one client, from the server's access rules. */
enum proto_access { PROTO_ACCESS_DENIED = 0, PROTO_ACCESS_RW = 1, PROTO_ACCESS_RO = 2 };

/* One connection's handshake. Zero-initialise with proto_hs_init(). */
struct proto_hs {
  enum proto_hs_stage stage;
  const struct proto_export *exports;
  size_t nexports;
  uint32_t client_flags;
  bool no_zeroes;
  bool structured, extended;
  bool meta_set;             /* SET_META_CONTEXT succeeded at least once */
  bool meta_base_allocation; /* ...and selected base:allocation */
  size_t meta_export;        /* ...for this export (index) */
  uint32_t discard_option;   /* the oversized option being skipped */
  uint64_t discard_left;     /* bytes of it still to skip */
  unsigned options_seen;
  enum proto_tls_mode tls_mode;
  bool tls_active;               /* TLS was initiated (STARTTLS acknowledged) */
  /* NULL, or one proto_access per export for this client: a denied export
   * is absent from LIST and unknown to INFO, GO and EXPORT_NAME; a read-only
   * one is advertised and enforced read-only. */
  const uint8_t *access;
  size_t out_max;            /* stop taking options once out holds this many bytes
                              * (0: no limit); the caller feeds the rest later */
  struct proto_session session;  /* valid once stage == PROTO_HS_DONE */
  const char *close_reason;      /* static text, when stage == PROTO_HS_CLOSED */
  /* Set when the client asked for an export it cannot have (GO, INFO or
   * EXPORT_NAME): the name (truncated) for the server's log.  The caller
   * clears the flag once it has logged it. */
  bool refused_export;
  char refused_name[128];
};

/* Prepare a handshake over an export table (which must outlive it).
 * An empty export name selects the export named "" if any, else the first. */
void proto_hs_init(struct proto_hs *hs, const struct proto_export *exports, size_t nexports);

/* TLS is up after PROTO_HS_STARTTLS: options continue, encrypted.  What was
 * negotiated in plaintext (structured replies, extended headers, meta
 * contexts) is forgotten, since a man in the middle could have chosen it. */
void proto_hs_tls_started(struct proto_hs *hs);

/* Append the server's greeting (NBDMAGIC, IHAVEOPT, handshake flags). */
int proto_hs_greeting(struct proto_buf *out);

/* Feed bytes received from the client.  Consumes whole protocol units only
 * and sets *consumed; the unconsumed tail must be presented again with more
 * bytes after it.  Appends any replies to out.
 * With hs->out_max set, no further option is taken once out->len reaches it,
 * so a client that sends options without reading replies cannot make the
 * caller buffer unbounded output.
 * Returns the new stage (PROTO_HS_DONE: bytes after *consumed belong to the
 * transmission phase; PROTO_HS_CLOSED: send out, then close), or -ENOMEM. */
int proto_hs_input(struct proto_hs *hs, const uint8_t *in, size_t len,
                   size_t *consumed, struct proto_buf *out);

/* Index of the export an empty or given name selects, or -1. */
long proto_find_export(const struct proto_export *exports, size_t n,
                       const char *name, size_t namelen);

#endif
