/* datapath.h: how request bytes move between backend and front end.
 * dp_execute() is the one entry point: a READ or WRITE goes to the request's
 * data path, every other command to dp_command() (command.c), which all
 * paths share.  `copy` (read into a buffer, then send) serves everything;
 * splice, direct and mmap serve what they are made for and hand the rest
 * to their fallback path (mmap -> splice -> copy, direct -> copy); `auto`
 * picks one of them per request (r->dp then names the one picked).  Replies
 * go out through the request layer (request.h). */
#ifndef SHUNT_DATAPATH_DATAPATH_H
#define SHUNT_DATAPATH_DATAPATH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct backend_extent;
struct bio;
struct dp_export;
struct request;

struct datapath {
  const char *name;
  /* Serve r's READ or WRITE (r validated; a WRITE's payload complete in
   * r->buf).  Must end with request_finish() or request_reply_status(),
   * possibly later.  self is this table (for its fallback).  NULL: the
   * fallback's.  On a path without alloc_buffer, a small WRITE's r->buf may
   * lie in the front end's receive buffer (r->buf_lender): read it, never
   * write to it nor use it after the request ends. */
  void (*read)(const struct datapath *self, struct request *r);
  void (*write)(const struct datapath *self, struct request *r);
  /* The path that serves what this one hands over (NULL only for copy). */
  const struct datapath *fallback;
  /* Optional: the buffer for a READ's data or a WRITE's payload (len bytes),
   * e.g. from a registered arena; NULL means out of memory.  When absent,
   * the front end uses malloc/free.  free_buffer gets back what
   * alloc_buffer gave. */
  void *(*alloc_buffer)(struct request *r, size_t len);
  void (*free_buffer)(struct request *r, void *buf);
  /* Optional: called while a WRITE payload arrives, with the number of
   * payload bytes now in r->buf (a prefix), so writing may start early.
   * dp_execute() still follows once the payload is complete. */
  void (*payload_progress)(struct request *r, uint64_t got);
  /* Optional: the payload will never complete (the client hung up).
   * Returns true when operations started by payload_progress are still
   * running: the data path then calls request_finish() once they end
   * (without a reply); false: the front end finishes the request now. */
  bool (*payload_abort)(struct request *r);
  int kind;                 /* DP_COPY, DP_SPLICE, DP_DIRECT, DP_MMAP (stats.h) */
  bool own_read_buffers;    /* READs get no r->buf from the front end */
  /* Its writes go O_DIRECT, ordered by the export's range lock: its TRIM
   * and WRITE_ZEROES take the lock too (command.c). */
  bool range_locked;
};

#define DP_DEFAULT_CHUNK (256u << 10)
#define DP_MIN_CHUNK     4096u
#define DP_MAX_CHUNK     (32u << 20)
#define DP_DIRECT_ALIGN  4096u
/* The splice path serves reads shorter than this like the copy path (read
 * into a buffer, one gathered send): two splices and a send of their own
 * per request cost more than copying a few KiB.  Counted as copy bytes. */
#define DP_SPLICE_MIN    (16u << 10)
/* The direct path sends reply chunks shorter than this with an ordinary
 * (gathered) send instead of SEND_ZC, whose notification round trip costs
 * more than copying them; the kernel's copy is counted. */
#define DP_ZC_MIN        (16u << 10)

/* The chunk size of exports that do not set chunk= (--chunk). */
extern uint32_t dp_default_chunk;

/* The allocation map of a READ's whole range, to split its structured reply
 * along (BACKEND_EXTENT_ZERO runs as OFFSET_HOLE): at most max extents in
 * ext[], *n of them, summing to r->hdr.length (what the backend did not
 * describe joins the last extent, or follows a last hole as data).  False
 * when the backend has no map or must ask another machine for it
 * (extents_remote), the request is under 4 KiB, or the map could
 * not be read. */
bool dp_read_extents(const struct request *r, struct backend_extent *ext, size_t max, size_t *n);

/* The base:allocation state bits (NBD_STATE_HOLE, NBD_STATE_ZERO) of a
 * backend extent's BACKEND_EXTENT_* flags (command.c). */
uint32_t dp_extent_state(uint32_t backend_flags);

/* The name of a data path kind. */
const char *datapath_kind_name(int kind);

/* The data path called name, or NULL. */
const struct datapath *datapath_find(const char *name);

/* The baseline path, serving every request (src/datapath/copy.c). */
extern const struct datapath datapath_copy;
/* splice and direct (src/datapath/stream.c). */
extern const struct datapath datapath_splice, datapath_direct;
/* Page-cached READs sent from a mapping of the file, the rest as splice
 * (src/datapath/mmap.c). */
