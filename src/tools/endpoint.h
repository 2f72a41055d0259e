/* endpoint.h: one side of `shunt copy`: a local file or block device, or an
 * NBD export through libshunt, behind one table of operations.  The copy
 * logic (copy.c) plans, reads, checks for zeroes and writes through these
 * operations only; what differs between kinds (an io_uring for files,
 * libshunt's asynchronous requests for NBD, O_DIRECT, splice and sendfile)
 * stays in the endpoint's own file.
 *
 * Asynchronous operations take a struct ep_io that the caller owns until its
 * done callback runs.  They return 0 when the operation was queued (done runs
 * later, from endpoint_reap() or endpoint_process(), never inside the call),
 * or a negative errno with a message in e->errmsg (done never runs).  The
 * caller runs the event loop: endpoint_submit(), endpoint_pollfds(), poll(),
 * endpoint_process(). */
#ifndef SHUNT_TOOLS_ENDPOINT_H
#define SHUNT_TOOLS_ENDPOINT_H

#include <poll.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/stat.h>

struct tools_failover;

/* What an endpoint can do beyond plain reads and writes (e->caps). */
enum {
  EP_READ_PIPE = 1u << 0,       /* read may splice payload into io->pipe_wfd */
  EP_WRITE_PIPE = 1u << 1,      /* write may splice payload from io->pipe_rfd */
  EP_WRITE_FROM_FD = 1u << 2,   /* write_from_fd: the kernel sends another file's bytes */
};

struct ep_io;
/* Completion of an asynchronous operation: err 0 or a negative errno with msg
 * (valid during the call only) saying what failed. */
typedef void (*ep_done_fn)(struct ep_io *io, int err, const char *msg);

/* One asynchronous operation on [off, off + len). */
struct ep_io {
  uint64_t off, len;
  unsigned char *buf;        /* the request's bytes (len of them) */
  /* Payload through a pipe (EP_READ_PIPE, EP_WRITE_PIPE), or -1: a read
   * splices bytes from pipe_from on into pipe_wfd and sets piped to how many
   * it did (the rest lands in buf); a write takes bytes [pipe_from, +piped)
   * from pipe_rfd and the rest from buf. */
  int pipe_rfd, pipe_wfd;
  uint64_t pipe_from, piped;
  /* write_from_fd: the bytes come from src_fd at src_off. */
  int src_fd;
  uint64_t src_off;
  ep_done_fn done;
  void *user;
  /* The endpoint's own state while the operation runs. */
  uint64_t xfer;
  bool direct, writing;
};

/* An extent of the endpoint's content: [off, off + len) reads as zeroes
 * (a hole, or known zeroes) or holds data. */
typedef void (*ep_extent_fn)(void *user, uint64_t off, uint64_t len, bool zero);

struct endpoint;
struct endpoint_ops {
  /* Read io->len bytes at io->off into io->buf (and the pipe, see ep_io). */
  int (*read)(struct endpoint *e, struct ep_io *io);
  /* Write io->len bytes at io->off from io->buf (and the pipe). */
  int (*write)(struct endpoint *e, struct ep_io *io);
  /* Write io->len bytes of io->src_fd from io->src_off on at io->off, moved
   * by the kernel.  NULL without EP_WRITE_FROM_FD. */
  int (*write_from_fd)(struct endpoint *e, struct ep_io *io);
  /* Make [io->off, +io->len) read as zeroes: 0 when queued, 1 when already
   * done (done does not run then; slow ways such as writing zeroes are
   * synchronous), or a negative errno. */
  int (*zero)(struct endpoint *e, struct ep_io *io);
  /* Report the extents from off on, in order, through fn, up to at most len
   * bytes (possibly fewer: call again from where they stopped).  -ENOTSUP
   * when the endpoint cannot tell: treat everything as data. */
  int (*extents)(struct endpoint *e, uint64_t off, uint64_t len, ep_extent_fn fn, void *user);
  /* Make written data durable (synchronous). */
  int (*flush)(struct endpoint *e);
  /* Queue what is pending: 0 or a negative errno. */
  int (*submit)(struct endpoint *e);
  /* Complete operations that already finished, without waiting: how many,
   * or a negative errno. */
  int (*reap)(struct endpoint *e);
  /* The descriptors to wait for (at most max), then process them after poll(). */
  unsigned (*pollfds)(struct endpoint *e, struct pollfd *pfd, unsigned max);
  int (*process)(struct endpoint *e, const struct pollfd *pfd, unsigned n);
  /* Release everything and free e: 0, or the first error closing (data
   * may be lost) with its message in err. */
  int (*close)(struct endpoint *e, char *err, size_t errlen);
};

/* The most descriptors one endpoint polls (64 NBD connections and a timer). */
#define EP_MAX_POLLFDS 65

struct endpoint {
  const struct endpoint_ops *ops;
  const char *name;          /* as given on the command line */
  uint64_t size;
  uint64_t max_req;          /* the largest read or write */
  unsigned caps;             /* EP_* */
  bool fresh;                /* opened for writing and known to read as zeroes */
  int fd;                    /* a readable descriptor of the content (sendfile source), or -1 */
  const struct stat *st;     /* a local file's fstat, or NULL */
  uint64_t direct_bytes;     /* bytes written bypassing the page cache */
  char errmsg[512];          /* the last synchronous failure */
};

struct endpoint_params {
  bool write;                /* the destination */
  uint64_t size;             /* destination file: the size it is given */
  unsigned connections;      /* NBD: connections when the server allows */
  unsigned reconnect;        /* NBD: reconnect attempts after a drop */
  const struct tools_failover *failover; /* NBD: other URIs of the export, or NULL */
  bool direct;               /* destination file: O_DIRECT for aligned writes */
  unsigned depth;            /* operations in flight at most */
  unsigned direct_max;       /* of which O_DIRECT writes at most */
  const struct endpoint *source; /* destination: refuse the same storage as this */
};

/* Open name (an NBD URI, else a file or block device) for p: 0 and *ep, or -1
 * with a message naming it in err. */
int endpoint_open(struct endpoint **ep, const char *name, const struct endpoint_params *p,
                  char *err, size_t errlen);
int endpoint_open_nbd(struct endpoint **ep, const char *name, const struct endpoint_params *p,
                      char *err, size_t errlen);
int endpoint_open_file(struct endpoint **ep, const char *name, const struct endpoint_params *p,
                       char *err, size_t errlen);

/* Close and free e (NULL is fine): 0, or a negative errno with a message in err. */
int endpoint_close(struct endpoint *e, char *err, size_t errlen);

#endif
