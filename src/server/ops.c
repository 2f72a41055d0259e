/* ops.c: the control socket and the metrics endpoint, on a thread of their
 * own with poll(2) (see ops.h for the bounds and the control protocol). */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "common/json.h"
#include "common/log.h"
#include "common/prom.h"
#include "server/listener.h"
#include "server/metrics.h"
#include "server/ops.h"
#include "server/server.h"

enum ops_kind { OPS_CONTROL, OPS_HTTP };

struct ops_client {
  int fd;                        /* -1: a free slot */
  enum ops_kind kind;
  uint64_t deadline;             /* CLOCK_MONOTONIC ms: closed then, whatever it is doing */
  uint64_t accepted;             /* for evicting the oldest */
  size_t got;                    /* request bytes in req */
  char req[OPS_REQUEST_MAX + 1];
  char *out;                     /* the answer, once the request is complete */
  size_t outlen, sent;
};

struct ops {
  struct server *srv;
  struct listen_set control, metrics;
  int stop_fd;                   /* eventfd: ops_stop */
  pthread_t thread;
  bool started;
  struct ops_client client[OPS_MAX_CLIENTS];
};

static uint64_t now_ms(void)
{
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static void client_close(struct ops_client *c)
{
  if (c->fd >= 0)
    close(c->fd);
  free(c->out);
  c->fd = -1;
  c->out = NULL;
  c->got = c->outlen = c->sent = 0;
}

/* ---- answers ---- */

/* Take a rendered text as c's answer after head (both copied). */
static void answer(struct ops_client *c, const char *head, const char *body, size_t bodylen)
{
  size_t hl = strlen(head);

  c->out = malloc(hl + bodylen + 1);
  if (!c->out) {
    client_close(c);
    return;
  }
  memcpy(c->out, head, hl);
  if (bodylen)
    memcpy(c->out + hl, body, bodylen);
  c->outlen = hl + bodylen;
  c->sent = 0;
}

/* The statistics in format fmt ("json", "prometheus", "text"): a malloc'd
 * text in *text, or NULL (out of memory, or an unknown format: *known). */
static char *render(struct server *srv, const char *fmt, size_t *len, bool *known)
{
  *known = true;
  if (!strcmp(fmt, "prometheus")) {
    struct prom p;
    prom_init(&p);
    metrics_prometheus(srv, &p);
    if (p.error) {
      prom_free(&p);
      return NULL;
    }
    *len = p.len;
    return p.buf ? p.buf : strdup("");
  }
  if (!strcmp(fmt, "json") || !strcmp(fmt, "text")) {
    char *buf = NULL;
    size_t n = 0;
    FILE *f = open_memstream(&buf, &n);
    int r = -ENOMEM;
    if (!f)
      return NULL;
    if (fmt[0] == 'j') {
      struct json j;
      json_init_file(&j, f);
      metrics_json(srv, &j);
      r = json_finish(&j);
    } else {
      r = metrics_text(srv, f);
    }
    if (fclose(f) != 0 || r < 0) {
      free(buf);
      return NULL;
    }
    *len = n;
    return buf;
  }
  *known = false;
  return NULL;
}

/* May this control client ask?  With a private socket mode, only root and
 * the server's own user. */
static bool control_peer_ok(const struct ops *o, int fd)
{
  struct ucred cred;
  socklen_t len = sizeof cred;

  if (o->srv->cfg->control_mode & 077)
    return true;   /* the file's mode lets a group or others in: that is the rule */
  if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) < 0)
    return false;
  return cred.uid == 0 || cred.uid == geteuid();
}

static void control_request(struct ops *o, struct ops_client *c)
{
  char *line = c->req, *nl = strchr(line, '\n');
  size_t len = 0;
  bool known;

  *nl = '\0';
  if (nl > line && nl[-1] == '\r')
    nl[-1] = '\0';
  if (!control_peer_ok(o, c->fd)) {
    log_msg(LOG_WARN, NULL, NULL, "--control: a client that is neither root nor the server's user refused");
    answer(c, "error: permission denied\n", NULL, 0);
    return;
  }
  if (strncmp(line, "stats ", 6) != 0) {
    answer(c, "error: unknown request (expected: stats json|prometheus|text)\n", NULL, 0);
    return;
  }
  char *text = render(o->srv, line + 6, &len, &known);
  if (!text)
    answer(c, known ? "error: out of memory\n" : "error: unknown format (expected: json, prometheus, text)\n",
           NULL, 0);
  else
    answer(c, "ok\n", text, len);
  free(text);
}

/* An HTTP answer without body. */
static void http_status(struct ops_client *c, const char *status, const char *extra)
{
  char head[512];
  snprintf(head, sizeof head, "HTTP/1.1 %s\r\nContent-Type: text/plain; charset=utf-8\r\n%s"
           "Content-Length: 0\r\nConnection: close\r\n\r\n", status, extra ? extra : "");
  answer(c, head, NULL, 0);
}

