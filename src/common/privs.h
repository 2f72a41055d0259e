/* privs.h: running as another user once the privileged part is done
 * (-u/-g of shunt serve and shunt vhost): sockets bound and files opened
 * as root, then the process becomes USER:GROUP. */
#ifndef SHUNT_COMMON_PRIVS_H
#define SHUNT_COMMON_PRIVS_H

#include <stddef.h>
#include <sys/types.h>

/* Who to become: a user and a group by name or number (either may be NULL). */
struct privs {
  const char *user, *group;
  uid_t uid;             /* set by privs_resolve */
  gid_t gid;             /* the group's, else the user's primary group */
};

/* Look the names up (before anything starts).  Returns 0, or -ENOENT with
 * "-u USER: no such user" or "-g GROUP: no such group" in err. */
int privs_resolve(struct privs *p, char *err, size_t errlen);

/* Become p (supplementary groups, group, then user), logged.  Nothing when
 * neither user nor group is set.  Returns 0 or -1 (logged). */
int privs_drop(const struct privs *p);

#endif
