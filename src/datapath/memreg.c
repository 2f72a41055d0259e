/* memreg.c: registration of the caller's memory as fixed buffers (see
 * memreg.h and dp_mem_register() in datapath.h). */
#include <errno.h>

#include "datapath/datapath.h"
#include "datapath/memreg.h"

int dp_mem_register(struct engine *e, void *addr, size_t len)
{
  (void)e; (void)addr; (void)len;
  return -EOPNOTSUPP;
}

void dp_mem_unregister(struct engine *e, void *addr)
{
  (void)e; (void)addr;
}

int dp_mem_fixed_index(struct engine *e, const void *addr, size_t len)
{
  (void)e; (void)addr; (void)len;
  return -1;
}
