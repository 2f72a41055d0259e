/* units.c: size/duration parsing and formatting (see units.h). */
#include "common/units.h"

#include <errno.h>
#include <string.h>
#include <strings.h>

int units_parse_size(const char *s, uint64_t *out)
{
  uint64_t v = 0;
  const char *p = s;
  if (*p < '0' || *p > '9')
    return -EINVAL;
  for (; *p >= '0' && *p <= '9'; p++) {
    if (v > (UINT64_MAX - 9) / 10)
      return -EINVAL;
    v = v * 10 + (uint64_t)(*p - '0');
  }
  unsigned shift = 0;
  switch (*p) {
  case '\0': break;
  case 'b': case 'B': shift = 0; p++; break;
  case 'k': case 'K': shift = 10; p++; break;
  case 'm': case 'M': shift = 20; p++; break;
  case 'g': case 'G': shift = 30; p++; break;
  case 't': case 'T': shift = 40; p++; break;
  default: return -EINVAL;
  }
  if (shift && (!strcasecmp(p, "iB") || !strcasecmp(p, "B")))
    p += strlen(p);
  if (*p)
    return -EINVAL;
  if (shift && v > (UINT64_MAX >> shift))
    return -EINVAL;
  *out = v << shift;
  return 0;
}

int units_parse_duration_ms(const char *s, uint64_t *ms)
{
  uint64_t v = 0;
  const char *p = s;
  if (*p < '0' || *p > '9')
    return -EINVAL;
  for (; *p >= '0' && *p <= '9'; p++) {
    if (v > UINT64_MAX / 100000)
      return -EINVAL;
    v = v * 10 + (uint64_t)(*p - '0');
  }
  if (!*p || !strcmp(p, "s"))
    *ms = v * 1000;
  else if (!strcmp(p, "ms"))
    *ms = v;
  else if (!strcmp(p, "m"))
    *ms = v * 60000;
  else
    return -EINVAL;
  return 0;
}

const char *units_format_bytes(uint64_t bytes, char *buf, size_t len)
{
  static const char *const u[] = { "B", "KiB", "MiB", "GiB", "TiB", "PiB" };
  double v = (double)bytes;
  unsigned i = 0;
  while (v >= 1024 && i < 5) {
    v /= 1024;
    i++;
  }
  if (i == 0)
    snprintf(buf, len, "%llu B", (unsigned long long)bytes);
  else
    snprintf(buf, len, "%.1f %s", v, u[i]);
  return buf;
}
