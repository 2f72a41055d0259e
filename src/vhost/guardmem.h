/* guardmem.h: guest memory that vanishes under the back end.  A frontend
 * may shrink the file behind a region after handing it over (a memory file
 * that cannot be sealed); the next access to the missing pages would be a
 * SIGBUS that kills every VM of the process.  Mapped guest regions are
 * listed here, and a SIGBUS inside one of them replaces the faulting page
 * with a private zero page and is counted: that VM reads zeroes where its
 * memory went, the process lives.  A SIGBUS anywhere else goes to the
 * handler installed before this one (common/sigchain.h), or takes its
 * default action. */
#ifndef SHUNT_VHOST_GUARDMEM_H
#define SHUNT_VHOST_GUARDMEM_H

#include <stddef.h>
#include <stdint.h>

/* Install the SIGBUS handler (before any region is mapped; a second call
 * does nothing and returns the first's result).  Returns 0 or -errno. */
int guardmem_init(void);

/* [start, start + len) is guest memory: a SIGBUS in it is repaired.
 * Returns 0, or -ENOSPC when the list is full (the region is then not
 * guarded). */
int guardmem_add(void *start, size_t len);

/* start (as given to guardmem_add) is about to be unmapped. */
void guardmem_remove(void *start);

/* Pages repaired so far, all regions together. */
uint64_t guardmem_repaired(void);

#endif
