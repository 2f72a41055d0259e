/* transport.c: plain-socket transport of libshunt (see transport.h): dialing
 * TCP (getaddrinfo, every address in turn, bounded by a timeout) and unix
 * sockets (including abstract names), and the byte movers. */
#include "client/transport.h"
#include "client/tls.h"

#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

static int dial_socket(const struct nbd_uri *u, unsigned timeout_ms, struct sh_transport *t,
                       char *err, size_t errlen);

static int connect_timeout(int fd, const struct sockaddr *sa, socklen_t len, unsigned timeout_ms)
{
  int fl = fcntl(fd, F_GETFL);
  if (fl < 0 || fcntl(fd, F_SETFL, fl | O_NONBLOCK) < 0)
    return -errno;
  int r = connect(fd, sa, len);
  if (r < 0 && errno != EINPROGRESS)
    return -errno;
  if (r < 0) {
    struct pollfd p = { .fd = fd, .events = POLLOUT };
    do
      r = poll(&p, 1, timeout_ms ? (int)timeout_ms : -1);
    while (r < 0 && errno == EINTR);
    if (r == 0)
      return -ETIMEDOUT;
    if (r < 0)
      return -errno;
    int soerr = 0;
    socklen_t sl = sizeof soerr;
    if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &sl) < 0)
      return -errno;
    if (soerr)
      return -soerr;
  }
  return fcntl(fd, F_SETFL, fl) < 0 ? -errno : 0;
}

int sh_transport_dial(const struct nbd_uri *u, unsigned timeout_ms, struct sh_transport *t,
                      char *err, size_t errlen)
{
  t->fd = -1;
  t->tls = NULL;
  t->timeout_ms = 0;
  if (u->tls) {
    /* Credentials first: a bad keys file fails before any connection. */
    struct sh_tls *tls;
    int r = sh_tls_new(u, &tls, err, errlen);
    if (r < 0)
      return r;
    r = dial_socket(u, timeout_ms, t, err, errlen);
    if (r < 0) {
      sh_tls_free(tls);
      return r;
    }
    t->tls = tls;
    return 0;
  }
  return dial_socket(u, timeout_ms, t, err, errlen);
}

int sh_transport_starttls(struct sh_transport *t, char *err, size_t errlen)
{
  return sh_tls_handshake(t->tls, t->fd, err, errlen);
}

static int dial_socket(const struct nbd_uri *u, unsigned timeout_ms, struct sh_transport *t,
                       char *err, size_t errlen)
{
  if (u->unix_socket) {
    struct sockaddr_un sun = { .sun_family = AF_UNIX };
    if (u->socket_len >= sizeof sun.sun_path) {
      snprintf(err, errlen, "unix socket path too long");
      return -ENAMETOOLONG;
    }
    memcpy(sun.sun_path, u->socket, u->socket_len);
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
      return -errno;
    socklen_t len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + u->socket_len +
                                (u->socket[0] ? 1 : 0));
    int r = connect_timeout(fd, (struct sockaddr *)&sun, len, timeout_ms);
    if (r < 0) {
      close(fd);
      snprintf(err, errlen, "connect to unix socket %s%s: %s", u->socket[0] ? "" : "@",
               u->socket[0] ? u->socket : u->socket + 1, strerror(-r));
      return r;
    }
    t->fd = fd;
    return 0;
  }
  struct addrinfo hints = { .ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM,
                            .ai_flags = AI_ADDRCONFIG }, *res;
  int g = getaddrinfo(u->host, u->port, &hints, &res);
  if (g) {
    snprintf(err, errlen, "resolve %s:%s: %s", u->host, u->port, gai_strerror(g));
    return g == EAI_SYSTEM ? -errno : -EHOSTUNREACH;
  }
  int r = -EHOSTUNREACH;
  for (struct addrinfo *a = res; a; a = a->ai_next) {
    int fd = socket(a->ai_family, a->ai_socktype | SOCK_CLOEXEC, a->ai_protocol);
    if (fd < 0) {
      r = -errno;
      continue;
    }
    r = connect_timeout(fd, a->ai_addr, a->ai_addrlen, timeout_ms);
    if (r == 0) {
      int one = 1;
      setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
      t->fd = fd;
      break;
    }
    close(fd);
  }
  freeaddrinfo(res);
  if (r < 0)
    snprintf(err, errlen, "connect to %s:%s: %s", u->host, u->port, strerror(-r));
  return r;
}

