/* prom.h: a writer of the Prometheus text exposition format, version 0.0.4
 * (what GET /metrics answers and `shunt stats --prometheus` prints): metric
 * families (# HELP and # TYPE lines) and their samples, into a growing
 * buffer.  Label values are escaped as the format says (backslash, double
 * quote, newline) and bytes that are not valid UTF-8 become U+FFFD, so an
 * export name cannot break the text around it.  Errors (out of memory) are
 * remembered: p->error, and the calls after one do nothing. */
#ifndef SHUNT_COMMON_PROM_H
#define SHUNT_COMMON_PROM_H

#include <stddef.h>
#include <stdint.h>

#define PROM_MAX_LABELS 4

struct prom {
  char *buf;                 /* NUL-terminated text (malloc'd); free with prom_free */
  size_t len, cap;
  int error;                 /* 0 or -ENOMEM */
};

/* A label: name (a fixed identifier) and value (any text). */
struct prom_label {
  const char *name;
  const char *value;
};

void prom_init(struct prom *p);
void prom_free(struct prom *p);

/* Start a metric family: "# HELP name help" and "# TYPE name type" (type:
 * counter, gauge, histogram, untyped). */
void prom_family(struct prom *p, const char *name, const char *type, const char *help);

/* One sample line: name{labels} value.  n labels (at most PROM_MAX_LABELS,
 * the rest ignored); an integer value, or a double (written with 17
 * significant digits; +Inf, -Inf and NaN as the format spells them). */
void prom_uint(struct prom *p, const char *name, const struct prom_label *labels, size_t n, uint64_t v);
void prom_double(struct prom *p, const char *name, const struct prom_label *labels, size_t n, double v);

/* Append a label value to p escaped as the format says (no quotes). */
void prom_escape_value(struct prom *p, const char *s);

#endif
