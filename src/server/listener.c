/* listener.c: listening sockets (see listener.h). Runs before the workers
 * start, so plain blocking calls are fine here. */
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "common/log.h"
#include "common/parse.h"
#include "server/config.h"
#include "server/listener.h"

static int set_add(struct listen_set *set, int fd)
{
  int *f = realloc(set->fds, (set->n + 1) * sizeof *f);
  if (!f)
    return -ENOMEM;
  set->fds = f;
  set->fds[set->n++] = fd;
  return 0;
}

int listener_split(const char *hp, char *host, size_t hostlen, char *port, size_t portlen)
{
  const char *p, *h = hp;
  size_t hl;

  if (hp[0] && strspn(hp, "0123456789") == strlen(hp)) {
    /* A bare number is a port on every address, as nbdkit's -p. */
    h = hp;
    hl = 0;
    p = hp;
  } else if (hp[0] == '[') {
    const char *close = strchr(hp, ']');
    if (!close || (close[1] && close[1] != ':'))
      return -EINVAL;
    h = hp + 1;
    hl = close - h;
    p = close[1] == ':' ? close + 2 : NULL;
  } else {
    const char *colon = strrchr(hp, ':');
    if (colon && strchr(hp, ':') != colon)
      return -EINVAL;   /* a bare IPv6 address needs brackets */
    hl = colon ? (size_t)(colon - hp) : strlen(hp);
    p = colon ? colon + 1 : NULL;
  }
  if (hl >= hostlen)
    return -EINVAL;
  memcpy(host, h, hl);
  host[hl] = '\0';
  if (p && !*p)
    return -EINVAL;
  if (p) {
    uint64_t v;
    if (parse_uint(p, 0, 65535, &v) < 0)
      return -EINVAL;
  }
  snprintf(port, portlen, "%s", p ? p : SHUNT_DEFAULT_PORT);
  return 0;
}

/* Log the address fd is bound to: with port 0 the kernel picked one, and
 * that is the port a client needs. */
static void print_listening(int fd)
{
  char host[NI_MAXHOST], serv[NI_MAXSERV];
  struct sockaddr_storage ss;
  struct sockaddr *sa = (struct sockaddr *)&ss;
  socklen_t sl = sizeof ss;
  if (getsockname(fd, sa, &sl) == 0 && getnameinfo(sa, sl, host, sizeof host, serv, sizeof serv, NI_NUMERICHOST | NI_NUMERICSERV) == 0)
    log_msg(LOG_NOTICE, NULL, NULL,
            sa->sa_family == AF_INET6 ? "listening on [%s]:%s" : "listening on %s:%s", host, serv);
}

int listener_open_tcp(struct listen_set *set, const char *hostport, char *err, size_t errlen)
{
  char host[256], port[16];
  struct addrinfo hints, *res, *ai;
  int r, opened = 0, last = 0;

  if (!hostport[0]) {
    /* An unset variable in --listen "$ADDR" must not expose every address. */
    snprintf(err, errlen, "--listen '': empty address (use :PORT to listen on every address)");
    return -EINVAL;
  }
  if (listener_split(hostport, host, sizeof host, port, sizeof port) < 0) {
    snprintf(err, errlen, "--listen '%s': expected HOST:PORT, [IPV6]:PORT or :PORT", hostport);
    return -EINVAL;
  }
  memset(&hints, 0, sizeof hints);
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_PASSIVE | AI_ADDRCONFIG;
  r = getaddrinfo(host[0] ? host : NULL, port, &hints, &res);
  if (r != 0) {
    snprintf(err, errlen, "--listen '%s': %s", hostport, gai_strerror(r));
    return -EINVAL;
  }
  for (ai = res; ai; ai = ai->ai_next) {
    int fd = socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC, ai->ai_protocol);
    int one = 1;
    if (fd < 0) { last = -errno; continue; }
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (ai->ai_family == AF_INET6)
      setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof one);
    if (bind(fd, ai->ai_addr, ai->ai_addrlen) < 0 || listen(fd, SOMAXCONN) < 0) {
      last = -errno;
      /* Another server on the port is the usual cause: say how to move. */
      snprintf(err, errlen, "--listen '%s': %s%s", hostport, strerror(errno),
               errno == EADDRINUSE ? " (another server listens there: choose another port, -p PORT)" : "");
      close(fd);
      continue;
    }
    if (set_add(set, fd) < 0) {
      close(fd);
      freeaddrinfo(res);
      snprintf(err, errlen, "out of memory");
      return -ENOMEM;
    }
    print_listening(fd);
    opened++;
  }
  freeaddrinfo(res);
  if (!opened) {
    if (!last) snprintf(err, errlen, "--listen '%s': no address", hostport);
    return last ? last : -EADDRNOTAVAIL;
  }
  return 0;
}

/* What is at path, before we bind there: 0 when nothing is (or a stale socket
 * that no server answers on, which is removed), or -errno with a message.
 * Anything but a socket is left alone (a typo must not delete a disk image),
 * and so is a socket some server still accepts on. */
