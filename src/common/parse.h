/* parse.h: parsing of command-line and config values (sizes, numbers, booleans).
 * Pure functions; they return 0 or -EINVAL/-ERANGE and never print. */
#ifndef SHUNT_COMMON_PARSE_H
#define SHUNT_COMMON_PARSE_H

#include <stdbool.h>
#include <stdint.h>

/* Parse a size such as "4096", "64M", "1G", "1.5G" is NOT accepted; suffixes
 * K, M, G, T, P (powers of 1024, optional trailing "iB" or "B"). */
int parse_size(const char *s, uint64_t *out);

/* Parse an unsigned decimal integer in [min, max]. */
int parse_uint(const char *s, uint64_t min, uint64_t max, uint64_t *out);

/* Parse yes/no, true/false, on/off, 1/0. */
int parse_bool(const char *s, bool *out);

/* An option that is a flag or a boolean: a bare "ro" (s NULL) is true,
 * "ro=off" whatever parse_bool says. */
int parse_flag(const char *s, bool *out);

/* Parse a file mode in octal ("600", "0660"), at most 0777. */
int parse_mode(const char *s, unsigned *out);

#endif
