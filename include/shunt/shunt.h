/* shunt.h: libshunt, the shunt NBD client library (public API).
 *
 * libshunt connects to an NBD server by URI, negotiates (fixed newstyle, GO with
 * fallback to EXPORT_NAME, structured replies, base:allocation, extended headers),
 * and runs many requests in flight over one or more connections.  The payload of
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
 *   - Reconnecting (opt.reconnect) holds nobody up: while a lost connection
 *     waits out its backoff, its requests wait, other connections keep
 *     serving, and every call returns as usual.  When the attempt is due, the
 *     thread whose shunt_poll(), synchronous call or shunt_pollfds_process()
 *     finds it makes it (connect + handshake, at most timeout_ms) without the
 *     lock and without leading: that one call returns after the attempt, the
 *     other threads carry on meanwhile.
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

/* Connection options; zero-initialize and set what you need. */
struct shunt_options {
  unsigned connections;      /* wanted connections (0 = 1); more than one is used
                                only when the server advertises CAN_MULTI_CONN */
  bool no_structured;        /* simple replies only, no meta context (for handing
                                the sockets to the kernel nbd driver) */
  bool no_extended;          /* do not request extended headers */
  bool no_block_status;      /* do not request the base:allocation context */
  unsigned reconnect;        /* after a dropped connection, try this many times to
                                reconnect (same export, same parameters) and resend
                                the requests in flight (every NBD command is
                                idempotent).  Meanwhile its requests, and new ones
                                while no other connection is up, wait; nothing
                                blocks (see THREADING RULES).  After the last failed
                                attempt they fail with the error the connection was
                                lost with ("... gave up after N reconnect
                                attempts").  0 = fail in-flight requests at once.
                                Either way later submits fail with -ENOTCONN once no
                                connection is left.  A protocol violation (-EPROTO)
                                is never reconnected. */
  unsigned reconnect_delay_ms; /* wait before the first attempt (default 100),
                                doubled after each failed one (10 s at most) */
  unsigned timeout_ms;       /* connect + handshake timeout (default 30000); the
                                server's greeting must arrive within 10 s, or
                                timeout_ms when shorter */
  bool copy_reads;           /* for comparison only: receive read payload into a
                                library buffer and copy it out (the classic staged
                                path; counted in payload_bytes_copied) */
};

/* What negotiation produced.  Valid until shunt_close(). */
struct shunt_info {
  uint64_t size;             /* export size in bytes */
  uint16_t eflags;           /* raw NBD transmission flags (NBD_FLAG_* of the spec) */
  bool read_only, can_flush, can_fua, can_trim, can_zero, can_fast_zero, can_df,
       can_multi_conn, can_cache, rotational;
  bool structured;           /* structured (or extended) replies are in use */
  bool extended;             /* extended headers are in use */
  bool block_status;         /* base:allocation was negotiated */
  bool used_export_name;     /* the server did not know NBD_OPT_GO */
  uint32_t min_block, pref_block, max_block; /* block size constraints (defaults
                                1, 4096, 32 MiB when the server sent none) */
  const char *export_name;   /* as the server named it (or as requested) */
  const char *description;   /* NBD_INFO_DESCRIPTION, or NULL */
  const char *server;        /* the URI we connected to, for messages */
  unsigned connections;      /* connections actually open */
};

/* Command flags for the submit calls (translated to the NBD wire flags). */
#define SHUNT_CMD_FUA        (1u << 0) /* write/trim/zero: durable before reply */
#define SHUNT_CMD_NO_HOLE    (1u << 1) /* zero: allocate, do not punch */
#define SHUNT_CMD_DF         (1u << 2) /* read: one data chunk */
#define SHUNT_CMD_REQ_ONE    (1u << 3) /* block status: one extent */
#define SHUNT_CMD_FAST_ZERO  (1u << 4) /* zero: fail rather than be slow */

/* Request kinds reported in a result. */
enum shunt_cmd {
  SHUNT_READ, SHUNT_WRITE, SHUNT_FLUSH, SHUNT_TRIM, SHUNT_ZERO, SHUNT_BLOCK_STATUS,
};

/* base:allocation extent flags. */
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
/* One extent of a block status reply: [offset, offset+length) has flags
 * SHUNT_EXTENT_*.  Extents arrive in order; the last may extend past the
 * requested range. */