/* "METHOD TARGET HTTP/1.x" is all that is read of the request; its headers
 * are only counted against OPS_REQUEST_MAX. */
static void http_request(struct ops *o, struct ops_client *c)
{
  char method[16], target[256], version[16], head[256];
  size_t len = 0;
  bool known;

  if (sscanf(c->req, "%15s %255s %15s", method, target, version) != 3 || strncmp(version, "HTTP/1.", 7)) {
    http_status(c, "400 Bad Request", NULL);
    return;
  }
  bool head_only = !strcmp(method, "HEAD");
  if (strcmp(method, "GET") && !head_only) {
    http_status(c, "405 Method Not Allowed", "Allow: GET, HEAD\r\n");
    return;
  }
  if (strcmp(target, "/metrics") && strncmp(target, "/metrics?", 9)) {
    http_status(c, "404 Not Found", NULL);
    return;
  }
  char *text = render(o->srv, "prometheus", &len, &known);
  if (!text) {
    http_status(c, "503 Service Unavailable", NULL);
    return;
  }
  snprintf(head, sizeof head, "HTTP/1.1 200 OK\r\nContent-Type: text/plain; version=0.0.4; charset=utf-8\r\n"
           "Content-Length: %zu\r\nConnection: close\r\n\r\n", len);
  answer(c, head, text, head_only ? 0 : len);
  free(text);
}

/* ---- the loop ---- */

/* Read what c sent; answer once its request is complete. */
static void client_read(struct ops *o, struct ops_client *c)
{
  ssize_t n = recv(c->fd, c->req + c->got, OPS_REQUEST_MAX - c->got, MSG_DONTWAIT);

  if (n < 0 && (errno == EAGAIN || errno == EINTR))
    return;
  if (n <= 0) {
    client_close(c);   /* gone before asking anything complete */
    return;
  }
  c->got += (size_t)n;
  c->req[c->got] = '\0';
  if (memchr(c->req, '\0', c->got)) {
    client_close(c);   /* not text */
    return;
  }
  if (c->kind == OPS_CONTROL) {
    if (strchr(c->req, '\n'))
      control_request(o, c);
    else if (c->got == OPS_REQUEST_MAX)
      client_close(c);
  } else if (strstr(c->req, "\r\n\r\n") || strstr(c->req, "\n\n")) {
    http_request(o, c);
  } else if (c->got == OPS_REQUEST_MAX) {
    http_status(c, "431 Request Header Fields Too Large", NULL);
  }
}

/* Send what is left of c's answer; close when it is all out. */
static void client_write(struct ops_client *c)
{
  while (c->sent < c->outlen) {
    ssize_t n = send(c->fd, c->out + c->sent, c->outlen - c->sent, MSG_DONTWAIT | MSG_NOSIGNAL);
    if (n < 0 && errno == EINTR)
      continue;
    if (n < 0 && errno == EAGAIN)
      return;
    if (n <= 0) {
      client_close(c);
      return;
    }
    c->sent += (size_t)n;
  }
  /* Closing with unread input resets the connection, and a reset may drop
   * the answer before the client reads it: take what already arrived (a
   * bounded amount, without waiting) after the FIN. */
  shutdown(c->fd, SHUT_WR);
  char sink[4096];
  for (int i = 0; i < 16 && recv(c->fd, sink, sizeof sink, MSG_DONTWAIT) > 0; i++)
    ;
  client_close(c);
}

/* Take a new client from listening socket fd into a free slot, or into the
 * oldest client's (which is closed). */
static void client_accept(struct ops *o, int fd, enum ops_kind kind, uint64_t now)
{
  struct ops_client *c = NULL, *oldest = NULL;
  int cfd = accept4(fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);

  if (cfd < 0)
    return;
  for (int i = 0; i < OPS_MAX_CLIENTS && !c; i++) {
    if (o->client[i].fd < 0)
      c = &o->client[i];
    else if (!oldest || o->client[i].accepted < oldest->accepted)
      oldest = &o->client[i];
  }
  if (!c) {
    c = oldest;
    client_close(c);
  }
  c->fd = cfd;
  c->kind = kind;
  c->accepted = now;
  c->deadline = now + OPS_DEADLINE_MS;
}

struct ops_listener {
  int fd;
  enum ops_kind kind;
};

