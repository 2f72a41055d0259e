/* prom.c: the Prometheus text format writer (see prom.h). */
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/prom.h"
#include "common/text.h"

void prom_init(struct prom *p)
{
  memset(p, 0, sizeof *p);
}

void prom_free(struct prom *p)
{
  free(p->buf);
  memset(p, 0, sizeof *p);
}

static void put(struct prom *p, const char *s, size_t n)
{
  if (p->error)
    return;
  if (p->len + n + 1 > p->cap) {
    size_t cap = p->cap ? p->cap : 4096;
    while (cap < p->len + n + 1)
      cap *= 2;
    char *b = realloc(p->buf, cap);
    if (!b) {
      p->error = -ENOMEM;
      return;
    }
    p->buf = b;
    p->cap = cap;
  }
  memcpy(p->buf + p->len, s, n);
  p->len += n;
  p->buf[p->len] = '\0';
}

static void puts_(struct prom *p, const char *s)
{
  put(p, s, strlen(s));
}

/* s with backslash and newline escaped (and, in label values, the double
 * quote); bytes that are not UTF-8 as U+FFFD. */
static void escaped(struct prom *p, const char *s, int quote)
{
  const unsigned char *u = (const unsigned char *)s;
  size_t len = strlen(s);

  for (size_t i = 0; i < len;) {
    size_t n = text_utf8_seq(u + i, len - i);
    if (n == 0) {
      puts_(p, "\xef\xbf\xbd");
      i++;
    } else if (u[i] == '\\') {
      puts_(p, "\\\\");
      i++;
    } else if (u[i] == '\n') {
      puts_(p, "\\n");
      i++;
    } else if (u[i] == '"' && quote) {
      puts_(p, "\\\"");
      i++;
    } else {
      put(p, s + i, n);
      i += n;
    }
  }
}

void prom_escape_value(struct prom *p, const char *s)
{
  escaped(p, s, 1);
}

void prom_family(struct prom *p, const char *name, const char *type, const char *help)
{
  puts_(p, "# HELP ");
  puts_(p, name);
  puts_(p, " ");
  escaped(p, help, 0);
  puts_(p, "\n# TYPE ");
  puts_(p, name);
  puts_(p, " ");
  puts_(p, type);
  puts_(p, "\n");
}

static void series(struct prom *p, const char *name, const struct prom_label *labels, size_t n)
{
  puts_(p, name);
  if (n > PROM_MAX_LABELS)
    n = PROM_MAX_LABELS;
  for (size_t i = 0; i < n; i++) {
    puts_(p, i ? "," : "{");
    puts_(p, labels[i].name);
    puts_(p, "=\"");
    prom_escape_value(p, labels[i].value ? labels[i].value : "");
    puts_(p, "\"");
  }
  if (n)
    puts_(p, "}");
  puts_(p, " ");
}

void prom_uint(struct prom *p, const char *name, const struct prom_label *labels, size_t n, uint64_t v)
{
  char num[32];
  series(p, name, labels, n);
  snprintf(num, sizeof num, "%" PRIu64 "\n", v);
  puts_(p, num);
}

void prom_double(struct prom *p, const char *name, const struct prom_label *labels, size_t n, double v)
{
  char num[40];
  series(p, name, labels, n);
  if (isnan(v))
    snprintf(num, sizeof num, "NaN\n");
  else if (isinf(v))
    snprintf(num, sizeof num, "%sInf\n", v > 0 ? "+" : "-");
  else
    snprintf(num, sizeof num, "%.17g\n", v);
  puts_(p, num);
}
