/* statsfile.c: write a JSON statistics file atomically, and check at start
 * that it can be written (statsfile.h). */
#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/json.h"
#include "common/log.h"
#include "common/statsfile.h"

int statsfile_check(const char *path)
{
  char tmp[4096];
  struct stat st;
  bool created = true;
  int fd;

  if (stat(path, &st) == 0 && S_ISDIR(st.st_mode)) {
    log_msg(LOG_ERROR, NULL, NULL, "--stats %s: is a directory", path);
    return -EISDIR;
  }
  if ((size_t)snprintf(tmp, sizeof tmp, "%s.tmp", path) >= sizeof tmp) {
    log_msg(LOG_ERROR, NULL, NULL, "--stats %s: path too long", path);
    return -ENAMETOOLONG;
  }
  /* Create it and remove it again; one that is already there is only
   * opened, and left. */
  fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
  if (fd < 0 && errno == EEXIST) {
    created = false;
    fd = open(tmp, O_WRONLY | O_CLOEXEC);
  }
  if (fd < 0) {
    int r = -errno;
    log_msg(LOG_ERROR, NULL, NULL, "--stats %s: cannot create %s: %s", path, tmp, strerror(errno));
    return r;
  }
  close(fd);
  if (created)
    unlink(tmp);
  return 0;
}

int statsfile_write(const char *path, void (*fill)(struct json *j, void *arg), void *arg)
{
  char tmp[4096];
  struct json j;
  FILE *f;
  int r;

  if ((size_t)snprintf(tmp, sizeof tmp, "%s.tmp", path) >= sizeof tmp) {
    log_msg(LOG_ERROR, NULL, NULL, "--stats %s: path too long", path);
    return -ENAMETOOLONG;
  }
  if (!(f = fopen(tmp, "w"))) {
    r = -errno;
    log_msg(LOG_ERROR, NULL, NULL, "--stats %s: %s", tmp, strerror(errno));
    return r;
  }
  json_init_file(&j, f);
  fill(&j, arg);
  r = json_finish(&j);
  if (ferror(f) && r == 0)
    r = -EIO;
  if (fclose(f) != 0 && r == 0)
    r = -errno;
  if (r == 0 && rename(tmp, path) < 0)
    r = -errno;
  if (r < 0) {
    log_msg(LOG_ERROR, NULL, NULL, "--stats %s: %s", path, strerror(-r));
    unlink(tmp);
  }
  return r;
}