static int clear_unix_path(const struct sockaddr_un *sun, char *err, size_t errlen)
{
  const char *path = sun->sun_path;
  struct stat st;
  int fd, r;

  if (lstat(path, &st) < 0) {
    if (errno == ENOENT)
      return 0;
    r = -errno;
    snprintf(err, errlen, "--unix '%s': %s", path, strerror(errno));
    return r;
  }
  if (!S_ISSOCK(st.st_mode)) {
    snprintf(err, errlen, "--unix '%s': exists and is not a socket; not replacing it", path);
    return -EEXIST;
  }
  /* Non-blocking: a live server whose backlog is full answers EAGAIN
   * instead of keeping us waiting. */
  fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
  if (fd < 0) {
    r = -errno;
    snprintf(err, errlen, "--unix '%s': %s", path, strerror(errno));
    return r;
  }
  r = connect(fd, (const struct sockaddr *)sun, sizeof *sun) == 0 ? 0 : -errno;
  close(fd);
  if (r == 0 || r == -EAGAIN || r == -EINPROGRESS) {
    snprintf(err, errlen, "--unix '%s': a server is listening on this socket; not replacing it", path);
    return -EADDRINUSE;
  }
  if (r != -ECONNREFUSED) {
    snprintf(err, errlen, "--unix '%s': cannot tell whether the socket is in use: %s", path, strerror(-r));
    return r;
  }
  /* Nobody listens: the socket file of a server that is gone. */
  if (unlink(path) < 0 && errno != ENOENT) {
    r = -errno;
    snprintf(err, errlen, "--unix '%s': cannot remove the stale socket: %s", path, strerror(errno));
    return r;
  }
  return 0;
}

/* Remember the socket file we created, to remove it (and only it) at exit. */
static int owned_add(struct listen_set *set, const char *path)
{
  struct stat st;
  struct listen_unix *u;

  if (lstat(path, &st) < 0)
    return -errno;
  u = realloc(set->owned, (set->nowned + 1) * sizeof *u);
  if (!u)
    return -ENOMEM;
  set->owned = u;
  u += set->nowned;
  if (!(u->path = strdup(path)))
    return -ENOMEM;
  u->dev = st.st_dev;
  u->ino = st.st_ino;
  set->nowned++;
  return 0;
}

int listener_open_unix(struct listen_set *set, const char *path, char *err, size_t errlen)
{
  struct sockaddr_un sun;
  int fd, r;

  if (strlen(path) >= sizeof sun.sun_path) {
    snprintf(err, errlen, "--unix '%s': path too long", path);
    return -ENAMETOOLONG;
  }
  memset(&sun, 0, sizeof sun);
  sun.sun_family = AF_UNIX;
  strcpy(sun.sun_path, path);
  if ((r = clear_unix_path(&sun, err, errlen)) < 0)
    return r;
  fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0 || bind(fd, (struct sockaddr *)&sun, sizeof sun) < 0) {
    r = -errno;
    snprintf(err, errlen, "--unix '%s': %s", path, strerror(errno));
    if (fd >= 0) close(fd);
    return r;
  }
  /* From here on the file is ours: record it before anything else can fail. */
  if ((r = owned_add(set, path)) < 0 || listen(fd, SOMAXCONN) < 0) {
    r = r < 0 ? r : -errno;
    snprintf(err, errlen, "--unix '%s': %s", path, strerror(-r));
    close(fd);
    return r;
  }
  if (set_add(set, fd) < 0) {
    close(fd);
    snprintf(err, errlen, "out of memory");
    return -ENOMEM;
  }
  log_msg(LOG_NOTICE, NULL, NULL, "listening on unix:%s", path);
  return 0;
}

int listener_socket_activation(struct listen_set *set)
{
  const char *pid = getenv("LISTEN_PID"), *fds = getenv("LISTEN_FDS");
  uint64_t p, n;

  if (!pid || !fds || parse_uint(pid, 1, UINT32_MAX, &p) < 0 || parse_uint(fds, 1, 1024, &n) < 0)
    return 0;
  if ((pid_t)p != getpid())
    return 0;
  for (uint64_t i = 0; i < n; i++) {
    int fd = 3 + (int)i, listening = 0;
    socklen_t len = sizeof listening;
    /* Only a listening socket can be accepted on: anything else (a file, a
     * connected socket, a closed fd) would make every accept fail at once,
     * for ever. */
    if (getsockopt(fd, SOL_SOCKET, SO_ACCEPTCONN, &listening, &len) < 0 || !listening) {
      log_msg(LOG_ERROR, NULL, NULL,
              "socket activation: fd %d is not a listening socket (LISTEN_FDS=%s)", fd, fds);
      return -ENOTSOCK;
    }
    fcntl(fd, F_SETFD, FD_CLOEXEC);
    if (set_add(set, fd) < 0)
      return -ENOMEM;
  }
  unsetenv("LISTEN_PID");
  unsetenv("LISTEN_FDS");
  unsetenv("LISTEN_FDNAMES");
  log_msg(LOG_NOTICE, NULL, NULL,
          "listening on %llu socket(s) from socket activation", (unsigned long long)n);
  return (int)n;
}

void listener_close_all(struct listen_set *set)
{
  for (size_t i = 0; i < set->n; i++)
    close(set->fds[i]);
  free(set->fds);
  set->fds = NULL;
  set->n = 0;
  /* Remove our socket files, unless someone replaced one meanwhile (another
   * server bound the path after deleting ours): that one is theirs. */
  for (size_t i = 0; i < set->nowned; i++) {
    struct listen_unix *u = &set->owned[i];
    struct stat st;
    if (lstat(u->path, &st) == 0 && S_ISSOCK(st.st_mode) && st.st_dev == u->dev && st.st_ino == u->ino)
      unlink(u->path);
    free(u->path);
  }
  free(set->owned);
  set->owned = NULL;
  set->nowned = 0;
}
