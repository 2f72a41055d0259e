/* copy_progress.c: the progress bar and --progress=FD (see copy_progress.h). */
#include <stdio.h>
#include <time.h>
#include <unistd.h>

#include "common/units.h"
#include "tools/copy_progress.h"

/* Before this much time has passed the rate is mostly noise (connection
 * setup, the first requests in flight): no ETA until then. */
#define ETA_AFTER_SECONDS 1.0

static double now_s(void)
{
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

void copy_progress_start(struct copy_progress *p, bool bar, int fd, uint64_t total)
{
  p->bar = bar;
  p->fd = fd;
  p->total = total;
  p->t0 = now_s();
  p->last = 0;
  p->last_pct = -1;
}

static void write_fd(struct copy_progress *p, int pct)
{
  char line[16];
  int n;

  if (p->fd < 0 || pct == p->last_pct)
    return;
  p->last_pct = pct;
  n = snprintf(line, sizeof line, "%d/100\n", pct);
  if (write(p->fd, line, (size_t)n) != n)
    p->fd = -1;   /* the reader went away: stop, the copy goes on */
}

static void draw(struct copy_progress *p, uint64_t done, bool final)
{
  char a[32], b[32], r[32], tail[64];
  double dt = now_s() - p->t0;
  double rate = dt > 0 ? (double)done / dt : 0;

  if (final)
    snprintf(tail, sizeof tail, "in %.1fs", dt);
  else if (p->total && dt >= ETA_AFTER_SECONDS && rate > 0 && done < p->total)
    snprintf(tail, sizeof tail, "ETA %.0fs", (double)(p->total - done) / rate);
  else
    snprintf(tail, sizeof tail, "ETA --");
  units_format_bytes(done, a, sizeof a);
  units_format_bytes((uint64_t)rate, r, sizeof r);
  if (p->total)
    fprintf(stderr, "\r\033[Kshunt copy: %5.1f%%  %s / %s  %s/s  %s", 100.0 * (double)done / (double)p->total,
            a, units_format_bytes(p->total, b, sizeof b), r, tail);
  else
    fprintf(stderr, "\r\033[Kshunt copy: %s  %s/s  %s", a, r, final ? tail : "");
  if (final)
    fputc('\n', stderr);
  fflush(stderr);
}

void copy_progress_update(struct copy_progress *p, uint64_t done)
{
  double t;

  if (p->total && done < p->total)
    write_fd(p, (int)(100 * done / p->total));
  if (!p->bar || (p->total && done >= p->total))
    return;
  t = now_s();
  if (t - p->last < 0.25)
    return;
  p->last = t;
  draw(p, done, false);
}

void copy_progress_finish(struct copy_progress *p, uint64_t done, bool ok)
{
  if (ok)
    write_fd(p, 100);
  if (p->bar)
    draw(p, done, true);
}
