/* memreg.h: the caller's memory registered as io_uring fixed buffers on a
 * worker's ring (dp_mem_register(), datapath.h), beside the worker's arena.
 * Once memory is registered the ring has a sparse table of DP_FIXED_SLOTS
 * buffers: slot 0 is the arena (index 0, as the direct path uses it), the
 * others hold pieces of registered memory of at most DP_MEM_PIECE_MAX
 * bytes.  Before that the arena is registered alone, at index 0 too. */
#ifndef SHUNT_DATAPATH_MEMREG_H
#define SHUNT_DATAPATH_MEMREG_H

#include <stdbool.h>
#include <stddef.h>

#include "datapath/dpworker.h"
#include "engine/engine.h"

#define DP_FIXED_SLOTS 1024u

/* IORING_OP_READV_FIXED and IORING_OP_WRITEV_FIXED (Linux 6.15), which the
 * installed liburing may not name: several segments of one registered
 * buffer in one operation (sqe->buf_index, as READ_FIXED). */
#define DP_OP_READV_FIXED 60
#define DP_OP_WRITEV_FIXED 61

/* The registered buffer index whose piece holds all of [addr, addr + len)
 * on engine e's ring, or -1 (not registered: use READV/WRITEV).  On e's
 * thread. */
int dp_mem_fixed_index(struct engine *e, const void *addr, size_t len);

/* True when the kernel has IORING_OP_READV_FIXED/WRITEV_FIXED (Linux 6.15)
 * for engine e's ring, as far as known (probed with the table). */
bool dp_mem_vec_fixed(struct engine *e);
/* The kernel refused a READV_FIXED/WRITEV_FIXED (EINVAL, EOPNOTSUPP): use
 * one READ_FIXED/WRITE_FIXED per segment from now on. */
void dp_mem_no_vec_fixed(struct engine *e);

/* The worker's arena was just mapped but could not be registered alone
 * because the table exists: put it in slot 0 (sets arena.registered). */
void dp_fixed_adopt_arena(struct dp_worker *dw);

/* Free the table's bookkeeping (the ring's registrations go with the ring). */
void dp_fixed_fini(struct dp_worker *dw);

#endif
