/* inifile.c: reading the INI-style config files line by line (see inifile.h). */
#include <ctype.h>
#include <stdbool.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/inifile.h"

static char *trim(char *s)
{
  char *end;
  while (isspace((unsigned char)*s))
    s++;
  end = s + strlen(s);
  while (end > s && isspace((unsigned char)end[-1]))
    *--end = '\0';
  return s;
}

/* Open path for reading: a regular file, or a pipe (--config <(...)) read
 * to its end.  Anything else is refused: a directory reads as an empty file
 * on some systems (every tls = require and allow= silently gone), and a
 * device or socket is no config file. */
static FILE *open_config(const char *path, char *err, size_t errlen, int *r)
{
  struct stat st;
  FILE *f;
  /* O_NONBLOCK: opening a FIFO must not wait for a writer before we know
   * what it is (regular files ignore the flag). */
  int fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK);

  if (fd >= 0 && fstat(fd, &st) == 0 && S_ISFIFO(st.st_mode)) {
    /* A pipe: reopen blocking, so that its writer is waited for. */
    close(fd);
    fd = open(path, O_RDONLY | O_CLOEXEC);
  }
  if (fd < 0 || fstat(fd, &st) < 0) {
    *r = -errno;
    snprintf(err, errlen, "%s: %s", path, strerror(errno));
    if (fd >= 0) close(fd);
    return NULL;
  }
  if (!S_ISREG(st.st_mode) && !S_ISFIFO(st.st_mode)) {
    *r = -EINVAL;
    snprintf(err, errlen, "%s: not a regular file%s", path, S_ISDIR(st.st_mode) ? " (a directory)" : "");
    close(fd);
    return NULL;
  }
  if (!(f = fdopen(fd, "r"))) {
    *r = -errno;
    snprintf(err, errlen, "%s: %s", path, strerror(errno));
    close(fd);
  }
  return f;
}

/* One line, already trimmed and not a comment. */
static int ini_line(char *s, const struct ini_handler *h, void *arg, char *msg, size_t msglen)
{
  char *eq;

  if (*s == '[') {
    char *end = strchr(s, ']');
    if (!end || end[1]) {
      snprintf(msg, msglen, "malformed section header");
      return -EINVAL;
    }
    *end = '\0';
    return h->section(arg, trim(s + 1), msg, msglen);
  }
  eq = strchr(s, '=');
  if (!eq)
    return h->key(arg, s, NULL, msg, msglen);
  *eq = '\0';
  return h->key(arg, trim(s), trim(eq + 1), msg, msglen);
}

int ini_load_file(const char *path, const struct ini_handler *h, void *arg, char *err, size_t errlen)
{
  char *line = NULL, msg[512];
  size_t cap = 0;
  ssize_t len;
  unsigned lineno = 0;
  int r = 0;
  FILE *f = open_config(path, err, errlen, &r);

  if (!f)
    return r;
  while (r == 0 && (len = getline(&line, &cap, f)) >= 0) {
    char *s;
    lineno++;
    if (memchr(line, '\0', (size_t)len)) {
      snprintf(msg, sizeof msg, "NUL byte in line");
      r = -EINVAL;
      break;
    }
    if (len > INI_MAX_LINE) {
      snprintf(msg, sizeof msg, "line too long (more than %d bytes)", INI_MAX_LINE);
      r = -EINVAL;
      break;
    }
    s = trim(line);
    if (*s && *s != '#' && *s != ';')
      r = ini_line(s, h, arg, msg, sizeof msg);
  }
  if (r == 0 && ferror(f)) {
    /* A read error must not pass for the end of the file: the rest of it
     * may hold the lines that matter most (tls = require, allow=, ro). */
    r = -EIO;
    snprintf(msg, sizeof msg, "read error after this line");
  }
  free(line);
  fclose(f);
  if (r < 0)
    snprintf(err, errlen, "%s:%u: %s", path, lineno, msg);
  return r;
}

/* ini_load_layout's state between lines. */
struct layout_reader {
  const struct ini_layout *l;
  void *arg;
  void *item;              /* the [KIND NAME] section's item; NULL: the [server] part */
};

static int layout_section(void *arg, const char *s, char *msg, size_t msglen)
{
  struct layout_reader *rd = arg;
  size_t n = strlen(rd->l->kind);
  const char *name;

  rd->item = NULL;
  if (!strcmp(s, "server"))
    return 0;
  if (strncmp(s, rd->l->kind, n) || !isspace((unsigned char)s[n])) {
    snprintf(msg, msglen, "unknown section [%s] (expected [server] or [%s %s])", s, rd->l->kind, rd->l->name_what);
    return -EINVAL;
  }
  for (name = s + n + 1; isspace((unsigned char)*name); name++)
    ;
  return rd->l->item(rd->arg, name, &rd->item, msg, msglen);
}

static int layout_key(void *arg, const char *key, const char *val, char *msg, size_t msglen)
{
  struct layout_reader *rd = arg;

  if (rd->item)
    return rd->l->item_key(rd->item, key, val, msg, msglen);
  if (!val) {
    snprintf(msg, msglen, "expected KEY = VALUE");
    return -EINVAL;
  }
  return rd->l->server_key(rd->arg, key, val, msg, msglen);
}

int ini_load_layout(const char *path, const struct ini_layout *l, void *arg, char *err, size_t errlen)
{
  static const struct ini_handler handler = { .section = layout_section, .key = layout_key };
  struct layout_reader rd = { .l = l, .arg = arg };

  return ini_load_file(path, &handler, &rd, err, errlen);
}
