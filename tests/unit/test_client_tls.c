/* test_client_tls.c: libshunt over nbds+unix:// against a small NBD server
 * with GnuTLS in a thread (PSK, TLS 1.3), which sends records that carry no
 * application data exactly where the client waits for a reply: the
 * NewSessionTickets a GnuTLS server with a ticket key sends right after the
 * handshake (while the client reads its first option reply, on a blocking
 * socket), a ticket in the middle of the transmission phase, and KeyUpdates
 * (with and without asking the client to update its own key) right before
 * option replies and request replies.  GnuTLS answers "again" after such a
 * record even when the reply follows it: the client must connect and read
 * every reply byte for byte, answer a requested KeyUpdate before its next
 * request, and never wait for input the server will not send (the whole
 * test runs under an alarm: a stall fails it instead of hanging).  Last, the
 * server hangs up between two requests: the next write fails at once, and
 * its send to the closed socket raises no SIGPIPE. */
#include <endian.h>
#include <errno.h>
#include <gnutls/gnutls.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include "proto/nbd-protocol.h"
#include "shunt/shunt.h"
#include "fd_exact.h"
#include "shunt_test.h"
#include "tap.h"

#define KEY_HEX "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff"
#define DISK (256u * 1024)
#define MAXEV 8
#define ALARM_S 60

/* What the server sends right before a reply. */
enum ev { EV_NONE, EV_TICKET, EV_KU, EV_KU_PEER };
/* Session tickets: none, 2 right after the handshake (GnuTLS's default with
 * a ticket key), or only those of EV_TICKET. */
enum tickets { TK_NONE, TK_AUTO, TK_ON_DEMAND };

struct srv {
  const char *name;
  enum tickets tickets;
  bool hangup;               /* close the connection after the first reply,
                                once told to (hang_now) */
  _Atomic bool hang_now;
  enum ev first_ev, go_ev;   /* before the reply to the first option after
                                STARTTLS (refused), and before GO's replies */
  enum ev req_ev[MAXEV];     /* before the reply to the i-th request */
  /* set up by start() */
  int lfd;
  char sock[108], keys[108];
  pthread_t th;
  unsigned char disk[DISK];
  /* what the server saw */
  _Atomic bool closed;       /* the server closed the connection */
  bool tls13, served_all;
  unsigned tickets_sent, ku_sent, ku_got, requests;
  char why[160];
};

static int hook(gnutls_session_t s, unsigned htype, unsigned when, unsigned incoming,
                const gnutls_datum_t *msg)
{
  struct srv *v = gnutls_session_get_ptr(s);
  (void)when;
  (void)msg;
  if (htype == GNUTLS_HANDSHAKE_NEW_SESSION_TICKET && !incoming)
    v->tickets_sent++;
  if (htype == GNUTLS_HANDSHAKE_KEY_UPDATE)
    incoming ? v->ku_got++ : v->ku_sent++;
  return 0;
}

static int psk_key(gnutls_session_t s, const char *user, gnutls_datum_t *key)
{
  gnutls_datum_t hex = { (unsigned char *)KEY_HEX, sizeof KEY_HEX - 1 };
  (void)s;
  if (strcmp(user, "alice"))
    return -1;
  return gnutls_hex_decode2(&hex, key) < 0 ? -1 : 0;
}

/* Exact reads and writes over TLS (a blocking socket: "again" only follows a
 * record without application data, such as the client's KeyUpdate). */
static int tls_xfer(gnutls_session_t s, char *p, size_t n, bool send)
{
  while (n) {
    ssize_t r = send ? gnutls_record_send(s, p, n) : gnutls_record_recv(s, p, n);
    if (r == GNUTLS_E_AGAIN || r == GNUTLS_E_INTERRUPTED)
      continue;
    if (r <= 0)
      return -1;
    p += r;
    n -= (size_t)r;
  }
  return 0;
}

static int tls_rd(gnutls_session_t s, void *b, size_t n) { return tls_xfer(s, b, n, false); }

static int tls_wr(gnutls_session_t s, const void *b, size_t n) { return tls_xfer(s, (char *)b, n, true); }

static void event(struct srv *v, gnutls_session_t s, enum ev e)
{
  int r = 0;
  if (e == EV_TICKET)
    r = gnutls_session_ticket_send(s, 1, 0);
  else if (e == EV_KU || e == EV_KU_PEER)
    r = gnutls_session_key_update(s, e == EV_KU_PEER ? GNUTLS_KU_PEER : 0);
  if (r < 0)
    snprintf(v->why, sizeof v->why, "sending a post-handshake message: %s", gnutls_strerror(r));
}

