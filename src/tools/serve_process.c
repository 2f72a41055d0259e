/* serve_process.c: --fork, --pidfile, --run, --exit-with-parent, -u/-g (see
 * serve_process.h).  Everything here runs before the worker threads start,
 * except the thread that waits for --run's command. */
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include "common/log.h"
#include "common/privs.h"
#include "server/server.h"
#include "tools/cli.h"
#include "tools/serve_process.h"

extern char **environ;

int serve_process_check(struct serve_process *p, bool stdio)
{
  p->ready_fd = -1;
  atomic_store(&p->run_status, -1);
  if (p->fork && p->run)
    return cli_usage_error("serve", "--fork and --run cannot be combined "
                           "(--run waits for its command and exits with its status)");
  if (p->fork && p->exit_with_parent)
    return cli_usage_error("serve", "--fork and --exit-with-parent cannot be combined");
  if (stdio && (p->fork || p->run))
    return cli_usage_error("serve", "--stdio serves the caller's stdin and stdout: no --fork or --run");
  char err[256];
  p->privs = (struct privs){ .user = p->user, .group = p->group };
  if (privs_resolve(&p->privs, err, sizeof err) < 0)
    return cli_usage_error("serve", "%s", err);
  return 0;
}

int serve_process_start(struct serve_process *p)
{
  int fds[2], status;
  char b;
  pid_t pid;

  if (p->exit_with_parent) {
    pid_t parent = getppid();
    /* SIGTERM starts the usual clean shutdown. */
    if (prctl(PR_SET_PDEATHSIG, SIGTERM) < 0) {
      log_msg(LOG_ERROR, NULL, NULL, "--exit-with-parent: prctl: %s", strerror(errno));
      return 1;
    }
    if (getppid() != parent) {
      log_msg(LOG_ERROR, NULL, NULL, "--exit-with-parent: the parent process has already exited");
      return 1;
    }
  }
  if (!p->fork)
    return -1;
  if (pipe2(fds, O_CLOEXEC) < 0 || (pid = fork()) < 0) {
    log_msg(LOG_ERROR, NULL, NULL, "--fork: %s", strerror(errno));
    return 1;
  }
  if (pid == 0) {
    int null = open("/dev/null", O_RDWR | O_CLOEXEC);
    close(fds[0]);
    p->ready_fd = fds[1];
    setsid();
    /* Off the caller's terminal and pipes: a script's $(shunt serve --fork)
     * must not wait for the server's stdout to close.  stderr stays, for
     * the log (--log=syslog sends it elsewhere). */
    if (null >= 0) {
      dup2(null, STDIN_FILENO);
      dup2(null, STDOUT_FILENO);
      close(null);
    }
    return -1;
  }
  close(fds[1]);
  /* One byte: the child listens.  End of file: it exited before that. */
  ssize_t n;
  while ((n = read(fds[0], &b, 1)) < 0 && errno == EINTR)
    ;
  close(fds[0]);
  if (n == 1)
    return 0;
  if (waitpid(pid, &status, 0) < 0 || !WIFEXITED(status) || WEXITSTATUS(status) == 0)
    return 1;
  return WEXITSTATUS(status);
}

static int write_pidfile(struct serve_process *p)
{
  char tmp[4096], line[32];
  int fd, n = snprintf(line, sizeof line, "%d\n", (int)getpid());

  if ((size_t)snprintf(tmp, sizeof tmp, "%s.tmp", p->pidfile) >= sizeof tmp) {
    log_msg(LOG_ERROR, NULL, NULL, "--pidfile %s: path too long", p->pidfile);
    return -1;
  }
  /* Through a temporary file and a rename: a reader never sees it empty. */
  fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0 || write(fd, line, n) != n || close(fd) < 0 || rename(tmp, p->pidfile) < 0) {
    log_msg(LOG_ERROR, NULL, NULL, "--pidfile %s: %s", p->pidfile, strerror(errno));
    if (fd >= 0)
      unlink(tmp);
    return -1;
  }
  p->pidfile_written = true;
  return 0;
}

/* ---- --run ---- */

/* The first listener as a URI, nbdkit's $uri/$port/$unixsocket: a wildcard
 * address becomes the loopback address, a unix socket nbd+unix. */
static int listener_env(struct server *srv, char *uri, size_t urilen, char *port, size_t portlen,
                        char *sock, size_t socklen)
{
  struct sockaddr_storage ss;
  struct sockaddr *sa = (struct sockaddr *)&ss;
  socklen_t sl = sizeof ss;
  char host[NI_MAXHOST];
  const char *scheme = srv->cfg->tls.mode == TLS_MODE_OFF ? "nbd" : "nbds";

  port[0] = sock[0] = '\0';
  if (srv->nlisten == 0 || getsockname(srv->listen_fds[0], sa, &sl) < 0)
    return -1;
  if (sa->sa_family == AF_UNIX) {
    snprintf(sock, socklen, "%s", ((struct sockaddr_un *)sa)->sun_path);
    snprintf(uri, urilen, "%s+unix:///?socket=%s", scheme, sock);
    return 0;
  }
  if (getnameinfo(sa, sl, host, sizeof host, port, portlen, NI_NUMERICHOST | NI_NUMERICSERV) != 0)
    return -1;
  /* Every address: the loopback one of the same family (the port of
   * --listen :0 differs between IPv4 and IPv6, so not "localhost"). */
  if (!strcmp(host, "0.0.0.0"))
    strcpy(host, "127.0.0.1");
  else if (!strcmp(host, "::"))
    strcpy(host, "::1");
  snprintf(uri, urilen, sa->sa_family == AF_INET6 ? "%s://[%s]:%s" : "%s://%s:%s", scheme, host, port);
  return 0;
}

