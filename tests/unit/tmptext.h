/* tmptext.h: a temporary file holding given text, for the unit tests that
 * read config files (test_config, test_limits, test_vhost_config). */
#ifndef SHUNT_TESTS_TMPTEXT_H
#define SHUNT_TESTS_TMPTEXT_H

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* Room for the path tmptext_file writes. */
#define TMPTEXT_PATH 32

/* Write len bytes of text (NUL bytes too) to a new file under /tmp and its
 * path into path.  Returns 0, or -EIO (no file is left).  The caller
 * unlinks it. */
static inline int tmptext_file(const char *text, size_t len, char path[TMPTEXT_PATH])
{
  int fd;

  strcpy(path, "/tmp/shunt-test-XXXXXX");
  if ((fd = mkstemp(path)) < 0)
    return -EIO;
  if (write(fd, text, len) != (ssize_t)len) {
    close(fd);
    unlink(path);
    return -EIO;
  }
  close(fd);
  return 0;
}

#endif