static void opt_reply(gnutls_session_t s, uint32_t opt, uint32_t type, const void *d, uint32_t len)
{
  struct nbd_fixed_new_option_reply r = { htobe64(NBD_REP_MAGIC), htobe32(opt), htobe32(type),
                                          htobe32(len) };
  tls_wr(s, &r, sizeof r);
  if (len)
    tls_wr(s, d, len);
}

/* The options after STARTTLS: everything but GO is refused (simple replies). */
static int options(struct srv *v, gnutls_session_t s)
{
  for (unsigned i = 0;; i++) {
    struct nbd_option o;
    unsigned char data[4096];
    if (tls_rd(s, &o, sizeof o))
      return -1;
    uint32_t opt = be32toh(o.option), len = be32toh(o.optlen);
    if (len > sizeof data || tls_rd(s, data, len))
      return -1;
    if (opt != NBD_OPT_GO) {
      event(v, s, i == 0 ? v->first_ev : EV_NONE);
      opt_reply(s, opt, NBD_REP_ERR_UNSUP, NULL, 0);
      continue;
    }
    event(v, s, v->go_ev);
    struct nbd_info_export ie = { htobe16(NBD_INFO_EXPORT), htobe64(DISK),
                                  htobe16(NBD_FLAG_HAS_FLAGS | NBD_FLAG_SEND_FLUSH) };
    opt_reply(s, opt, NBD_REP_INFO, &ie, sizeof ie);
    opt_reply(s, opt, NBD_REP_ACK, NULL, 0);
    return 0;
  }
}

/* Requests one at a time, each answered with a simple reply. */
static void requests(struct srv *v, gnutls_session_t s)
{
  static unsigned char buf[sizeof(struct nbd_simple_reply) + DISK];
  for (;;) {
    struct nbd_request q;
    if (tls_rd(s, &q, sizeof q))
      return;
    uint16_t type = be16toh(q.type);
    uint64_t off = be64toh(q.offset);
    uint32_t len = be32toh(q.count), err = 0;
    if (type == NBD_CMD_DISC) {
      v->served_all = true;
      return;
    }
    if (off > DISK || len > DISK - off)
      return;
    if (type == NBD_CMD_WRITE) {
      if (tls_rd(s, buf, len))
        return;
      memcpy(v->disk + off, buf, len);
    } else if (type != NBD_CMD_READ && type != NBD_CMD_FLUSH) {
      err = htobe32(EINVAL);
    }
    event(v, s, v->requests < MAXEV ? v->req_ev[v->requests] : EV_NONE);
    v->requests++;
    struct nbd_simple_reply sp = { htobe32(NBD_SIMPLE_REPLY_MAGIC), err, q.cookie };
    if (type == NBD_CMD_READ && !err) {
      /* Header and payload in one write: the payload's records follow the
       * header's at once, as a server sends them. */
      memcpy(buf, &sp, sizeof sp);
      memcpy(buf + sizeof sp, v->disk + off, len);
      tls_wr(s, buf, sizeof sp + len);
    } else {
      tls_wr(s, &sp, sizeof sp);
    }
    if (v->hangup) {
      while (!v->hang_now)
        usleep(1000);
      return;
    }
  }
}

static void session(struct srv *v, int fd)
{
  struct nbd_new_handshake hs = { htobe64(NBD_MAGIC), htobe64(NBD_NEW_VERSION),
                                  htobe16(NBD_FLAG_FIXED_NEWSTYLE | NBD_FLAG_NO_ZEROES) };
  struct nbd_option o;
  uint32_t cflags;
  unsigned char od[256];
  gnutls_psk_server_credentials_t cred;
  gnutls_datum_t tkey = { NULL, 0 };
  gnutls_session_t s;
  int r;

  if (write(fd, &hs, sizeof hs) != sizeof hs || fd_read_exact(fd, &cflags, 4) || fd_read_exact(fd, &o, sizeof o)
      || be32toh(o.optlen) > sizeof od || fd_read_exact(fd, od, be32toh(o.optlen))
      || be32toh(o.option) != NBD_OPT_STARTTLS) {
    snprintf(v->why, sizeof v->why, "no STARTTLS from the client");
    return;
  }
  struct nbd_fixed_new_option_reply ack = { htobe64(NBD_REP_MAGIC), o.option, htobe32(NBD_REP_ACK), 0 };
  if (write(fd, &ack, sizeof ack) != sizeof ack)
    return;
  gnutls_psk_allocate_server_credentials(&cred);
  gnutls_psk_set_server_credentials_function(cred, psk_key);
  gnutls_init(&s, GNUTLS_SERVER | GNUTLS_NO_SIGNAL
                     | (v->tickets == TK_ON_DEMAND ? GNUTLS_NO_AUTO_SEND_TICKET : 0));
  gnutls_session_set_ptr(s, v);
  gnutls_priority_set_direct(s, "NORMAL:+ECDHE-PSK:+DHE-PSK:+PSK", NULL);
  gnutls_credentials_set(s, GNUTLS_CRD_PSK, cred);
  if (v->tickets != TK_NONE) {
    gnutls_session_ticket_key_generate(&tkey);
    gnutls_session_ticket_enable_server(s, &tkey);
  }
  gnutls_handshake_set_hook_function(s, GNUTLS_HANDSHAKE_ANY, GNUTLS_HOOK_POST, hook);
  gnutls_transport_set_int(s, fd);
  do
    r = gnutls_handshake(s);
  while (r < 0 && !gnutls_error_is_fatal(r));
  if (r < 0) {
    snprintf(v->why, sizeof v->why, "TLS handshake: %s", gnutls_strerror(r));
  } else {
    v->tls13 = gnutls_protocol_get_version(s) == GNUTLS_TLS1_3;
    if (options(v, s) == 0)
      requests(v, s);
  }
  gnutls_deinit(s);
  gnutls_psk_free_server_credentials(cred);
  gnutls_free(tkey.data);
}

