/* command.c: shunt_connect_command(): start an NBD server that speaks on its
 * stdin/stdout (e.g. nbdkit -s) and negotiate with it over a socketpair; the
 * process is waited for when the handle disconnects. */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "client/client.h"

/* In the child: stdin and stdout become the socket, then exec.  Only
 * async-signal-safe calls between fork and exec; an exec failure's errno goes
 * back through the close-on-exec pipe errfd. */
static void run_child(int sock, int errfd, char *const argv[])
{
  sigset_t none;
  sigemptyset(&none);
  sigprocmask(SIG_SETMASK, &none, NULL);
  if (dup2(sock, 0) < 0 || dup2(sock, 1) < 0)
    goto fail;
  if (sock > 1)
    close(sock);
  execvp(argv[0], argv);
fail:;
  int e = errno;
  ssize_t w = write(errfd, &e, sizeof e);
  (void)w;
  _exit(127);
}

int shunt_connect_command(struct shunt_handle *h, char *const argv[])
{
  char msg[512];
  int sv[2], ep[2], e;
  if (!argv || !argv[0]) {
    sh_set_error(h, "shunt_connect_command: empty command");
    return -EINVAL;
  }
  if (h->connected) {
    sh_set_error(h, "the handle is already connected");
    return -EISCONN;
  }
  if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0)
    goto sys_fail;
  if (pipe2(ep, O_CLOEXEC) < 0) {
    close(sv[0]);
    close(sv[1]);
    goto sys_fail;
  }
  pid_t pid = fork();
  if (pid == 0)
    run_child(sv[1], ep[1], argv);
  e = errno;
  close(sv[1]);
  close(ep[1]);
  if (pid < 0) {
    close(sv[0]);
    close(ep[0]);
    errno = e;
    goto sys_fail;
  }
  /* EOF at once when exec succeeded (the pipe closes on exec). */
  int child_err = 0;
  ssize_t n;
  do
    n = read(ep[0], &child_err, sizeof child_err);
  while (n < 0 && errno == EINTR);
  close(ep[0]);
  h->child = pid;
  if (n == (ssize_t)sizeof child_err) {
    close(sv[0]);
    sh_wait_child(h);
    snprintf(msg, sizeof msg, "%s: cannot run it: %s", argv[0], strerror(child_err));
    sh_set_error(h, msg);
    return -child_err;
  }
  char what[256];
  snprintf(what, sizeof what, "command %s", argv[0]);
  int r = sh_connect_fd(h, sv[0], what);
  if (r < 0)
    sh_wait_child(h); /* the socket is closed: the server ends */
  return r;
sys_fail:
  e = errno;
  snprintf(msg, sizeof msg, "%s: %s", argv[0], strerror(e));
  sh_set_error(h, msg);
  return -e;
}

void sh_wait_child(struct shunt_handle *h)
{
  if (h->child <= 0)
    return;
  while (waitpid(h->child, NULL, 0) < 0 && errno == EINTR)
    ;
  h->child = 0;
}