typedef void (*shunt_extent_fn)(void *user, uint64_t offset, uint64_t length, uint32_t flags);

/* ---- Connecting ---- */

/* Connect to uri (nbd://host[:port]/export, nbd+unix:///export?socket=PATH, or
 * nbds:// and nbds+unix:// for TLS: STARTTLS first, credentials from the URI's
 * tls-* parameters, docs/libshunt.md), negotiate, and open extra connections if
 * opt->connections > 1 and the server allows multi-conn.  opt may be NULL.  On
 * failure returns -errno and writes a message into err (if errlen > 0). */
int shunt_connect(struct shunt_handle **hp, const char *uri, const struct shunt_options *opt,
                  char *err, size_t errlen);

/* Close every connection (sending NBD_CMD_DISC), fail requests still in flight
 * (their callbacks run with -ECANCELED), and free the handle.  NULL is fine. */
void shunt_close(struct shunt_handle *h);

/* The negotiated parameters. */
const struct shunt_info *shunt_get_info(const struct shunt_handle *h);

/* The socket of connection i (0 <= i < info->connections), or -EINVAL (also
 * while connection i is down, e.g. waiting to reconnect).  Meant for
 * `shunt attach`, which hands the negotiated sockets to the kernel: call it
 * before any request is submitted, then shunt_release_fds(). */
int shunt_connection_fd(const struct shunt_handle *h, unsigned i);

/* Give up ownership of every connection's socket: fds[0..n) receive them (n must
 * be >= info->connections), switched back to blocking mode, and the handle will
 * neither use nor close them (shunt_close() then only frees it).  Fails with
 * -EBUSY if requests are in flight or a connection waits to reconnect.
 * Returns the number of fds. */
int shunt_release_fds(struct shunt_handle *h, int *fds, unsigned n);

/* An export of NBD_OPT_LIST. */
struct shunt_export {
  char *name;
  char *description;         /* from NBD_OPT_INFO, or NULL */
};

/* List the server's exports (NBD_OPT_LIST, then NBD_OPT_INFO for each one's
 * description).  The export name in uri is ignored.  Free with
 * shunt_free_exports(). */
int shunt_list_exports(const char *uri, const struct shunt_options *opt,
                       struct shunt_export **list, size_t *count, char *err, size_t errlen);
void shunt_free_exports(struct shunt_export *list, size_t count);

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
/* Block status of base:allocation; extent is called for each extent before done. */
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
 * info->connections + 1: while a lost connection waits to reconnect, a timer
 * takes its place).  After poll(), pass them back to
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
int shunt_block_status(struct shunt_handle *h, uint64_t offset, uint64_t length,
                       unsigned flags, shunt_extent_fn extent, void *user);

/* The message of the most recent failure the calling thread saw on this handle
 * (falls back to the handle's most recent failure; "" if none). */
const char *shunt_last_error(const struct shunt_handle *h);

/* ---- Counters ---- */
struct shunt_stats {
  uint64_t requests;          /* requests completed */
  uint64_t errors;            /* requests completed with an error */
  uint64_t bytes_read;        /* read payload received into caller buffers */
  uint64_t bytes_written;     /* write payload sent from caller buffers */
  uint64_t payload_bytes_copied; /* payload bytes the library copied through a
                                 buffer of its own: 0 on the direct path, TLS
                                 included (records are decrypted into the
                                 caller's buffers); only opt.copy_reads copies */
  uint64_t hole_bytes;        /* read bytes that arrived as OFFSET_HOLE (zero-filled) */
  uint64_t chunks;            /* structured reply chunks received */
  uint64_t reconnects;        /* successful reconnects */
  uint64_t retried;           /* requests resent after a reconnect */
  uint64_t receive_calls;     /* system calls that read replies (readv, splice),
                                 including ones that found nothing: a simple
                                 read reply costs about one, its payload and
                                 the next reply's header arriving together, and
                                 a short read ends a round without another */
};
void shunt_get_stats(const struct shunt_handle *h, struct shunt_stats *out);
/* Shorthand for shunt_get_stats().payload_bytes_copied. */
uint64_t shunt_payload_bytes_copied(const struct shunt_handle *h);

/* A readable name for a command ("READ", "WRITE", ...). */
const char *shunt_cmd_name(enum shunt_cmd cmd);

#ifdef __cplusplus
}
#endif
#endif /* SHUNT_SHUNT_H */