static void *serve(void *arg)
{
  struct srv *v = arg;
  int fd = accept(v->lfd, NULL, NULL);
  if (fd < 0)
    return NULL;
  session(v, fd);
  close(fd);
  v->closed = true;
  return NULL;
}

static void start(struct srv *v)
{
  static int seq;
  struct sockaddr_un sun = { .sun_family = AF_UNIX };
  snprintf(v->sock, sizeof v->sock, "/tmp/shunt-clitls-%d-%d.sock", getpid(), seq);
  snprintf(v->keys, sizeof v->keys, "/tmp/shunt-clitls-%d-%d.psk", getpid(), seq++);
  FILE *f = fopen(v->keys, "w");
  if (!f || fprintf(f, "alice:%s\n", KEY_HEX) < 0 || fclose(f))
    abort();
  unlink(v->sock);
  strcpy(sun.sun_path, v->sock);
  v->lfd = socket(AF_UNIX, SOCK_STREAM, 0);
  if (bind(v->lfd, (struct sockaddr *)&sun, sizeof sun) || listen(v->lfd, 1))
    abort();
  for (size_t i = 0; i < DISK; i++)
    v->disk[i] = (unsigned char)(i * 7 + i / 4096);
  pthread_create(&v->th, NULL, serve, v);
}

static void stop(struct srv *v)
{
  shutdown(v->lfd, SHUT_RDWR);
  close(v->lfd);
  pthread_join(v->th, NULL);
  unlink(v->sock);
  unlink(v->keys);
}

static bool read_back(struct shunt_handle *h, const struct srv *v, uint64_t off, size_t len)
{
  unsigned char *b = malloc(len);
  bool same = shunt_pread(h, b, len, off, 0) == 0 && memcmp(b, v->disk + off, len) == 0;
  free(b);
  return same;
}

static bool done_flag;
static void on_done(const struct shunt_result *r)
{
  *(int *)r->user = r->error;
  done_flag = true;
}

/* An asynchronous read completed through shunt_poll (the library's own poll
 * loop), within a generous bound on poll rounds that each wait up to 10 s. */
static bool aio_read(struct shunt_handle *h, const struct srv *v, uint64_t off, size_t len)
{
  unsigned char *b = malloc(len);
  struct iovec iov = { b, len };
  int err = -1;
  done_flag = false;
  bool ok = shunt_aio_pread(h, &iov, 1, off, 0, on_done, &err) >= 0;
  for (int i = 0; ok && !done_flag && i < 20; i++)
    if (shunt_poll(h, 10000) < 0)
      ok = false;
  ok = ok && done_flag && err == 0 && memcmp(b, v->disk + off, len) == 0;
  free(b);
  return ok;
}

/* Connect, write, read back (sync and async), flush; the server's events
 * fall where its configuration puts them. */
