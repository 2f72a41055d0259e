/* sysmem.c: how much memory this process may use, for the limits that are
 * derived from it (the memory backend's cap, the server's memory budget). */
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include "common/sysmem.h"

/* cgroup v2 memory.max of this process's cgroup, or UINT64_MAX. */
static uint64_t cgroup_limit(void)
{
  char line[512], path[600];
  uint64_t v = UINT64_MAX;
  FILE *f = fopen("/proc/self/cgroup", "r");

  if (!f)
    return v;
  while (fgets(line, sizeof line, f)) {
    if (strncmp(line, "0::", 3))
      continue;
    line[strcspn(line, "\n")] = '\0';
    snprintf(path, sizeof path, "/sys/fs/cgroup%s/memory.max", line + 3);
    FILE *g = fopen(path, "r");
    unsigned long long x;
    if (g && fscanf(g, "%llu", &x) == 1)   /* "max" does not scan: no limit */
      v = x;
    if (g)
      fclose(g);
  }
  fclose(f);
  return v;
}

uint64_t sys_memory_limit(void)
{
  long pages = sysconf(_SC_PHYS_PAGES), psz = sysconf(_SC_PAGE_SIZE);
  uint64_t v = pages > 0 && psz > 0 ? (uint64_t)pages * (uint64_t)psz : UINT64_MAX;
  struct rlimit rl;
  uint64_t c = cgroup_limit();

  if (getrlimit(RLIMIT_AS, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY && rl.rlim_cur < v)
    v = rl.rlim_cur;
  if (getrlimit(RLIMIT_DATA, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY && rl.rlim_cur < v)
    v = rl.rlim_cur;
  return c < v ? c : v;
}
