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

/* The layout both config files have: a [server] part (the lines before any
 * section belong to it too) of "KEY = VALUE" lines, and "[KIND NAME]"
 * sections (KIND, blanks, NAME), each one item (an export, a device) of
 * "KEY = VALUE" or bare "KEY" lines.  The callbacks return 0, or -errno with
 * a message. */
struct ini_layout {
  const char *kind;        /* "export", "vhost" */
  const char *name_what;   /* what NAME is, in the message on an unknown section */
  /* A [KIND NAME] header (NAME not empty): make the item the lines that
   * follow set (*item). */
  int (*item)(void *arg, const char *name, void **item, char *msg, size_t msglen);
  /* A line of the current item's section (val NULL for a bare KEY). */
  int (*item_key)(void *item, const char *key, const char *val, char *msg, size_t msglen);
  /* A line of the [server] part (never a bare KEY: that one is refused with
   * "expected KEY = VALUE"). */
  int (*server_key)(void *arg, const char *key, const char *val, char *msg, size_t msglen);
};

/* Read path as ini_load_file does, in the layout l; any other section is
 * refused ("unknown section [TEXT] (expected [server] or [KIND NAME_WHAT])"). */
int ini_load_layout(const char *path, const struct ini_layout *l, void *arg, char *err, size_t errlen);

#endif
