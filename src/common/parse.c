/* parse.c: value parsers for the command line and the config file (see parse.h). */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "common/checked.h"
#include "common/parse.h"

int parse_uint(const char *s, uint64_t min, uint64_t max, uint64_t *out)
{
  char *end;
  unsigned long long v;

  if (!s || *s < '0' || *s > '9')
    return -EINVAL;
  errno = 0;
  v = strtoull(s, &end, 10);
  if (errno || *end)
    return -EINVAL;
  if (v < min || v > max)
    return -ERANGE;
  *out = v;
  return 0;
}

int parse_size(const char *s, uint64_t *out)
{
  char *end;
  unsigned long long v;
  unsigned shift = 0;

  if (!s || *s < '0' || *s > '9')
    return -EINVAL;
  errno = 0;
  v = strtoull(s, &end, 10);
  if (errno)
    return -ERANGE;
  switch (*end) {
  case 'k': case 'K': shift = 10; end++; break;
  case 'm': case 'M': shift = 20; end++; break;
  case 'g': case 'G': shift = 30; end++; break;
  case 't': case 'T': shift = 40; end++; break;
  case 'p': case 'P': shift = 50; end++; break;
  case 'e': case 'E': shift = 60; end++; break;
  default: break;
  }
  if (shift && (!strcmp(end, "iB") || !strcmp(end, "B")))
    end += strlen(end);
  if (*end)
    return -EINVAL;
  if (shift && v > (UINT64_MAX >> shift))
    return -ERANGE;
  *out = (uint64_t)v << shift;
  return 0;
}

int parse_bool(const char *s, bool *out)
{
  static const char *const yes[] = { "1", "yes", "true", "on", NULL };
  static const char *const no[] = { "0", "no", "false", "off", NULL };

  for (int i = 0; yes[i]; i++)
    if (!strcasecmp(s, yes[i])) { *out = true; return 0; }
  for (int i = 0; no[i]; i++)
    if (!strcasecmp(s, no[i])) { *out = false; return 0; }
  return -EINVAL;
}

int parse_mode(const char *s, unsigned *out)
{
  char *end;
  unsigned long m;

  if (!*s || *s == '-' || *s == '+')
    return -EINVAL;
  errno = 0;
  m = strtoul(s, &end, 8);
  if (*end || errno || m > 0777)
    return -EINVAL;
  *out = (unsigned)m;
  return 0;
}

int parse_flag(const char *s, bool *out)
{
  if (!s) {
    *out = true;
    return 0;
  }
  return parse_bool(s, out);
}

int parse_option_list(char *list,
                      int (*set)(void *arg, const char *key, const char *val, char *err, size_t errlen),
                      void *arg, char *err, size_t errlen)
{
  char *opt, *save = NULL;
  int r = 0;

  for (opt = strtok_r(list, ",", &save); r == 0 && opt; opt = strtok_r(NULL, ",", &save)) {
    char *v = strchr(opt, '=');
    if (v)
      *v++ = '\0';
    r = set(arg, opt, v, err, errlen);
  }
  return r;
}
