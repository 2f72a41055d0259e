/* inifile.h: the INI-style file format of `shunt serve --config` and
 * `shunt vhost --config` (docs/config.md): "[SECTION]" headers, "KEY = VALUE"
 * or bare "KEY" lines, '#' and ';' comments.  The reader only splits lines;
 * what sections and keys mean is the caller's (callbacks). */
#ifndef SHUNT_COMMON_INIFILE_H
#define SHUNT_COMMON_INIFILE_H

#include <stddef.h>

/* Longest line accepted, newline included. */
#define INI_MAX_LINE 8191

struct ini_handler {
  /* A "[TEXT]" line: TEXT trimmed.  Returns 0, or -errno with a message. */
  int (*section)(void *arg, const char *text, char *msg, size_t msglen);
  /* A "KEY = VALUE" line (both trimmed), or a bare "KEY" line (val NULL).
   * Returns 0, or -errno with a message. */
  int (*key)(void *arg, const char *key, const char *val, char *msg, size_t msglen);
};

/* Read path (a regular file, or a pipe read to its end; anything else is
 * refused) line by line into h.  Returns 0, or -errno with "FILE:LINE:
 * message" (or "FILE: message") in err; stops at the first error. */
int ini_load_file(const char *path, const struct ini_handler *h, void *arg, char *err, size_t errlen);

#endif
