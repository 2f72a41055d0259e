/* shunt.h: libshunt, the shunt NBD client library (public API).
 *
 * libshunt connects to an NBD server (by URI, with failover URIs of the same
 * export; on a socket the caller connected; or to a server command it starts),
 * negotiates (fixed newstyle, GO with fallback to EXPORT_NAME, structured
 * replies, meta contexts by name, extended headers), and runs many requests in
 * flight over one or more connections.  The payload of
 * a read is received straight into the caller's iovecs: no bounce buffer, no
 * copy, even when structured chunks arrive out of order.
 *
 * THREADING RULES
 *   - A handle may be shared by threads.  Submit calls, the synchronous
 *     wrappers, shunt_poll(), the counters and getters are thread-safe; one
 *     internal lock guards the handle.  When several threads wait (synchronous
 *     calls, shunt_poll()), one of them at a time drives the sockets ("leader",
 *     in poll() without the lock) and completes everybody's requests; the others
 *     sleep until its round ends ("followers").  So a FUSE server may call
 *     shunt_pread() from many threads and get many requests in flight.
 *   - Completion callbacks run on whichever thread leads, with the handle's lock
 *     held: keep them short.  A callback may submit new requests; it must not
 *     call shunt_poll(), a synchronous wrapper (they fail with -EDEADLK) or
 *     shunt_close().
 *   - shunt_pollfds()/shunt_pollfds_process() are for a single-threaded program
 *     that runs its own event loop; do not mix them with other threads polling.
 *   - shunt_close() must not race with any other call on the handle.
 *   - shunt_last_error() returns the last failure seen by the calling thread on
 *     that handle (each thread keeps its own).
 *   - shunt_wake() may be called from any thread or a signal handler.
 *   - Reconnecting (shunt_set_reconnect) holds nobody up: while a lost connection
 *     waits out its backoff, its requests wait, other connections keep
 *     serving, and every call returns as usual.  When the attempt is due, the
 *     thread whose shunt_poll(), synchronous call or shunt_pollfds_process()
 *     finds it makes it (connect + handshake, bounded by shunt_set_timeout())
 *     without the lock and without leading: that one call returns after the
 *     attempt, the other threads carry on meanwhile.
 *
 * ERRORS
 *   Functions return 0 (or a non-negative value) on success and a negative errno
 *   on failure.  shunt_last_error() gives a message naming the server and the
 *   request ("nbd://h:p/e: READ 4096 bytes at offset 0: Input/output error
 *   (server: ...)").  A dropped connection fails its in-flight requests with
 *   -ECONNRESET (or the socket's error) unless reconnect is enabled.
 *
 *   A server that breaks the NBD reply rules (bad magic, a reply for no request
 *   in flight, a chunk outside its request, chunks of one read that overlap
 *   each other or an earlier error offset, a successful read whose chunks do
 *   not cover all of it, block status extents out of range) is a protocol
 *   violation: the connection is dropped and the requests in flight on it fail
 *   with -EPROTO, the message naming the violation; it is not reconnected.
 *   EPROTO, not EIO: the server reported no I/O error, its stream can no longer
 *   be trusted (a server that sent one range twice may have lost others), and
 *   the spec lets a client disconnect then.  A read whose server had already
 *   sent an error chunk keeps that error.  Overlaps are caught before a chunk's
 *   bytes are written, with no allocation for the usual few or ordered chunks
 *   and at most length / 8 bytes for a read split into hundreds of disjoint
 *   pieces in random order.
 *
 * ABI
 *   The handle is opaque: the caller never allocates a library structure, so
 *   the library can grow without breaking programs built against an older
 *   header.  Options are set through setters, what negotiation produced and
 *   the counters are read through getters (one per value, or one taking an
 *   enum: new values get new enumerators).  The only structure whose layout is
 *   public, struct shunt_result, is allocated by the library and passed to
 *   the caller's callback read-only: members are only ever added at its end.
 *   The shared library exports the shunt_* symbols only, each with the
 *   version node LIBSHUNT_1.0.  pkg-config module: libshunt.
 *
 * MEMORY
 *   The iovec array passed to a submit call is copied; the buffers it points to
 *   must stay valid (and, for writes, unchanged) until the completion callback.
 */
#ifndef SHUNT_SHUNT_H
#define SHUNT_SHUNT_H

