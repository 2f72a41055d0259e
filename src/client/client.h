/* client.h: libshunt's internal structures, shared by handle.c (connections,
 * event loop), submit.c (requests and send queues), receive.c (the reply state
 * machine) and sync.c (synchronous wrappers). */
#ifndef SHUNT_CLIENT_CLIENT_H
#define SHUNT_CLIENT_CLIENT_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>
#include <sys/uio.h>

#include "client/cover.h"
#include "client/handshake.h"
#include "client/transport.h"
#include "common/uri.h"
#include "proto/reply.h"
#include "proto/request.h"
#include "shunt/shunt.h"

#define SH_IOV_INLINE 4
#define SH_MAX_CONNECTIONS 64
#define SH_MAX_URIS 16       /* the URI connected to plus its failover URIs */

/* A server the handle may connect to: shunt_connect_uri's, then shunt_add_uri's. */
struct sh_target {
  char *text;
  struct nbd_uri uri;
};

/* What the setters configure (shunt.h documents each). */
struct sh_options {
  unsigned connections;
  bool no_structured, no_extended;
  unsigned reconnect, reconnect_delay_ms, timeout_ms;
  unsigned reconnect_deadline_ms; /* 0: none */
  char *alt_uris[SH_MAX_URIS - 1]; /* shunt_add_uri: failover URIs, in order */
  unsigned nalt;
  bool copy_reads;
  char *export_name;         /* for socket/command connections */
  char *tls_psk_file, *tls_certificates;
  int tls_verify_peer;       /* -1: unset */
};

/* What negotiation produced (the getters read it). */
struct sh_info {
  uint64_t size;
  uint16_t eflags;
  bool read_only, can_flush, can_fua, can_trim, can_zero, can_fast_zero, can_df,
       can_multi_conn, can_cache, rotational;
  bool structured, extended, block_status, used_export_name;
  uint32_t min_block, pref_block, max_block;
  const char *export_name, *description, *server;
};

/* The counters, in enum shunt_stat's order. */
struct sh_stats {
  uint64_t requests, errors, bytes_read, bytes_written, payload_bytes_copied, hole_bytes,
           chunks, reconnects, retried, receive_calls, failovers;
};

/* One request, from submit to completion. */
struct sh_req {
  uint64_t cookie;
  uint32_t slot;
  uint16_t cmd;              /* NBD_CMD_* */
  uint16_t wflags;           /* NBD_CMD_FLAG_* on the wire */
  uint64_t offset, length;
  struct iovec *iov;         /* the caller's buffers (array copied) */
  int iovcnt;
  struct iovec iov_inline[SH_IOV_INLINE];
  shunt_done_fn done;
  shunt_extent_fn extent;
  void *user;
  int error;                 /* first error seen, negative errno */
  char *errmsg;              /* message for it, or NULL */
  bool errmsg_server;        /* errmsg came from the server */
  uint64_t covered;          /* read: bytes delivered by data/hole chunks */
  struct sh_cover cover;     /* read: which bytes the chunks claimed (no overlaps) */
  uint64_t bs_pos;           /* block status: offset of the next extent */
  int conn;                  /* connection it was sent on */
  unsigned retries;
  /* Payload moved by the kernel instead of through the iovecs (-1: none).
   * Read: bytes from pipe_from on are spliced into pipe_fd while they arrive
   * in order (pipe_len counts them) until pipe_done.  Write: request bytes
   * [pipe_from, pipe_from + pipe_len) are spliced from pipe_fd; or the whole
   * payload is sent from file_fd at file_off (sendfile). */
  int pipe_fd;
  uint64_t pipe_from, pipe_len;
  bool pipe_done;
  int file_fd;
  uint64_t file_off;
  /* Sending: header bytes, then (writes) the payload. */
  unsigned char hdr[32];
  size_t hdrlen;
  uint64_t sent;
  struct sh_req *next;       /* send queue link */
  bool queued;
};

enum sh_rstate {
  RS_HDR,                    /* reading a reply header */
  RS_META,                   /* reading a bounded chunk payload (prefix, error, bs head) */
  RS_DATA,                   /* reading read payload into the caller's iovecs */
  RS_BS_DESC,                /* reading block status descriptors in batches */
};

struct sh_conn {
  struct sh_transport t;
  bool live;
  bool extended;             /* extended headers on this connection (may differ
                                between failover servers) */
  unsigned target;           /* index in the handle's targets it is connected to */
  struct sh_req *sq_head, *sq_tail;
  unsigned inflight;         /* requests assigned to this connection */
  enum sh_rstate rs;
  unsigned char hbuf[32];
  size_t hgot, hneed;
  unsigned char labuf[32];   /* the next reply header, read ahead (receive.c) */
  struct proto_reply rep;
  struct sh_req *cur;
  uint64_t left;             /* RS_DATA/RS_BS_DESC: payload bytes still to read */
  uint64_t data_rel;         /* RS_DATA: where in the request the next byte goes */
  unsigned char mbuf[PROTO_MAX_ERROR_CHUNK + 16];
  size_t mgot, mneed;
  bool bs_ext, bs_mine;
  unsigned bs_ctx;           /* index in the handle's meta list of the current chunk */
  /* Context ids the server gave on this connection, per requested name. */
  uint32_t meta_ids[SH_MAX_META];
  bool meta_ok[SH_MAX_META];
  /* Lost with opt.reconnect: its requests (and new ones if no connection is
   * up) wait, not on the send queue's wire, for the next attempt at due_ms. */
  bool reconnecting;
  bool dialing;              /* a thread is connecting it now, without the lock */
  unsigned attempts;         /* attempts made since it was lost */
  unsigned delay_ms;         /* backoff after the next failed attempt */
  uint64_t due_ms;           /* CLOCK_MONOTONIC milliseconds of the next attempt */
  uint64_t lost_ms;          /* when it was lost (the reconnect deadline counts from it) */
  unsigned next_target;      /* the target of the next attempt (round robin) */
  unsigned first_target;     /* the first target tried since it was lost */
  int lost_err;              /* why it was lost: its requests' error if it gives up */
  char lost_msg[512];
};

