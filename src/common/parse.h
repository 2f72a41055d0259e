/* parse.h: parsing of command-line and config values (sizes, numbers, booleans).
 * Pure functions; they return 0 or -EINVAL/-ERANGE and never print
 * (parse_option_list hands the options of a list to its caller's setter). */
#ifndef SHUNT_COMMON_PARSE_H
#define SHUNT_COMMON_PARSE_H

#include <stdbool.h>
#include <stddef.h>
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

/* Split list (changed in place) at its commas, empty items skipped, and
 * call set(arg, KEY, VALUE, err, errlen) for each "KEY=VALUE" item, or
 * set(arg, KEY, NULL, err, errlen) for a bare "KEY", in order, until one
 * fails.  Returns 0, or what the failing call returned (its message in
 * err).  The options of an export or a device spec: "NAME=PATH,ro,chunk=1M". */
int parse_option_list(char *list,
                      int (*set)(void *arg, const char *key, const char *val, char *err, size_t errlen),
                      void *arg, char *err, size_t errlen);

#endif
