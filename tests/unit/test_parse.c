/* test_parse.c: common/parse.h's option lists: every item in order, bare
 * keys with no value, empty items skipped, the first failure returned. */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "common/parse.h"
#include "tap.h"

struct seen {
  char text[256];               /* "key=val;" or "key;" per call */
  const char *fail_at;          /* this key fails with -EINVAL */
};

static int set(void *arg, const char *key, const char *val, char *err, size_t errlen)
{
  struct seen *s = arg;
  size_t n = strlen(s->text);

  snprintf(s->text + n, sizeof s->text - n, val ? "%s=%s;" : "%s;", key, val);
  if (s->fail_at && !strcmp(key, s->fail_at)) {
    snprintf(err, errlen, "no %s", key);
    return -EINVAL;
  }
  return 0;
}

int main(void)
{
  char list[64], err[64] = "";
  struct seen s = { "" };

  strcpy(list, "ro,chunk=1M,,desc=a=b,");
  ok(parse_option_list(list, set, &s, err, sizeof err) == 0 && !strcmp(s.text, "ro;chunk=1M;desc=a=b;"),
     "items in order, empty ones skipped, a value keeps its '=': %s", s.text);

  s = (struct seen){ "", "bad" };
  strcpy(list, "a,bad=1,c");
  ok(parse_option_list(list, set, &s, err, sizeof err) == -EINVAL && !strcmp(s.text, "a;bad=1;")
     && !strcmp(err, "no bad"), "stops at the first failure: %s", s.text);

  s = (struct seen){ "" };
  strcpy(list, "");
  ok(parse_option_list(list, set, &s, err, sizeof err) == 0 && !s.text[0], "an empty list sets nothing");

  s = (struct seen){ "" };
  strcpy(list, "x=");
  ok(parse_option_list(list, set, &s, err, sizeof err) == 0 && !strcmp(s.text, "x=;"), "x= is an empty value");
  return tap_done();
}