static void *ops_thread(void *arg)
{
  struct ops *o = arg;
  size_t nlis = o->control.n + o->metrics.n, k = 0;
  struct ops_listener *lis = calloc(nlis, sizeof *lis);
  struct pollfd *pfd = calloc(1 + nlis + OPS_MAX_CLIENTS, sizeof *pfd);

  if (!lis || !pfd) {
    log_msg(LOG_ERROR, NULL, NULL, "control and metrics endpoints: out of memory; not serving");
    free(lis);
    free(pfd);
    return NULL;
  }
  for (size_t i = 0; i < o->control.n; i++)
    lis[k++] = (struct ops_listener){ o->control.fds[i], OPS_CONTROL };
  for (size_t i = 0; i < o->metrics.n; i++)
    lis[k++] = (struct ops_listener){ o->metrics.fds[i], OPS_HTTP };
  for (;;) {
    uint64_t now = now_ms();
    int timeout = -1;
    size_t n = 0;

    pfd[n++] = (struct pollfd){ .fd = o->stop_fd, .events = POLLIN };
    for (size_t i = 0; i < nlis; i++)
      pfd[n++] = (struct pollfd){ .fd = lis[i].fd, .events = POLLIN };
    for (int i = 0; i < OPS_MAX_CLIENTS; i++) {
      struct ops_client *c = &o->client[i];
      if (c->fd >= 0 && now >= c->deadline)
        client_close(c);   /* too slow, reading or writing */
      pfd[n++] = (struct pollfd){ .fd = c->fd, .events = c->out ? POLLOUT : POLLIN };
      if (c->fd >= 0) {
        int left = (int)(c->deadline - now);
        if (timeout < 0 || left < timeout)
          timeout = left;
      }
    }
    if (poll(pfd, n, timeout) < 0) {
      if (errno == EINTR)
        continue;
      log_msg(LOG_ERROR, NULL, NULL, "control and metrics endpoints: poll: %s", strerror(errno));
      break;
    }
    if (pfd[0].revents)
      break;
    now = now_ms();
    for (int i = 0; i < OPS_MAX_CLIENTS; i++) {
      struct ops_client *c = &o->client[i];
      short ev = pfd[1 + nlis + (size_t)i].revents;
      if (c->fd < 0 || !ev)
        continue;
      if (c->out)
        client_write(c);
      else
        client_read(o, c);
      if (c->fd >= 0 && c->out && c->sent == 0)
        client_write(c);   /* a fresh answer: most go out at once */
    }
    for (size_t i = 0; i < nlis; i++)
      if (pfd[1 + i].revents & POLLIN)
        client_accept(o, lis[i].fd, lis[i].kind, now);
  }
  free(lis);
  free(pfd);
  return NULL;
}

static void ops_free(struct ops *o)
{
  for (int i = 0; i < OPS_MAX_CLIENTS; i++)
    client_close(&o->client[i]);
  listener_close_all(&o->control);   /* removes the socket file */
  listener_close_all(&o->metrics);
  if (o->stop_fd >= 0)
    close(o->stop_fd);
  free(o);
}

/* Listening sockets must not block an accept whose client already left. */
static void set_nonblock(const struct listen_set *set)
{
  for (size_t i = 0; i < set->n; i++)
    fcntl(set->fds[i], F_SETFL, fcntl(set->fds[i], F_GETFL) | O_NONBLOCK);
}

int ops_start(struct server *srv, struct ops **out, char *err, size_t errlen)
{
  const struct server_config *cfg = srv->cfg;
  struct ops *o;
  int r;

  *out = NULL;
  if (!cfg->control_path && !cfg->metrics_listen)
    return 0;
  if (!(o = calloc(1, sizeof *o))) {
    snprintf(err, errlen, "out of memory");
    return -ENOMEM;
  }
  o->srv = srv;
  o->stop_fd = eventfd(0, EFD_CLOEXEC);
  for (int i = 0; i < OPS_MAX_CLIENTS; i++)
    o->client[i].fd = -1;
  if (o->stop_fd < 0) {
    r = -errno;
    snprintf(err, errlen, "eventfd: %s", strerror(errno));
    goto fail;
  }
  if (cfg->control_path
      && (r = listener_open_unix_as(&o->control, cfg->control_path, "--control", cfg->control_mode, err, errlen)) < 0)
    goto fail;
  if (cfg->metrics_listen
      && (r = listener_open_tcp_as(&o->metrics, cfg->metrics_listen, "--metrics", err, errlen)) < 0)
    goto fail;
  set_nonblock(&o->control);
  set_nonblock(&o->metrics);
  if ((r = -pthread_create(&o->thread, NULL, ops_thread, o)) < 0) {
    snprintf(err, errlen, "cannot start the control and metrics thread: %s", strerror(-r));
    goto fail;
  }
  o->started = true;
  *out = o;
  return 0;
fail:
  ops_free(o);
  return r;
}

void ops_stop(struct ops *o)
{
  uint64_t one = 1;

  if (!o)
    return;
  if (o->started) {
    if (write(o->stop_fd, &one, sizeof one) < 0)
      log_msg(LOG_ERROR, NULL, NULL, "control and metrics endpoints: cannot stop: %s", strerror(errno));
    else
      pthread_join(o->thread, NULL);
  }
  ops_free(o);
}