/* environ without uri=, port=, unixsocket=, followed by the new ones. */
static char **run_environment(char *const add[], size_t nadd)
{
  size_t n = 0, k = 0;
  char **env;

  while (environ[n])
    n++;
  if (!(env = calloc(n + nadd + 1, sizeof *env)))
    return NULL;
  for (size_t i = 0; i < n; i++)
    if (strncmp(environ[i], "uri=", 4) && strncmp(environ[i], "port=", 5) &&
        strncmp(environ[i], "unixsocket=", 11))
      env[k++] = environ[i];
  for (size_t i = 0; i < nadd; i++)
    if (add[i])
      env[k++] = add[i];
  return env;
}

struct run_waiter_arg {
  struct serve_process *p;
  struct server *srv;
};

/* Wait for the command; its end ends the server. */
static void *run_wait(void *arg)
{
  struct run_waiter_arg a = *(struct run_waiter_arg *)arg;
  int st = 0, r;

  free(arg);
  while ((r = waitpid(a.p->run_pid, &st, 0)) < 0 && errno == EINTR)
    ;
  atomic_store(&a.p->run_status, r < 0 ? 1 : WIFEXITED(st) ? WEXITSTATUS(st)
                                 : WIFSIGNALED(st) ? 128 + WTERMSIG(st) : 1);
  log_msg(LOG_INFO, NULL, NULL, "--run: the command exited with status %d; stopping",
          atomic_load(&a.p->run_status));
  server_request_stop(a.srv);
  return NULL;
}

static int start_run(struct serve_process *p, struct server *srv)
{
  char uri[4200], port[16], sock[128], e_uri[4300], e_port[32], e_sock[160];
  char *add[3] = { NULL, NULL, NULL }, **env;
  struct run_waiter_arg *wa;
  sigset_t none;
  pid_t pid;

  if (listener_env(srv, uri, sizeof uri, port, sizeof port, sock, sizeof sock) < 0) {
    log_msg(LOG_ERROR, NULL, NULL, "--run: no listening socket to name in $uri");
    return -1;
  }
  snprintf(e_uri, sizeof e_uri, "uri=%s", uri);
  add[0] = e_uri;
  if (port[0]) {
    snprintf(e_port, sizeof e_port, "port=%s", port);
    add[1] = e_port;
  }
  if (sock[0]) {
    snprintf(e_sock, sizeof e_sock, "unixsocket=%s", sock);
    add[2] = e_sock;
  }
  if (!(env = run_environment(add, 3)) || !(wa = malloc(sizeof *wa))) {
    free(env);
    log_msg(LOG_ERROR, NULL, NULL, "--run: out of memory");
    return -1;
  }
  sigemptyset(&none);
  pid = fork();
  if (pid == 0) {
    /* The command gets the signal state a shell would: nothing blocked
     * (the server blocks its signals for signalfd), SIGPIPE default. */
    signal(SIGPIPE, SIG_DFL);
    sigprocmask(SIG_SETMASK, &none, NULL);
    execve("/bin/sh", (char *[]){ "sh", "-c", (char *)p->run, NULL }, env);
    _exit(127);
  }
  free(env);
  if (pid < 0) {
    free(wa);
    log_msg(LOG_ERROR, NULL, NULL, "--run: fork: %s", strerror(errno));
    return -1;
  }
  p->run_pid = pid;
  *wa = (struct run_waiter_arg){ p, srv };
  if ((errno = pthread_create(&p->run_waiter, NULL, run_wait, wa)) != 0) {
    log_msg(LOG_ERROR, NULL, NULL, "--run: cannot start a thread: %s", strerror(errno));
    free(wa);
    kill(pid, SIGTERM);
    waitpid(pid, NULL, 0);
    p->run_pid = 0;
    return -1;
  }
  pthread_detach(p->run_waiter);
  log_msg(LOG_INFO, NULL, NULL, "--run: started the command (pid %d), uri=%s", (int)pid, uri);
  return 0;
}

int serve_process_ready(struct server *srv, void *arg)
{
  struct serve_process *p = arg;

  if (p->pidfile && write_pidfile(p) < 0)
    return -1;
  if (privs_drop(&p->privs) < 0)
    return -1;
  if (p->ready_fd >= 0) {
    if (write(p->ready_fd, "R", 1) != 1)
      log_msg(LOG_WARN, NULL, NULL, "--fork: the parent did not wait: %s", strerror(errno));
    close(p->ready_fd);
    p->ready_fd = -1;
  }
  if (p->run && start_run(p, srv) < 0)
    return -1;
  return 0;
}

int serve_process_finish(struct serve_process *p, int server_status)
{
  int run_status = atomic_load(&p->run_status);

  if (p->pidfile_written && unlink(p->pidfile) < 0)
    log_msg(LOG_WARN, NULL, NULL, "--pidfile %s: cannot remove it: %s", p->pidfile, strerror(errno));
  if (p->run_pid && run_status >= 0)
    return server_status ? server_status : run_status;
  return server_status;
}
