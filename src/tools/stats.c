/* stats.c: `shunt stats`, the statistics of a running server, asked over its
 * control socket (`shunt serve --control PATH`; protocol: src/server/ops.h). */
#include <errno.h>
#include <getopt.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "common/log.h"
#include "tools/cli.h"
#include "tools/commands.h"

static void stats_usage(FILE *f)
{
  fprintf(f,
"usage: shunt stats --control PATH [--json | --prometheus]\n"
"\n"
"Show the statistics of a running `shunt serve --control PATH`: connections,\n"
"and per export and command the requests, bytes, errors and latency\n"
"percentiles (p50, p99, p99.9).  The control socket is private to the\n"
"server's user (root for a system service) unless --control-mode says\n"
"otherwise.  The metrics are listed in docs/metrics.md.\n"
"\n"
"Options:\n"
"      --control PATH   the server's control socket\n"
"      --json           everything, as the --stats FILE JSON\n"
"      --prometheus     everything, in the Prometheus text format (as GET /metrics)\n"
"  -V, --version        print the version\n"
"  -h, --help           this text\n");
}

/* Ask the server at path for the statistics in format fmt and copy them to
 * stdout.  Returns the exit status. */
static int ask(const char *path, const char *fmt)
{
  struct sockaddr_un sun = { .sun_family = AF_UNIX };
  char req[64], buf[65536];
  size_t head = 0;
  char line[256];
  int fd;

  if (strlen(path) >= sizeof sun.sun_path) {
    return cli_usage_error("stats", "--control '%s': path too long", path);
  }
  strcpy(sun.sun_path, path);
  fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0 || connect(fd, (struct sockaddr *)&sun, sizeof sun) < 0) {
    int e = errno;
    log_msg(LOG_ERROR, NULL, NULL, "--control '%s': %s%s", path, strerror(e),
            e == EACCES ? " (the control socket belongs to the server's user)"
                        : e == ENOENT || e == ECONNREFUSED ? " (is `shunt serve --control` running?)" : "");
    if (fd >= 0)
      close(fd);
    return 1;
  }
  snprintf(req, sizeof req, "stats %s\n", fmt);
  if (send(fd, req, strlen(req), MSG_NOSIGNAL) != (ssize_t)strlen(req)) {
    log_msg(LOG_ERROR, NULL, NULL, "--control '%s': send: %s", path, strerror(errno));
    close(fd);
    return 1;
  }
  /* "ok\n" then the text, or "error: MESSAGE\n". */
  for (;;) {
    ssize_t n = recv(fd, buf, sizeof buf, 0);
    if (n < 0 && errno == EINTR)
      continue;
    if (n < 0) {
      log_msg(LOG_ERROR, NULL, NULL, "--control '%s': receive: %s", path, strerror(errno));
      close(fd);
      return 1;
    }
    size_t off = 0;
    while (head < sizeof line - 1 && off < (size_t)n && (head == 0 || line[head - 1] != '\n'))
      line[head++] = buf[off++];
    line[head] = '\0';
    bool done_head = head > 0 && line[head - 1] == '\n';
    if (n == 0 && !done_head) {
      log_msg(LOG_ERROR, NULL, NULL, "--control '%s': the server closed without answering", path);
      close(fd);
      return 1;
    }
    if (done_head && strcmp(line, "ok\n") != 0) {
      const char *msg = strncmp(line, "error: ", 7) ? line : line + 7;
      log_msg(LOG_ERROR, NULL, NULL, "%.*s", (int)strcspn(msg, "\n"), msg);
      close(fd);
      return 1;
    }
    if (n == 0)
      break;
    if (off < (size_t)n && fwrite(buf + off, 1, (size_t)n - off, stdout) != (size_t)n - off) {
      close(fd);
      return 1;
    }
  }
  close(fd);
  return fflush(stdout) == 0 ? 0 : 1;
}

int cmd_stats(int argc, char **argv)
{
  enum { OPT_CONTROL = 1000, OPT_JSON, OPT_PROMETHEUS };
  static const struct option opts[] = {
    { "control", required_argument, NULL, OPT_CONTROL },
    { "json", no_argument, NULL, OPT_JSON },
    { "prometheus", no_argument, NULL, OPT_PROMETHEUS },
    { "version", no_argument, NULL, 'V' },
    { "help", no_argument, NULL, 'h' },
    { NULL, 0, NULL, 0 },
  };
  const char *path = NULL, *fmt = "text";
  int c;

  optind = 1;
  while ((c = cli_getopt(argc, argv, "Vh", opts)) != -1) {
    switch (c) {
    case OPT_CONTROL:
      path = optarg;
      break;
    case OPT_JSON:
      fmt = "json";
      break;
    case OPT_PROMETHEUS:
      fmt = "prometheus";
      break;
    case 'V':
      return cli_version();
    case 'h':
      stats_usage(stdout);
      return 0;
    default:
      return 2;
    }
  }
  if (!path)
    return cli_usage_error("stats", "--control PATH is required");
  if (optind < argc)
    return cli_usage_error("stats", "unexpected argument '%s'", argv[optind]);
  return ask(path, fmt);
}
