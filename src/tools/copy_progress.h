/* copy_progress.h: `shunt copy`'s progress: a bar on stderr (percentage,
 * bytes, rate, ETA) and/or machine-readable lines on a descriptor
 * (--progress=FD: "PERCENT/100", as nbdcopy writes them). */
#ifndef SHUNT_TOOLS_COPY_PROGRESS_H
#define SHUNT_TOOLS_COPY_PROGRESS_H

#include <stdbool.h>
#include <stdint.h>

struct copy_progress {
  bool bar;            /* draw the bar on stderr */
  int fd;              /* --progress=FD, or -1 */
  uint64_t total;      /* bytes to copy; 0 when unknown (stdin) */
  double t0, last;     /* start, last bar update (seconds, monotonic) */
  int last_pct;        /* the last percentage written to fd, -1 before any */
};

/* Begin: total bytes (0: unknown), bar and fd as above. */
void copy_progress_start(struct copy_progress *p, bool bar, int fd, uint64_t total);

/* done bytes so far: redraws the bar at most four times a second, writes a
 * line to fd when the percentage changed.  Never draws the completed state:
 * that is copy_progress_finish's one line. */
void copy_progress_update(struct copy_progress *p, uint64_t done);

/* The end: the bar's last line (with the time taken instead of an ETA) and,
 * after a success, "100/100" on fd. */
void copy_progress_finish(struct copy_progress *p, uint64_t done, bool ok);

#endif
