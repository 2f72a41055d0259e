/* sysmem.h: the memory this process may use. */
#ifndef SHUNT_COMMON_SYSMEM_H
#define SHUNT_COMMON_SYSMEM_H

#include <stdint.h>

/* Physical RAM, lowered by RLIMIT_AS, RLIMIT_DATA and the cgroup's
 * memory.max when those are set (UINT64_MAX when nothing is known). */
uint64_t sys_memory_limit(void);

#endif