static void run(struct srv *v, unsigned want_tickets, unsigned want_ku, unsigned want_ku_back)
{
  char uri[512], err[512];
  struct shunt_handle *h;
  struct test_opts o = { .connections = 1, .timeout_ms = 20000 };
  unsigned char w[8192];

  start(v);
  snprintf(uri, sizeof uri, "nbds+unix:///?socket=%s&tls-psk-file=%s&tls-username=alice", v->sock,
           v->keys);
  int r = test_connect(&h, uri, &o, err, sizeof err);
  ok(r == 0, "%s: connected over TLS", v->name);
  if (r < 0)
    printf("# %s\n", err);
  if (r == 0) {
    ok(read_back(h, v, 0, 4096), "%s: first read, 4 KiB", v->name);
    ok(read_back(h, v, 4096, 65536), "%s: second read, 64 KiB (several records)", v->name);
    for (size_t i = 0; i < sizeof w; i++)
      w[i] = (unsigned char)(i ^ 0x5a);
    ok(shunt_pwrite(h, w, sizeof w, 8192, 0) == 0, "%s: write of 8 KiB", v->name);
    ok(aio_read(h, v, 8192, sizeof w) && memcmp(v->disk + 8192, w, sizeof w) == 0,
       "%s: the write read back (asynchronous read, shunt_poll)", v->name);
    ok(shunt_flush(h) == 0, "%s: flush", v->name);
    ok(read_back(h, v, 100000, 100000), "%s: a read after the flush, 100000 bytes", v->name);
    shunt_close(h);
  }
  stop(v);
  if (v->why[0])
    printf("# server: %s\n", v->why);
  ok(v->tls13, "%s: TLS 1.3 negotiated", v->name);
  ok(v->served_all && v->requests == 6, "%s: the server answered all 6 requests (%u), then the disconnect",
     v->name, v->requests);
  ok(v->tickets_sent == want_tickets, "%s: the server sent %u session tickets (%u)", v->name,
     want_tickets, v->tickets_sent);
  ok(v->ku_sent == want_ku, "%s: the server sent %u KeyUpdates (%u)", v->name, want_ku, v->ku_sent);
  ok(v->ku_got == want_ku_back, "%s: the client sent %u KeyUpdates (%u)", v->name, want_ku_back,
     v->ku_got);
}

/* The server hangs up after its first reply; the client's next request, a
 * write, meets the closed socket on its first send: the write fails at once
 * (no wait for a reply that cannot come) and the process lives on (no
 * SIGPIPE).  In a child, so that a signal shows as this check failing. */
static void hangup_then_write(void)
{
  static struct srv v = { .name = "hang-up", .hangup = true };
  pid_t pid = fork();
  int st = 0;

  if (pid == 0) {
    char uri[512], err[512];
    struct shunt_handle *h;
    struct test_opts o = { .connections = 1, .timeout_ms = 20000 };
    unsigned char *w = calloc(1, DISK);
    signal(SIGALRM, SIG_DFL);   /* a stall: killed by the signal, reported below */
    alarm(ALARM_S / 2);
    start(&v);
    snprintf(uri, sizeof uri, "nbds+unix:///?socket=%s&tls-psk-file=%s&tls-username=alice",
             v.sock, v.keys);
    int r = test_connect(&h, uri, &o, err, sizeof err);
    if (r == 0) {
      /* The read is complete and the client reads no more before the
       * write: its first send finds the socket closed. */
      r = shunt_pread(h, w, 4096, 0, 0);
      v.hang_now = true;
      while (r == 0 && !v.closed)
        usleep(1000);
      if (r == 0)
        r = shunt_pwrite(h, w, DISK, 0, 0) < 0 ? 0 : -1;
      shunt_close(h);
    }
    v.hang_now = true;
    stop(&v);
    free(w);
    _exit(r == 0 && v.requests == 1 ? 0 : 1);
  }
  alarm(ALARM_S);   /* the child's comes first */
  while (pid > 0 && waitpid(pid, &st, 0) < 0 && errno == EINTR)
    ;
  ok(pid > 0 && WIFEXITED(st) && WEXITSTATUS(st) == 0,
     "the server hangs up after a read: the next write fails, no stall, no signal (%s %d)",
     WIFSIGNALED(st) ? "signal" : "exit", WIFSIGNALED(st) ? WTERMSIG(st) : WEXITSTATUS(st));
}

static void on_alarm(int sig)
{
  static const char m[] = "not ok - a read stalled: no progress within the alarm\n";
  (void)sig;
  ssize_t r = write(1, m, sizeof m - 1);
  (void)r;
  _exit(1);
}

int main(void)
{
  static struct srv plain = { .name = "no such records" };
  static struct srv tickets = {
    .name = "tickets", .tickets = TK_AUTO, .go_ev = EV_TICKET,
    .req_ev = { [1] = EV_TICKET, [4] = EV_TICKET },
  };
  static struct srv keyupdates = {
    .name = "KeyUpdates", .first_ev = EV_KU, .go_ev = EV_KU_PEER,
    .req_ev = { [0] = EV_KU, [1] = EV_KU_PEER, [3] = EV_KU },
  };
  /* Only where the client reads replies with its poll loop (non-blocking). */
  static struct srv transmission = {
    .name = "transmission only", .tickets = TK_ON_DEMAND,
    .req_ev = { [0] = EV_KU, [1] = EV_TICKET, [2] = EV_KU_PEER, [4] = EV_TICKET, [5] = EV_KU },
  };

  signal(SIGALRM, on_alarm);
  alarm(ALARM_S);
  run(&plain, 0, 0, 0);
  run(&tickets, 5, 0, 0);
  run(&keyupdates, 0, 5, 2);
  run(&transmission, 2, 3, 1);
  hangup_then_write();
  return tap_done();
}