struct shunt_handle {
  bool connected;
  struct sh_target targets[SH_MAX_URIS]; /* URI connections: what it may dial */
  unsigned ntargets;
  bool tls;                  /* the targets use TLS */
  char *fd_what;             /* socket/command connections: the server's name */
  const char *uri_text;      /* the server named in messages: the target the
                                latest connection was made to, or fd_what */
  int given_fd;              /* shunt_connect_socket/command: the socket until negotiated */
  pid_t child;               /* shunt_connect_command: the server process (0: none) */
  struct sh_options opt;
  char *metas[SH_MAX_META];  /* meta contexts to request */
  unsigned nmetas;
  struct sh_want want;
  struct sh_negotiated neg;
  struct sh_info info;
  struct sh_conn *conns;
  unsigned nconns;
  int wakefd;                /* eventfd for shunt_wake */
  int timerfd;               /* opt.reconnect: fires when a reconnect is due (else -1) */
  /* Requests in flight, indexed by the low 32 bits of their cookie. */
  struct sh_req **slots;
  uint32_t nslots, *free_slots, nfree;
  uint32_t gen;
  unsigned in_flight;
  int completed;             /* completions in the current poll */
  struct sh_stats stats;
  char last_error[1024];
  char msg[1024];            /* message of the completion being reported */
  char lost[512];            /* why the last connection was lost, for later submits */
  /* Threads: one lock (recursive: callbacks submit) guards everything above.
   * One thread at a time "leads" (sits in poll() without the lock, then
   * processes under it); others wait on `progress` (leader/follower). */
  pthread_mutex_t lock;
  pthread_cond_t progress;
  bool polling;
  pthread_t poller;
  uint64_t rounds;           /* poll rounds finished, for followers */
};

/* options.c: the defaults (0 or -ENOMEM), and freeing what the setters kept. */
int sh_options_init(struct shunt_handle *h);
void sh_options_free(struct shunt_handle *h);

/* connect.c: negotiate on fd (taken over), a socket to the server `what`
 * (named in messages); one connection, no reconnect.  0 or -errno. */
int sh_connect_fd(struct shunt_handle *h, int fd, const char *what);
/* Dial target k (or take the socket given to shunt_connect_socket/command),
 * then negotiate into *n.  On failure err names the server and t is closed.
 * Reads only what connecting fixed: called without the lock when
 * reconnecting. */
int sh_open_conn(struct shunt_handle *h, unsigned k, struct sh_transport *t,
                 struct sh_negotiated *n, char *err, size_t errlen);
/* Set up c for the transport t, negotiated as n, connected to target. */
void sh_init_conn(struct sh_conn *c, struct sh_transport *t, unsigned target,
                  const struct sh_negotiated *n);
/* Whether a later connection (multi-conn, reconnect, failover), negotiated
 * as n, shows the export the first one (a) did; false with why otherwise. */
bool sh_same_export(const struct sh_negotiated *a, const struct sh_negotiated *n,
                    char *why, size_t len);

/* handle.c: undo a connect: back to a configured, unconnected handle.
 * Requests still in flight fail with -ECANCELED. */
void sh_disconnect(struct shunt_handle *h);

/* command.c: wait for the server process of shunt_connect_command (if any). */
void sh_wait_child(struct shunt_handle *h);

void sh_lock(struct shunt_handle *h);
void sh_unlock(struct shunt_handle *h);
/* Record a failure message: the handle's last error and the calling thread's. */
void sh_set_error(struct shunt_handle *h, const char *msg);
/* One round of the event loop with the lock held (see shunt_poll); a follower
 * waits for the leader's round instead.  Returns completions or -errno. */
int sh_poll_round(struct shunt_handle *h, int timeout_ms);

/* submit.c */
int sh_conn_flush_sends(struct shunt_handle *h, struct sh_conn *c);
/* False for a write whose pipe bytes were partly sent: it cannot be resent. */
bool sh_req_replayable(const struct sh_req *r);
/* Encode r's header for a connection with (or without) extended headers. */
void sh_req_encode(struct sh_req *r, bool extended);
void sh_queue_req(struct shunt_handle *h, unsigned ci, struct sh_req *r);
struct sh_req *sh_lookup(struct shunt_handle *h, uint64_t cookie);
/* Complete r: run its callback and free it. */
void sh_complete(struct shunt_handle *h, struct sh_req *r);
/* Format "<uri>: <CMD> <len> bytes at offset <off>" into buf. */
void sh_describe(const struct shunt_handle *h, const struct sh_req *r, char *buf, size_t len);

/* receive.c: read what is available on c; returns 0 or -errno (connection lost;
 * *why says why). */
int sh_conn_receive(struct shunt_handle *h, struct sh_conn *c, const char **why);

/* handle.c: the connection died: fail or retry its requests. */
void sh_conn_lost(struct shunt_handle *h, unsigned ci, int err, const char *why);

/* Pick the iovec slice [off, off+len) of iov into out[0..max); returns the count. */
int sh_iov_slice(const struct iovec *iov, int iovcnt, uint64_t off, uint64_t len,
                 struct iovec *out, int max);

#endif
