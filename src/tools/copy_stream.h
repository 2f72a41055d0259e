/* copy_stream.h: `shunt copy` with '-' for standard input or output.  A pipe
 * cannot seek, so this copy runs in order, one request at a time, apart from
 * copy.c's parallel, sparse-aware engine. */
#ifndef SHUNT_TOOLS_COPY_STREAM_H
#define SHUNT_TOOLS_COPY_STREAM_H

#include <stdbool.h>
#include <stdint.h>

struct tools_failover;

struct copy_stream_params {
  uint64_t request_size;   /* bytes per read and write */
  bool flush;              /* flush the destination at the end */
  bool bar;                /* progress bar on stderr */
  int progress_fd;         /* --progress=FD, or -1 */
  unsigned reconnect;      /* NBD: reconnect attempts after a drop */
  const struct tools_failover *src_failover, *dst_failover; /* NBD: other URIs, or NULL */
};

/* Copy src to dst, one of them "-" (stdin as the source, stdout as the
 * destination), the other an NBD URI or a file.  Stdin into an export stops
 * at end of input (more input than the export holds is an error).  Returns
 * the exit status: 0, 1 (error, reported) or 2 (usage, reported). */
int copy_stream(const char *src, const char *dst, const struct copy_stream_params *p);

#endif