#include <poll.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/uio.h>

#ifdef __cplusplus
extern "C" {
#endif

struct shunt_handle;

/* ---- The handle ----
 * A handle is created empty, configured with the shunt_set_* and shunt_add_*
 * calls, then connected once with one of the shunt_connect_* calls.  Setters
 * return 0, -EINVAL for a bad value, -EISCONN once connected (configuration is
 * fixed then), or -ENOMEM.  Getters of what negotiation produced return
 * -ENOTCONN (or NULL) before a successful connect. */

/* A new, unconnected handle with the defaults below, or NULL (out of memory).
 * Free it with shunt_close(), connected or not. */
struct shunt_handle *shunt_create(void);

/* Close every connection (sending NBD_CMD_DISC), fail requests still in flight
 * (their callbacks run with -ECANCELED), wait for a server started by
 * shunt_connect_command(), and free the handle.  NULL is fine. */
void shunt_close(struct shunt_handle *h);

/* ---- Configuration (before connecting) ---- */

/* Wanted connections (default 1, at most 64); more than one is used only when
 * the server advertises CAN_MULTI_CONN and the handle connects by URI. */
int shunt_set_connections(struct shunt_handle *h, unsigned n);

/* Ask for structured replies (default true).  false: simple replies only and
 * no meta context, e.g. for handing the sockets to the kernel nbd driver. */
int shunt_set_request_structured_replies(struct shunt_handle *h, bool on);

/* Ask for extended headers (default true; needs structured replies). */
int shunt_set_request_extended_headers(struct shunt_handle *h, bool on);

/* Meta contexts to request with NBD_OPT_SET_META_CONTEXT.  The list starts as
 * { "base:allocation" }; shunt_add_meta_context() appends one (any name, e.g.
 * "qemu:dirty-bitmap:b0" or "qemu:allocation-depth"; at most 16, each at most
 * 4096 bytes), shunt_clear_meta_contexts() empties it (no block status). */
int shunt_add_meta_context(struct shunt_handle *h, const char *name);
int shunt_clear_meta_contexts(struct shunt_handle *h);

/* Reconnect after a dropped connection: up to attempts attempts (0, the
 * default: fail the in-flight requests at once), the first after delay_ms
 * (0: 100 ms), the delay doubled after each failed one (10 s at most).  The
 * requests in flight are resent once the connection is back (every NBD command
 * is idempotent); meanwhile they, and new ones while no other connection is
 * up, wait; nothing blocks (see THREADING RULES).  After the last failed
 * attempt they fail with the error the connection was lost with ("... gave up
 * after N reconnect attempts"); later submits fail with -ENOTCONN once no
 * connection is left.  A protocol violation (-EPROTO) is never reconnected.
 * URI connections only; with failover URIs (shunt_add_uri) each attempt goes
 * to the next URI, and the delay applies after each full round of the list. */
int shunt_set_reconnect(struct shunt_handle *h, unsigned attempts, unsigned delay_ms);

/* Give up reconnecting a lost connection once it has been down deadline_ms
 * (0, the default: no deadline; the attempts of shunt_set_reconnect() still
 * bound it).  The last attempt is made at the deadline at the latest. */
int shunt_set_reconnect_deadline(struct shunt_handle *h, unsigned deadline_ms);

/* Failover: another URI of the same export (another gateway of a shared
 * disk), tried after the URI given to shunt_connect_uri() and those added
 * before it, in order (at most 15).  Connecting tries them in that order
 * until one answers.  With shunt_set_reconnect(), a lost connection is
 * re-established on the next URI of the list, round robin; it must show the
 * same export (the same size, read-only status, at least the write commands
 * the first server offered, compatible block sizes; extended headers may
 * differ): a server that does not is refused, its reason kept for the
 * message if the handle gives up.  The requests in flight are then resent
 * (reads, writes, flushes: a write acknowledged by the lost server is on the
 * shared storage; one it had not acknowledged is written again with the same
 * bytes).  All URIs use TLS or none does.  URI connections only. */
int shunt_add_uri(struct shunt_handle *h, const char *uri);

/* Connect + handshake timeout in ms (default 30000); the server's greeting
 * must arrive within 10 s, or within this when shorter. */
int shunt_set_timeout(struct shunt_handle *h, unsigned timeout_ms);

/* For comparison only: receive read payload into a library buffer and copy it
 * out (the classic staged path; counted in SHUNT_STAT_PAYLOAD_BYTES_COPIED). */
int shunt_set_copy_reads(struct shunt_handle *h, bool on);

/* The export to ask for on shunt_connect_socket()/shunt_connect_command()
 * (default ""); a URI names its own export. */
int shunt_set_export_name(struct shunt_handle *h, const char *name);

/* TLS credentials for nbds:// and nbds+unix:// URIs, used where the URI does
 * not give its own tls-psk-file, tls-certificates or tls-verify-peer
 * parameter (see docs/libshunt.md).  NULL unsets. */
int shunt_set_tls_psk_file(struct shunt_handle *h, const char *path);
int shunt_set_tls_certificates(struct shunt_handle *h, const char *dir);
int shunt_set_tls_verify_peer(struct shunt_handle *h, bool verify);

/* ---- Connecting (once per handle) ----
 * Each returns 0 or a negative errno; shunt_last_error() has a message naming
 * the server and what failed.  A failed connect leaves the handle unconnected
 * and configurable: it may be tried again. */

/* Connect to uri: nbd://host[:port]/export, nbd+unix:///export?socket=PATH,
 * or with TLS nbds://... and nbds+unix://... (STARTTLS before any other
 * option, the TLS handshake with GnuTLS; credentials from the URI's tls-*
 * parameters or the setters above, else X.509 against the system's trusted
 * CAs).  Opens the extra connections of shunt_set_connections() when the
 * server allows multi-conn. */
int shunt_connect_uri(struct shunt_handle *h, const char *uri);

/* Negotiate on fd, a socket already connected to an NBD server (the handle
 * takes it over and closes it).  One connection; no reconnect, no TLS. */
int shunt_connect_socket(struct shunt_handle *h, int fd);

/* Start argv[0] (searched in PATH) with argv, its stdin and stdout one end of a
 * socketpair, and negotiate with it on the other end: a server that speaks NBD
 * on stdin/stdout, e.g. { "nbdkit", "-s", "memory", "1M", NULL }.  Its stderr
 * is the caller's.  One connection; no reconnect.  shunt_close() closes the
 * socket and waits for the process. */
int shunt_connect_command(struct shunt_handle *h, char *const argv[]);

/* Called by shunt_list_exports() for each export: name and description (NULL
 * when the server gave none); both valid during the call only. */
typedef void (*shunt_export_fn)(void *user, const char *name, const char *description);

/* List the server's exports (NBD_OPT_LIST, then NBD_OPT_INFO for each one's
 * description), calling fn for each; the export name in uri is ignored.  Uses
 * h's timeout and TLS settings; h stays unconnected. */
int shunt_list_exports(struct shunt_handle *h, const char *uri, shunt_export_fn fn, void *user);

/* ---- What negotiation produced ---- */

/* Export size in bytes, or -ENOTCONN. */
int64_t shunt_get_size(const struct shunt_handle *h);

/* Raw NBD transmission flags (NBD_FLAG_* of the spec), or -ENOTCONN. */
int shunt_get_transmission_flags(const struct shunt_handle *h);

/* Boolean properties of the connection: 1 or 0, -ENOTCONN, -EINVAL. */
enum shunt_flag {
  SHUNT_IS_READ_ONLY, SHUNT_CAN_FLUSH, SHUNT_CAN_FUA, SHUNT_CAN_TRIM, SHUNT_CAN_ZERO,
  SHUNT_CAN_FAST_ZERO, SHUNT_CAN_DF, SHUNT_CAN_MULTI_CONN, SHUNT_CAN_CACHE,
  SHUNT_IS_ROTATIONAL,
  SHUNT_HAS_STRUCTURED_REPLIES, /* structured (or extended) replies are in use */
  SHUNT_HAS_EXTENDED_HEADERS,   /* extended headers are in use */
  SHUNT_HAS_META_CONTEXT,       /* at least one meta context was negotiated */
  SHUNT_USED_EXPORT_NAME,    /* the server did not know NBD_OPT_GO */
};
int shunt_get_flag(const struct shunt_handle *h, enum shunt_flag f);

/* Block size constraints (defaults 1, 4096, 32 MiB when the server sent
 * none), or -ENOTCONN, -EINVAL. */
enum shunt_block_size { SHUNT_BLOCK_MIN, SHUNT_BLOCK_PREFERRED, SHUNT_BLOCK_MAX };
int64_t shunt_get_block_size(const struct shunt_handle *h, enum shunt_block_size which);

/* 1 when the server agreed to meta context name (one of those requested), 0
 * when it did not, -ENOTCONN. */
int shunt_can_meta_context(const struct shunt_handle *h, const char *name);

/* The export name as the server gave it (or as requested); its
 * NBD_INFO_DESCRIPTION or NULL; the server (URI, or "fd N", or the command)
 * for messages.  Valid until shunt_close(); NULL before connecting. */
const char *shunt_get_export_name(const struct shunt_handle *h);
const char *shunt_get_description(const struct shunt_handle *h);
const char *shunt_get_uri(const struct shunt_handle *h);

/* Connections open (0 before connecting). */
unsigned shunt_get_connections(const struct shunt_handle *h);

/* Command flags for the submit calls (translated to the NBD wire flags). */
#define SHUNT_CMD_FUA        (1u << 0) /* write/trim/zero: durable before reply */
#define SHUNT_CMD_NO_HOLE    (1u << 1) /* zero: allocate, do not punch */
#define SHUNT_CMD_DF         (1u << 2) /* read: one data chunk */
#define SHUNT_CMD_REQ_ONE    (1u << 3) /* block status: one extent */
#define SHUNT_CMD_FAST_ZERO  (1u << 4) /* zero: fail rather than be slow */

/* Request kinds reported in a result. */
enum shunt_cmd {
  SHUNT_READ, SHUNT_WRITE, SHUNT_FLUSH, SHUNT_TRIM, SHUNT_ZERO, SHUNT_BLOCK_STATUS,
  SHUNT_CACHE,
};

/* base:allocation extent flags (other contexts define their own). */
#define SHUNT_EXTENT_HOLE (1u << 0)
#define SHUNT_EXTENT_ZERO (1u << 1)

/* The outcome of one request, passed to its completion callback. */
struct shunt_result {
  uint64_t cookie;           /* the value the submit call returned */
  enum shunt_cmd cmd;
  uint64_t offset, length;
  int error;                 /* 0 or a negative errno */
  const char *message;       /* NULL on success; valid during the callback only */
  void *user;                /* the submit call's user pointer */
  uint64_t piped;            /* shunt_aio_pread_pipe(): bytes spliced into the pipe */
};

typedef void (*shunt_done_fn)(const struct shunt_result *r);
/* One extent of a block status reply for meta context `context` (one of the
 * negotiated names; valid during the call): [offset, offset+length) has
 * flags, for base:allocation SHUNT_EXTENT_*.  A context's extents arrive in
 * order, the contexts one after the other; the last extent of a context may
 * extend past the requested range. */
typedef void (*shunt_extent_fn)(void *user, const char *context, uint64_t offset,
                                uint64_t length, uint32_t flags);

/* The socket of connection i (0 <= i < shunt_get_connections()), or -EINVAL (also
 * while connection i is down, e.g. waiting to reconnect).  Meant for
 * `shunt attach`, which hands the negotiated sockets to the kernel: call it
 * before any request is submitted, then shunt_release_fds(). */
int shunt_connection_fd(const struct shunt_handle *h, unsigned i);

/* Give up ownership of every connection's socket: fds[0..n) receive them (n must
 * be >= shunt_get_connections()), switched back to blocking mode, and the handle will
 * neither use nor close them (shunt_close() then only frees it).  Fails with
 * -EBUSY if requests are in flight or a connection waits to reconnect.
 * Returns the number of fds. */
int shunt_release_fds(struct shunt_handle *h, int *fds, unsigned n);

/* ---- Asynchronous requests ----
 * Each returns a cookie (> 0) identifying the request, or a negative errno
 * (-EINVAL for a range outside the export or larger than max_block for
 * reads/writes, -EROFS, -ENOTSUP for an operation the server did not
 * advertise, -ENOTCONN when every connection is gone).  The request is sent and
 * completed by later calls to shunt_poll() / shunt_pollfds_process(); done is
 * called exactly once per accepted request (done may be NULL). */
int64_t shunt_aio_pread(struct shunt_handle *h, const struct iovec *iov, int iovcnt,
                        uint64_t offset, unsigned flags, shunt_done_fn done, void *user);
int64_t shunt_aio_pwrite(struct shunt_handle *h, const struct iovec *iov, int iovcnt,
                         uint64_t offset, unsigned flags, shunt_done_fn done, void *user);
int64_t shunt_aio_flush(struct shunt_handle *h, shunt_done_fn done, void *user);
int64_t shunt_aio_trim(struct shunt_handle *h, uint64_t offset, uint64_t length,
                       unsigned flags, shunt_done_fn done, void *user);
int64_t shunt_aio_zero(struct shunt_handle *h, uint64_t offset, uint64_t length,
                       unsigned flags, shunt_done_fn done, void *user);
/* Block status of every negotiated meta context; extent is called for each
 * extent before done. */
/* Ask the server to bring [offset, offset+length) into its cache
 * (NBD_CMD_CACHE; -ENOTSUP unless SHUNT_CAN_CACHE). */
int64_t shunt_aio_cache(struct shunt_handle *h, uint64_t offset, uint64_t length,
                        shunt_done_fn done, void *user);
int64_t shunt_aio_block_status(struct shunt_handle *h, uint64_t offset, uint64_t length,
                               unsigned flags, shunt_extent_fn extent, shunt_done_fn done,
                               void *user);

/* ---- Payload moved by the kernel (splice, sendfile) ----
 * For copy tools: the payload goes between the socket and a pipe or file
 * without passing through user memory.  Plain sockets only: over TLS these
 * return -EOPNOTSUPP.  Like the calls above otherwise (same checks, cookie,
 * completion). */

/* Read like shunt_aio_pread() (the iovecs cover the whole request), except that
 * payload bytes from byte pipe_from of the request on are spliced from the
 * socket into the pipe whose write end is pipe_wfd, for as long as they arrive
 * in order and the pipe has room; all other bytes land in the iovecs.  When done,
 * result->piped = k: the pipe then holds request bytes [pipe_from, pipe_from + k)
 * and the iovecs the rest (their bytes in that range are unspecified).  The pipe
 * must be empty at submit, and nothing else may write to it until completion.
 * A pipe big enough for the request (F_SETPIPE_SZ) keeps many bytes out of
 * user memory; a smaller one only means more bytes land in the iovecs.  (A
 * pipe holds a fixed number of buffers, and each socket fragment spliced in
 * takes one, often less than a page: even a big pipe can fill early.) */
int64_t shunt_aio_pread_pipe(struct shunt_handle *h, const struct iovec *iov, int iovcnt,
                             uint64_t offset, unsigned flags, int pipe_wfd, uint64_t pipe_from,
                             shunt_done_fn done, void *user);

/* Write like shunt_aio_pwrite(), except that request bytes [pipe_from,
 * pipe_from + piped) are spliced from the pipe whose read end is pipe_rfd (the
 * pipe must hold exactly those bytes next); the iovecs cover the whole request
 * and their bytes in that range are not used.  A write whose pipe bytes were
 * partly sent when its connection dropped cannot be resent: with reconnect it
 * fails with -ECONNRESET. */
int64_t shunt_aio_pwrite_pipe(struct shunt_handle *h, const struct iovec *iov, int iovcnt,
                              uint64_t offset, unsigned flags, int pipe_rfd, uint64_t pipe_from,
                              uint64_t piped, shunt_done_fn done, void *user);

/* Write length bytes of the file (or block device) fd, from fd_offset on, at
 * offset: sent with sendfile(), so the page cache pages go to the socket by
 * reference.  The file must not shrink before completion (a short file fails
 * the connection). */
int64_t shunt_aio_pwrite_file(struct shunt_handle *h, int fd, uint64_t fd_offset,
                              uint64_t length, uint64_t offset, unsigned flags,
                              shunt_done_fn done, void *user);

/* Requests submitted and not yet completed. */
unsigned shunt_in_flight(const struct shunt_handle *h);

/* Send what is queued, receive what has arrived, run completion callbacks.
 * Waits up to timeout_ms (-1: no limit) for the sockets to become ready, then
 * makes what progress it can.  Returns the number of requests completed (0 is
 * normal: e.g. only sending progressed, the timeout passed or shunt_wake() was
 * called; it also returns 0 at once when nothing is in flight), or a negative
 * errno. */
int shunt_poll(struct shunt_handle *h, int timeout_ms);

/* Wake a shunt_poll() blocked in another thread.  Thread- and signal-safe. */
void shunt_wake(struct shunt_handle *h);

/* Event-loop integration: fill pfd[0..max) with the descriptors and events the
 * handle waits for; returns how many (at most max; the handle needs
 * shunt_get_connections() + 1: while a lost connection waits to reconnect, a timer
 * takes its place).  It first sends what is queued; when that completes
 * requests (failed: a connection was lost), their callbacks have run and the
 * set is ready at once (through the wake descriptor).  After poll(), pass them back to
 * shunt_pollfds_process(), which returns completions like shunt_poll() (and
 * makes a reconnect attempt that is due; see THREADING RULES). */
unsigned shunt_pollfds(struct shunt_handle *h, struct pollfd *pfd, unsigned max);
int shunt_pollfds_process(struct shunt_handle *h, const struct pollfd *pfd, unsigned n);

/* ---- Synchronous wrappers (run the event loop until done) ----
 * Reads and writes larger than max_block are split and run in parallel.
 * Return 0 or -errno; shunt_last_error() has the message. */
int shunt_pread(struct shunt_handle *h, void *buf, size_t len, uint64_t offset, unsigned flags);
int shunt_preadv(struct shunt_handle *h, const struct iovec *iov, int iovcnt,
                 uint64_t offset, unsigned flags);
int shunt_pwrite(struct shunt_handle *h, const void *buf, size_t len, uint64_t offset,
                 unsigned flags);
int shunt_pwritev(struct shunt_handle *h, const struct iovec *iov, int iovcnt,
                  uint64_t offset, unsigned flags);
int shunt_flush(struct shunt_handle *h);
int shunt_trim(struct shunt_handle *h, uint64_t offset, uint64_t length, unsigned flags);
int shunt_zero(struct shunt_handle *h, uint64_t offset, uint64_t length, unsigned flags);
int shunt_cache(struct shunt_handle *h, uint64_t offset, uint64_t length);
int shunt_block_status(struct shunt_handle *h, uint64_t offset, uint64_t length,
                       unsigned flags, shunt_extent_fn extent, void *user);

/* The message of the most recent failure the calling thread saw on this handle
 * (falls back to the handle's most recent failure; "" if none). */
const char *shunt_last_error(const struct shunt_handle *h);

/* ---- Counters ---- */
enum shunt_stat {
  SHUNT_STAT_REQUESTS,        /* requests completed */
  SHUNT_STAT_ERRORS,          /* requests completed with an error */
  SHUNT_STAT_BYTES_READ,      /* read payload received into caller buffers */
  SHUNT_STAT_BYTES_WRITTEN,   /* write payload sent from caller buffers */
  SHUNT_STAT_PAYLOAD_BYTES_COPIED, /* payload bytes the library copied through a
                                 buffer of its own: 0 on the direct path, TLS
                                 included (records are decrypted into the
                                 caller's buffers); only shunt_set_copy_reads()
                                 copies */
  SHUNT_STAT_HOLE_BYTES,      /* read bytes that arrived as OFFSET_HOLE (zero-filled) */
  SHUNT_STAT_CHUNKS,          /* structured reply chunks received */
  SHUNT_STAT_RECONNECTS,      /* successful reconnects */
  SHUNT_STAT_RETRIED,         /* requests resent after a reconnect */
  SHUNT_STAT_RECEIVE_CALLS,   /* system calls that read replies (readv, splice),
                                 including ones that found nothing: a simple
                                 read reply costs about one, its payload and
                                 the next reply's header arriving together, and
                                 a short read ends a round without another */
  SHUNT_STAT_FAILOVERS,       /* reconnects that went to another URI */
};
/* The counter's value (0 for a counter this library does not know). */
uint64_t shunt_get_stat(const struct shunt_handle *h, enum shunt_stat which);
/* Shorthand for shunt_get_stat(h, SHUNT_STAT_PAYLOAD_BYTES_COPIED). */
uint64_t shunt_payload_bytes_copied(const struct shunt_handle *h);

/* A readable name for a command ("READ", "WRITE", ...). */
const char *shunt_cmd_name(enum shunt_cmd cmd);

#ifdef __cplusplus
}
#endif
#endif /* SHUNT_SHUNT_H */
