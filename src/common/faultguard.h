/* faultguard.h: reading a mapping of a file that may shrink under us.  A
 * read of a mapped page beyond the file's end raises SIGBUS, which would
 * kill the process.  Mappings that user-space code reads directly (a
 * page-cached READ encrypted from the export's mapping under TLS) are
 * registered with faultguard_add(); code that reads them runs between
 * faultguard_enter() and faultguard_leave(), under a sigsetjmp():
 *
 *   struct faultguard g;
 *   if (sigsetjmp(g.env, 0)) { faultguard_leave(&g); return -EFAULT; }
 *   faultguard_enter(&g);
 *   ... read the mapping (no locals assigned here are read after a fault) ...
 *   faultguard_leave(&g);
 *
 * A SIGBUS on that thread inside a registered mapping jumps back with
 * sigsetjmp() returning 1 (g.addr: where).  What the interrupted code was
 * doing is abandoned: the caller must treat the state it was changing as
 * lost (a TLS session is failed, never used again).  A SIGBUS anywhere
 * else, or on a thread outside a guard, goes to the handler installed
 * before this one, or takes its default action. */
#ifndef SHUNT_COMMON_FAULTGUARD_H
#define SHUNT_COMMON_FAULTGUARD_H

#include <setjmp.h>
#include <stddef.h>

struct faultguard {
  sigjmp_buf env;
  struct faultguard *prev;      /* the guard this one is nested in */
  void *addr;                   /* the faulting address, after a jump */
};

/* Register [start, start + len) (installing the SIGBUS handler on first
 * use).  Returns 0, -ENOSPC when the list is full (reads of that mapping
 * are then unguarded: the caller must not read it in user space), or
 * -errno from sigaction(). */
int faultguard_add(const void *start, size_t len);

/* start (as given to faultguard_add) is about to be unmapped. */
void faultguard_remove(const void *start);

/* True when [p, p + len) lies in a registered mapping. */
int faultguard_covers(const void *p, size_t len);

/* Arm g (after sigsetjmp(g->env, 0) returned 0) on this thread. */
void faultguard_enter(struct faultguard *g);

/* Disarm g (on both ways out). */
void faultguard_leave(struct faultguard *g);

#endif