int sh_transport_set_timeout(struct sh_transport *t, unsigned timeout_ms)
{
  struct timeval tv = { .tv_sec = timeout_ms / 1000, .tv_usec = (timeout_ms % 1000) * 1000 };
  if (setsockopt(t->fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv) < 0 ||
      setsockopt(t->fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv) < 0)
    return -errno;
  t->timeout_ms = timeout_ms;
  return 0;
}

int sh_transport_set_nonblock(struct sh_transport *t)
{
  int fl = fcntl(t->fd, F_GETFL);
  if (fl < 0 || fcntl(t->fd, F_SETFL, fl | O_NONBLOCK) < 0)
    return -errno;
  return sh_transport_set_timeout(t, 0);
}

int sh_transport_read_full(struct sh_transport *t, void *buf, size_t len)
{
  char *p = buf;
  while (len) {
    ssize_t n;
    if (sh_tls_active(t->tls)) {
      n = sh_tls_readv(t->tls, &(struct iovec){ p, len }, 1);
      if (n == 0)
        return -ECONNRESET;
      if (n == -EAGAIN && !sh_tls_starved(t->tls))
        continue;   /* a run of records without data: not a timeout */
      if (n < 0)
        return n == -EAGAIN ? -ETIMEDOUT : (int)n;
      p += n;
      len -= (size_t)n;
      continue;
    }
    n = recv(t->fd, p, len, 0);
    if (n == 0)
      return -ECONNRESET;
    if (n < 0) {
      if (errno == EINTR)
        continue;
      return errno == EAGAIN || errno == EWOULDBLOCK ? -ETIMEDOUT : -errno;
    }
    p += n;
    len -= (size_t)n;
  }
  return 0;
}

ssize_t sh_transport_read_ready(struct sh_transport *t, void *buf, size_t len)
{
  ssize_t n;
  if (sh_tls_active(t->tls))
    return 0;
  do
    n = recv(t->fd, buf, len, MSG_DONTWAIT);
  while (n < 0 && errno == EINTR);
  return n < 0 ? 0 : n;
}

int sh_transport_write_full(struct sh_transport *t, const void *buf, size_t len)
{
  const char *p = buf;
  while (len) {
    ssize_t n;
    if (sh_tls_active(t->tls)) {
      n = sh_tls_writev(t->tls, &(struct iovec){ (void *)p, len }, 1);
      if (n < 0)
        return n == -EAGAIN ? -ETIMEDOUT : (int)n;
      p += n;
      len -= (size_t)n;
      continue;
    }
    n = send(t->fd, p, len, MSG_NOSIGNAL);
    if (n < 0) {
      if (errno == EINTR)
        continue;
      return errno == EAGAIN || errno == EWOULDBLOCK ? -ETIMEDOUT : -errno;
    }
    p += n;
    len -= (size_t)n;
  }
  return 0;
}

ssize_t sh_transport_readv(struct sh_transport *t, const struct iovec *iov, int iovcnt)
{
  ssize_t n;
  if (sh_tls_active(t->tls))
    return sh_tls_readv(t->tls, iov, iovcnt);
  do
    n = readv(t->fd, iov, iovcnt);
  while (n < 0 && errno == EINTR);
  return n < 0 ? -errno : n;
}

ssize_t sh_transport_writev(struct sh_transport *t, const struct iovec *iov, int iovcnt)
{
  struct msghdr m = { .msg_iov = (struct iovec *)iov, .msg_iovlen = (size_t)iovcnt };
  ssize_t n;
  if (sh_tls_active(t->tls))
    return sh_tls_writev(t->tls, iov, iovcnt);
  do
    n = sendmsg(t->fd, &m, MSG_NOSIGNAL);
  while (n < 0 && errno == EINTR);
  return n < 0 ? -errno : n;
}

void sh_transport_close(struct sh_transport *t)
{
  if (t->fd >= 0)
    close(t->fd);
  t->fd = -1;
  sh_tls_free(t->tls);
  t->tls = NULL;
}
