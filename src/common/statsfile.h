/* statsfile.h: the statistics file of `shunt serve --stats` and `shunt
 * vhost --stats`: JSON written whole through FILE.tmp and a rename, so that
 * a reader never sees half of it, and checked at start, so that a missing
 * or read-only directory stops the start instead of showing only at exit. */
#ifndef SHUNT_COMMON_STATSFILE_H
#define SHUNT_COMMON_STATSFILE_H

struct json;

/* At start: can path be written (its PATH.tmp created)?  A PATH.tmp left by
 * a killed process is only opened, and left.  Returns 0 or -errno, with an
 * error line logged ("--stats PATH: ..."). */
int statsfile_check(const char *path);

/* Write path: fill(j, arg) writes one JSON value into j.  Returns 0 or
 * -errno, with an error line logged; path is then left as it was. */
int statsfile_write(const char *path, void (*fill)(struct json *j, void *arg), void *arg);

#endif
