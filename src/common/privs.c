/* privs.c: becoming another user (see privs.h). */
#include <errno.h>
#include <grp.h>
#include <pwd.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "common/log.h"
#include "common/parse.h"
#include "common/privs.h"

int privs_resolve(struct privs *p, char *err, size_t errlen)
{
  uint64_t v;

  if (p->group) {
    struct group *gr = getgrnam(p->group);
    if (gr)
      p->gid = gr->gr_gid;
    else if (parse_uint(p->group, 0, (gid_t)-2, &v) == 0)
      p->gid = (gid_t)v;
    else {
      snprintf(err, errlen, "-g %s: no such group", p->group);
      return -ENOENT;
    }
  }
  if (p->user) {
    struct passwd *pw = getpwnam(p->user);
    if (pw) {
      p->uid = pw->pw_uid;
      if (!p->group)
        p->gid = pw->pw_gid;
    } else if (parse_uint(p->user, 0, (uid_t)-2, &v) == 0) {
      p->uid = (uid_t)v;
      if (!p->group)
        p->gid = (gid_t)v;
    } else {
      snprintf(err, errlen, "-u %s: no such user", p->user);
      return -ENOENT;
    }
  }
  return 0;
}

int privs_drop(const struct privs *p)
{
  if (!p->user && !p->group)
    return 0;
  if (p->user ? initgroups(p->user, p->gid) < 0 && setgroups(1, &p->gid) < 0
              : setgroups(1, &p->gid) < 0) {
    log_msg(LOG_ERROR, NULL, NULL, "-u/-g: setgroups: %s", strerror(errno));
    return -1;
  }
  if (setgid(p->gid) < 0) {
    log_msg(LOG_ERROR, NULL, NULL, "-g %s: setgid: %s", p->group ? p->group : p->user, strerror(errno));
    return -1;
  }
  if (p->user && setuid(p->uid) < 0) {
    log_msg(LOG_ERROR, NULL, NULL, "-u %s: setuid: %s", p->user, strerror(errno));
    return -1;
  }
  log_msg(LOG_INFO, NULL, NULL, "running as uid %d, gid %d", (int)getuid(), (int)getgid());
  return 0;
}
