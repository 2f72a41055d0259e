/* test_sdnotify.c: the readiness datagram (src/server/sdnotify.c) reaches a
 * socket named by NOTIFY_SOCKET, as a path or an abstract name, and an
 * unset or unusable NOTIFY_SOCKET is handled without a crash. */
#include <errno.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "server/sdnotify.h"
#include "tap.h"

/* A datagram socket bound at name (a path, or '@' + an abstract name). */
static int bind_dgram(const char *name)
{
  struct sockaddr_un sun = { .sun_family = AF_UNIX };
  size_t len = strlen(name);
  int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);

  memcpy(sun.sun_path, name, len);
  if (name[0] == '@')
    sun.sun_path[0] = '\0';
  if (fd < 0 || bind(fd, (struct sockaddr *)&sun,
                     (socklen_t)(offsetof(struct sockaddr_un, sun_path) + len + (name[0] != '@'))) < 0)
    return -1;
  return fd;
}

static const char *received(int fd)
{
  static char buf[256];
  ssize_t n = recv(fd, buf, sizeof buf - 1, MSG_DONTWAIT);
  buf[n > 0 ? n : 0] = '\0';
  return buf;
}

int main(void)
{
  char path[] = "/tmp/test_sdnotify.XXXXXX", sock[64], abstract[64];
  int fd;

  unsetenv("NOTIFY_SOCKET");
  ok(sdnotify_send("READY=1") == 0, "no NOTIFY_SOCKET: nothing to do");

  if (!mkdtemp(path))
    return 1;
  snprintf(sock, sizeof sock, "%s/notify", path);
  fd = bind_dgram(sock);
  ok(fd >= 0, "stand-in socket at a path");
  setenv("NOTIFY_SOCKET", sock, 1);
  ok(sdnotify_send("READY=1") == 0, "sent to a path");
  ok(!strcmp(received(fd), "READY=1"), "received READY=1");
  ok(sdnotify_send("STOPPING=1") == 0 && !strcmp(received(fd), "STOPPING=1"), "received STOPPING=1");
  close(fd);
  unlink(sock);
  rmdir(path);

  snprintf(abstract, sizeof abstract, "@shunt-test-sdnotify-%d", (int)getpid());
  fd = bind_dgram(abstract);
  ok(fd >= 0, "stand-in socket with an abstract name");
  setenv("NOTIFY_SOCKET", abstract, 1);
  ok(sdnotify_send("READY=1") == 0 && !strcmp(received(fd), "READY=1"), "sent to an abstract name");
  close(fd);

  setenv("NOTIFY_SOCKET", "relative/path", 1);
  ok(sdnotify_send("READY=1") == -EINVAL, "a relative path is refused");
  setenv("NOTIFY_SOCKET", "/nonexistent/notify", 1);
  ok(sdnotify_send("READY=1") < 0, "nobody listening: an error to log, not a crash");
  return tap_done();
}
