/* units.h: sizes and durations for command lines and reports: parse "64K",
 * "1G", "30s"; format "1.5 GiB".  Pure. */
#ifndef SHUNT_COMMON_UNITS_H
#define SHUNT_COMMON_UNITS_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

/* Parse a size with an optional binary suffix (K, M, G, T; "KiB" forms too):
 * 0 and *out, or -EINVAL (junk, overflow). */
int units_parse_size(const char *s, uint64_t *out);

/* Parse a duration: plain seconds, or with suffix ms, s, m: 0 and *ms, or -EINVAL. */
int units_parse_duration_ms(const char *s, uint64_t *ms);

/* Format bytes as "123 B", "4.0 KiB", "1.5 GiB" into buf; returns buf. */
const char *units_format_bytes(uint64_t bytes, char *buf, size_t len);

#endif