extern const struct datapath datapath_mmap;
/* Chooses one of the above per request (src/datapath/auto.c): the default. */
extern const struct datapath datapath_auto;
/* TLS connections (dp_export_tls_path(), src/datapath/auto.c): READs of
 * cached pages from the export's mapping (dp_mmap_send(): the session
 * encrypts from it), others as copy; WRITEs as copy (datapath_tls) or, to
 * an export that writes O_DIRECT, as direct (datapath_tls_direct). */
extern const struct datapath datapath_tls, datapath_tls_direct;

/* Send r's READ, validated, non-empty, within r->export's mapping and all
 * in the page cache, from the mapping (src/datapath/mmap.c). */
void dp_mmap_send(struct request *r);

/* Whether a small WRITE on dp to dx may be executed from the front end's
 * own memory (its receive buffer, r->buf_lender) instead of a buffer of the
 * path's: paths without alloc_buffer, and auto while dx writes through the
 * page cache (the splice path's writes, which take any buffer).  Where
 * writes go O_DIRECT the payload must sit in an aligned buffer of the
 * path's, and copying it there stands in for the page-cache copy a
 * buffered write makes: the copies per byte are the same. */
bool dp_write_in_place(const struct datapath *dp, const struct dp_export *dx);

/* Execute r (validated; a WRITE's payload complete in r->buf): READ and
 * WRITE on r->dp (or the first path down its fallbacks that serves them),
 * everything else in dp_command(). */
void dp_execute(struct request *r);

/* Serve r's READ on the path after self (self->fallback, or further down),
 * first giving r a buffer of r->hdr.length bytes when that path needs one
 * (an ENOMEM reply when there is none). */
void dp_fallback_read(const struct datapath *self, struct request *r);

/* FLUSH, TRIM, WRITE_ZEROES, CACHE and BLOCK_STATUS, alike on every path
 * (src/datapath/command.c); other commands get EINVAL. */
void dp_command(struct request *r);

/* Reply to r (io->owner) with the status res of its bio; a completed WRITE
 * is counted in the export's stats as written by the copy path. */
void dp_bio_status_done(struct bio *io, int res);

/* The message that goes with error res (negative errno) in an error reply;
 * NULL for 0. */
const char *dp_error_text(int res);

/* ---- caller memory (memory front ends, request.h: r->mem_iov) ----
 * A request of a sink with ops->done is checked here (range, read-only:
 * the NBD errors a server would answer) and its READ or WRITE moves bytes
 * straight between the backend and r->mem_iov with the fewest copies its
 * export's path allows (src/datapath/memio.c): copy, splice and mmap read
 * and write through the page cache with preadv/pwritev into and out of the
 * iovec (no copy in user space); direct does O_DIRECT into and out of the
 * caller's pages, with fixed-buffer operations on memory registered with
 * dp_mem_register(), segments O_DIRECT cannot take bounced (and counted as
 * copied); auto reads cached ranges as copy, the rest as direct, and
 * writes as the export writes (dp_export_writes_direct()). */
void dp_mem_execute(struct request *r);

struct engine;

/* Register [addr, addr + len) of the caller's memory (a VM's pages, stable
 * for as long as it is registered) as io_uring fixed buffers on engine e's
 * ring, beside the worker's arena, in pieces of at most DP_MEM_PIECE_MAX
 * bytes, so that the direct path reads and writes it with
 * READ_FIXED/WRITE_FIXED.  Returns 0 or -errno (the kernel refused it: the
 * memory still works, with plain READV/WRITEV; the caller logs it once).
 * On e's thread; each worker's ring that serves requests on the memory
 * needs its own registration.  -EEXIST when addr is registered already.
 * Unregister before unmapping it: the kernel pins the pages it registered,
 * and a fixed I/O reaches those, not what is mapped at addr later. */
int dp_mem_register(struct engine *e, void *addr, size_t len);

/* Undo dp_mem_register(e, addr, ...) (nothing when addr is not
 * registered).  I/O already submitted on it finishes normally (the kernel
 * keeps the pages until then).  On e's thread. */
void dp_mem_unregister(struct engine *e, void *addr);

/* The kernel's limit on one registered buffer. */
#define DP_MEM_PIECE_MAX (1ull << 30)
/* The pieces dp_mem_register() makes: DP_MEM_PIECE_MAX (tests make it
 * smaller; set before any registration). */
extern size_t dp_mem_piece_max;

#endif
