/* json.c: the JSON writer of the tools' reports (see json.h). */
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "common/json.h"
#include "common/text.h"

static void fail(struct json *j, int err)
{
  if (!j->error)
    j->error = err;
}

static void put(void *ctx, const char *p, size_t n)
{
  struct json *j = ctx;
  if (j->error)
    return;
  if (j->f) {
    if (fwrite(p, 1, n, j->f) != n)
      fail(j, -EIO);
    return;
  }
  if (j->len + n + 1 > j->cap) {
    size_t cap = j->cap ? j->cap : 256;
    while (cap < j->len + n + 1)
      cap *= 2;
    char *b = realloc(j->buf, cap);
    if (!b) {
      fail(j, -ENOMEM);
      return;
    }
    j->buf = b;
    j->cap = cap;
  }
  memcpy(j->buf + j->len, p, n);
  j->len += n;
  j->buf[j->len] = '\0';
}

static void puts_(struct json *j, const char *s)
{
  put(j, s, strlen(s));
}

/* A newline and the indentation of depth levels. */
static void newline(struct json *j, unsigned depth)
{
  static const char spaces[] = "                                ";
  put(j, "\n", 1);
  for (unsigned n = 2 * depth; n > 0;) {
    unsigned k = n < sizeof spaces - 1 ? n : (unsigned)sizeof spaces - 1;
    put(j, spaces, k);
    n -= k;
  }
}

/* Everything a value needs before it: the separator from the previous
 * member, the line break or space of the container's layout, and the key.
 * False when the value may not go here. */
static bool begin_value(struct json *j, const char *key)
{
  if (j->error)
    return false;
  if (j->depth == 0) {
    if (key || j->complete) {
      fail(j, -EINVAL);
      return false;
    }
    return true;
  }
  struct json_level *l = &j->level[j->depth - 1];
  if (l->object != (key != NULL)) {
    fail(j, -EINVAL);
    return false;
  }
  if (!l->empty)
    put(j, ",", 1);
  if (l->line)
    put(j, " ", 1);
  else
    newline(j, j->depth);
  l->empty = false;
  if (key) {
    text_json_string_put(key, put, j);
    put(j, ": ", 2);
  }
  return true;
}

/* After a value: a complete top-level value ends its line. */
static void end_value(struct json *j)
{
  if (j->depth == 0 && !j->error) {
    put(j, "\n", 1);
    j->complete = true;
  }
}

void json_init_file(struct json *j, FILE *f)
{
  memset(j, 0, sizeof *j);
  j->f = f;
}

void json_init_buffer(struct json *j)
{
  memset(j, 0, sizeof *j);
}

int json_finish(struct json *j)
{
  if (!j->error && (j->depth || !j->complete))
    fail(j, -EINVAL);
  if (j->f && fflush(j->f) != 0)
    fail(j, -EIO);
  return j->error;
}

void json_free(struct json *j)
{
  free(j->buf);
  j->buf = NULL;
  j->len = j->cap = 0;
}

static void open_container(struct json *j, const char *key, bool object, enum json_layout layout)
{
  if (!begin_value(j, key))
    return;
  if (j->depth == JSON_MAX_DEPTH) {
    fail(j, -EINVAL);
    return;
  }
  put(j, object ? "{" : "[", 1);
  j->level[j->depth++] = (struct json_level){ object, layout == JSON_LINE, true };
}

void json_object(struct json *j, const char *key, enum json_layout layout)
{
  open_container(j, key, true, layout);
}

void json_array(struct json *j, const char *key, enum json_layout layout)
{
  open_container(j, key, false, layout);
}

void json_end(struct json *j)
{
  if (j->error)
    return;
  if (j->depth == 0) {
    fail(j, -EINVAL);
    return;
  }
  struct json_level *l = &j->level[--j->depth];
  if (l->line)
    put(j, " ", 1);
  else
    newline(j, j->depth);
  put(j, l->object ? "}" : "]", 1);
  end_value(j);
}

void json_string(struct json *j, const char *key, const char *s)
{
  if (!begin_value(j, key))
    return;
  if (s)
    text_json_string_put(s, put, j);
  else
    puts_(j, "null");
  end_value(j);
}

void json_uint(struct json *j, const char *key, uint64_t v)
{
  char b[24];
  if (!begin_value(j, key))
    return;
  snprintf(b, sizeof b, "%llu", (unsigned long long)v);
  puts_(j, b);
  end_value(j);
}

void json_int(struct json *j, const char *key, int64_t v)
{
  char b[24];
  if (!begin_value(j, key))
    return;
  snprintf(b, sizeof b, "%lld", (long long)v);
  puts_(j, b);
  end_value(j);
}

void json_double(struct json *j, const char *key, double v, int digits)
{
  char b[352];  /* the largest double in %f is 309 digits before the point */
  if (!begin_value(j, key))
    return;
  if (!isfinite(v))
    puts_(j, "null");
  else {
    snprintf(b, sizeof b, "%.*f", digits < 0 ? 0 : digits > 17 ? 17 : digits, v);
    puts_(j, b);
  }
  end_value(j);
}

void json_bool(struct json *j, const char *key, bool v)
{
  if (!begin_value(j, key))
    return;
  puts_(j, v ? "true" : "false");
  end_value(j);
}

void json_null(struct json *j, const char *key)
{
  if (!begin_value(j, key))
    return;
  puts_(j, "null");
  end_value(j);
}
