/* memreg.h: the caller's memory registered as io_uring fixed buffers on a
 * worker's ring (dp_mem_register(), datapath.h), beside the worker's arena:
 * a sparse buffer table whose slot 0 is the arena and whose other slots
 * hold pieces of registered memory.  The direct path asks which slot holds
 * a segment. */
#ifndef SHUNT_DATAPATH_MEMREG_H
#define SHUNT_DATAPATH_MEMREG_H

#include <stddef.h>

#include "engine/engine.h"

/* The registered buffer index whose piece holds all of [addr, addr + len)
 * on engine e's ring, or -1 (not registered: use READV/WRITEV).  On e's
 * thread. */
int dp_mem_fixed_index(struct engine *e, const void *addr, size_t len);

#endif
