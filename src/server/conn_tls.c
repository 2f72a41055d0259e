/* conn_tls.c: a connection's TLS transport (see conn_tls.h): the session's
 * ciphertext comes in through the connection's recv and goes out straight
 * to the socket, or, for what it does not take at once, through sends of
 * its own on the connection's ring, one at a time. */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <unistd.h>

#include "common/faultguard.h"
#include "common/log.h"
#include "common/macros.h"
#include "server/conn_tls.h"

#define TLS_SEND_CHUNK (256u * 1024)   /* plaintext encrypted per submit */
#define TLS_SEND_MAX   (1u << 30)      /* ciphertext bytes per send */

#define TLS_STAGE_CAP  (16u << 10)     /* the largest record's plaintext */

/* Count the ciphertext pushed since the last call. */
static void count_pushes(struct conn_tls *t)
{
  uint64_t direct, buffered, sealed;

  tls_conn_push_counts(t->sess, &direct, &buffered, &sealed);
  if (t->stats) {
    stat_add(&t->stats->tls_pushed_direct, direct - t->direct_seen);
    stat_add(&t->stats->tls_buffered, buffered - t->buffered_seen);
    stat_add(&t->stats->memcpy_bytes, buffered - t->buffered_seen);
    stat_add(&t->stats->tls_sealed, sealed - t->sealed_seen);
  }
  t->direct_seen = direct;
  t->buffered_seen = buffered;
  t->sealed_seen = sealed;
}

/* The plaintext of the last submit went out while it ran: tell the send
 * queue now (never inside conn_tls_submit, which the send queue called). */
static void conn_tls_done_cb(struct engine_op *op, int res, uint32_t flags)
{
  struct conn_tls *t = container_of(op, struct conn_tls, done_op);
  (void)res; (void)flags;

  t->done_pending = false;
  if (t->plain && !t->send_busy && !t->send_error) {
    size_t n = t->plain;
    t->plain = 0;
    sendq_sent(t->sq, (int)n);
  }
}

/* Send pending ciphertext; once all is out, tell the send queue that the
 * plaintext it handed over is gone. */
static void conn_tls_flush(struct conn_tls *t, bool in_submit)
{
  struct io_uring_sqe *sqe;
  const void *p;
  size_t len;

  count_pushes(t);
  if (t->send_busy || t->send_error)
    return;
  len = tls_out_pending(t->sess, &p);
  if (len == 0) {
    if (t->plain && in_submit) {
      if (!t->done_pending) {
        t->done_pending = true;
        engine_defer(t->eng, &t->done_op, 0);
      }
    } else if (t->plain && !t->done_pending) {
      size_t n = t->plain;
      t->plain = 0;
      sendq_sent(t->sq, (int)n);
    }
    return;
  }
  len = MIN(len, (size_t)TLS_SEND_MAX);
  sqe = engine_sqe(t->eng, &t->send_op);
  if (t->wsock)
    io_uring_prep_send(sqe, t->wfd, p, len, MSG_NOSIGNAL);
  else
    io_uring_prep_write(sqe, t->wfd, p, (unsigned)len, (uint64_t)-1);
  t->send_busy = true;
}

static void conn_tls_send_cb(struct engine_op *op, int res, uint32_t flags)
{
  struct conn_tls *t = container_of(op, struct conn_tls, send_op);
  (void)flags;

  t->send_busy = false;
  if (res > 0) {
    tls_out_consumed(t->sess, (size_t)res);
  } else if (res != -EINTR && res != -EAGAIN) {
    t->send_error = res < 0 ? res : -EPIPE;
    t->sent(t, t->send_error);
    if (t->plain) {
      t->plain = 0;
      sendq_sent(t->sq, t->send_error);
    }
    return;
  }
  conn_tls_flush(t, false);
  t->sent(t, 0);   /* maybe close, now that the output drained */
}

void conn_tls_init(struct conn_tls *t, struct engine *eng, struct sendq *sq, int wfd, bool wsock,
                   const char *peer, void (*sent)(struct conn_tls *t, int err))
{
  *t = (struct conn_tls){ .eng = eng, .sq = sq, .wfd = wfd, .wsock = wsock, .peer = peer, .sent = sent };
  t->send_op.cb = conn_tls_send_cb;
  t->done_op.cb = conn_tls_done_cb;
}

int conn_tls_start(struct conn_tls *t, const struct tls_creds *creds, const void *early, size_t n,
                   bool eof)
{
  int r = tls_conn_new(&t->sess, creds);

  if (r < 0) {
    log_msg(LOG_ERROR, t->peer, NULL, "cannot start TLS: %s", strerror(-r));
    t->sess = NULL;
    return r;
  }
  if (n && (r = tls_in_put(t->sess, early, n)) < 0) {
    log_msg(LOG_ERROR, t->peer, NULL, "cannot start TLS: %s", strerror(-r));
    tls_conn_free(t->sess);
    t->sess = NULL;
    return r;
  }
  if (eof)
    tls_in_eof(t->sess);
  if (t->wsock)
    tls_conn_set_socket(t->sess, t->wfd);
  return 0;
}

int conn_tls_handshake(struct conn_tls *t)
{
  char desc[128];
  int r = tls_conn_handshake(t->sess);

  conn_tls_flush(t, false);
  if (r == -EAGAIN) {
    t->want_input = true;
    return r;
  }
  if (r < 0) {
    /* Too late for plaintext: "the server MUST terminate the session". */
    log_msg(LOG_WARN, t->peer, NULL, "TLS refused: %s", tls_conn_error(t->sess));
    return r;
  }
  t->bye_due = true;
  const char *dn = tls_conn_dn(t->sess), *psk = tls_conn_psk_identity(t->sess);
  log_msg(LOG_DEBUG, t->peer, NULL, "TLS established: %s%s%s%s%s",
          tls_conn_description(t->sess, desc, sizeof desc),
          dn ? ", client " : "", dn ? dn : "", psk ? ", PSK identity " : "", psk ? psk : "");
  return 0;
}

void *conn_tls_recv_space(struct conn_tls *t, size_t *len)
{
  void *p = tls_in_space(t->sess, len);
  return *len ? p : NULL;
}

void conn_tls_received(struct conn_tls *t, size_t n)
{
  tls_in_commit(t->sess, n);
  t->want_input = false;
}

void conn_tls_eof(struct conn_tls *t)
{
  if (t->sess)
    tls_in_eof(t->sess);
}

int conn_tls_decrypt(struct conn_tls *t, struct rxbufs *rx, size_t *got)
{
  int st = 0;
  void *buf;
  size_t len;

  if (t->faulted)
    return -EPROTO;
  while (st == 0 && rxbuf_recv_space(rx, false, &buf, &len) == 0) {
    ssize_t n = tls_conn_read(t->sess, buf, len);
    if (n > 0) {
      rx->end += (size_t)n;
      *got += (size_t)n;
    } else if (n == -EAGAIN) {
      t->want_input = true;
      break;
    } else if (n == 0) {
      st = 1;
    } else {
      log_msg(LOG_WARN, t->peer, t->export, "%s: disconnecting", tls_conn_error(t->sess));
      st = -EPROTO;
    }
  }
  conn_tls_flush(t, false);   /* a post-handshake message may have produced output */
  return st;
}

/* Encrypt the staged plaintext as one record. */
static int stage_flush(struct conn_tls *t, size_t *staged, bool more)
{
  int r = 0;

  if (*staged) {
    r = tls_conn_write(t->sess, t->stage, *staged, more);
    if (t->stats)
      stat_add(&t->stats->memcpy_bytes, *staged);
    *staged = 0;
  }
  return r;
}

/* How many bytes of each piece conn_tls_submit takes: whole pieces up to
 * TLS_SEND_CHUNK in all; a piece that does not fit is cut at the first
 * multiple of the record size at or past the room left (so its records stay
 * full, and a reply header before it does not cost the payload a turn of
 * its own: a 1 MiB reply is 4 turns, not 5), so a turn takes less than
 * TLS_SEND_CHUNK + one record.  Returns the number of pieces n (iov[0..n),
 * the last one cut to *last_len). */
static int batch_pieces(const struct iovec *iov, int niov, size_t rec, size_t *last_len)
{
  size_t total = 0;
  int n = 0;

  while (n < niov && total < TLS_SEND_CHUNK) {
    size_t room = TLS_SEND_CHUNK - total, k = iov[n].iov_len;
    if (k > room) {
      k = MIN(k, (room + rec - 1) / rec * rec);
      *last_len = k;
      return n + 1;
    }
    total += k;
    *last_len = k;
    n++;
  }
  return n;
}

#define TLS_CHECK_PAGES 64u   /* pages asked about per mincore() */

/* Read one byte of every page of [p, p + len). */
static void touch_pages(const void *p, size_t len)
{
  const volatile char *c = p;

  for (size_t off = 0; off < len; off += 4096)
    (void)c[off];
  if (len)
    (void)c[len - 1];
}

/* Make sure every page of [p, p + len) can be read before GnuTLS reads it:
 * a page that vanished (a file shrunk under its mapping) must fault here,
 * where the guard's jump abandons nothing but this loop, rather than in
 * the middle of a record (GnuTLS's buffer for it would be lost).  Pages
 * that mincore() reports resident cannot fault (truncation removes them
 * from the page cache and unmaps them first); it reads the page tables,
 * 8 bytes a page, where touching each page costs a TLB miss on every page
 * (about 5% of the server's CPU on hot 1 MiB reads).  Any other page is
 * touched, which faults it in, or faults. */
static void check_pages(const void *p, size_t len)
{
  const size_t page = (size_t)getpagesize();   /* no cache: workers run this at once */
  unsigned char vec[TLS_CHECK_PAGES];

  uintptr_t a = (uintptr_t)p & ~(uintptr_t)(page - 1), end = (uintptr_t)p + len;
  while (a < end) {
    size_t span = MIN((size_t)(end - a), (size_t)TLS_CHECK_PAGES * page), n = (span + page - 1) / page;
    size_t i = 0;
    if (mincore((void *)a, span, vec) == 0)
      while (i < n && (vec[i] & 1))
        i++;
    if (i < n) {
      uintptr_t from = MAX(a + i * page, (uintptr_t)p), to = MIN(a + span, end);
      touch_pages((const void *)from, to - from);
    }
    a += span;
  }
}

/* Encrypt the pieces conn_tls_submit takes: returns the plaintext bytes
 * taken, or -EPROTO (logged). */
static ssize_t encrypt_batch(struct conn_tls *t, const struct iovec *iov, int niov)
{
  size_t total = 0, staged = 0, last_len = 0, rec = MIN(tls_conn_record_size(t->sess), (size_t)TLS_STAGE_CAP);
  int n = batch_pieces(iov, niov, rec, &last_len);

  for (int i = 0; i < n; i++) {
    bool last = i + 1 == n;
    size_t k = last ? last_len : iov[i].iov_len;
    /* A small piece is staged when it shares a record with another: not
     * alone, nor before a large one (a reply header before its data: a
     * record of its own costs no more records in all than copying part of
     * the data to it). */
    bool small = k < rec && (staged || (!last && iov[i + 1].iov_len < rec));
    int r = 0;
    if (small && staged + k > rec)
      r = stage_flush(t, &staged, true);
    if (r == 0 && small) {
      memcpy(t->stage + staged, iov[i].iov_base, k);
      staged += k;
    } else if (r == 0 && (r = stage_flush(t, &staged, true)) == 0) {
      check_pages(iov[i].iov_base, k);
      r = tls_conn_write(t->sess, iov[i].iov_base, k, !last);
    }
    if (r < 0)
      goto fail;
    total += k;
  }
  if (stage_flush(t, &staged, false) < 0)
    goto fail;
  return (ssize_t)total;
fail:
  log_msg(LOG_ERROR, t->peer, t->export, "%s", tls_conn_error(t->sess));
  return -EPROTO;
}

int conn_tls_submit(struct conn_tls *t, const struct iovec *iov, int niov)
{
  struct faultguard g;
  ssize_t total;

  if (t->send_error)
    return t->send_error;
  if (!t->stage && !(t->stage = malloc(TLS_STAGE_CAP)))
    return -ENOMEM;
  /* The pieces may lie in the export's mapping (page-cached READs): a file
   * shrunk under it faults, normally in check_pages(); should it shrink
   * between that and the encryption, the session is abandoned in the middle
   * of a record (which never goes out; GnuTLS's buffer for it is lost).
   * Either way the session is never used again. */
  if (sigsetjmp(g.env, 0)) {
    faultguard_leave(&g);
    log_msg(LOG_WARN, t->peer, t->export, "reply data unreadable at %p (the file shrank under the export?): "
            "disconnecting", g.addr);
    t->faulted = true;
    t->bye_due = false;
    t->send_error = -EFAULT;
    return -EFAULT;
  }
  faultguard_enter(&g);
  total = encrypt_batch(t, iov, niov);
  faultguard_leave(&g);
  if (total < 0)
    return (int)total;
  if (t->stats)
    stat_add(&t->stats->tls_encrypted, (uint64_t)total);
  t->plain = (size_t)total;
  conn_tls_flush(t, true);
  return 0;
}

bool conn_tls_close(struct conn_tls *t, bool failed)
{
  if (!t->sess)
    return false;
  failed = failed || t->send_error;
  if (t->bye_due && !failed) {
    t->bye_due = false;   /* close_notify, so the client sees a clean end */
    tls_conn_bye(t->sess);
    conn_tls_flush(t, false);
  }
  return t->send_busy || (!failed && tls_out_pending(t->sess, &(const void *){ NULL }));
}

void conn_tls_fini(struct conn_tls *t)
{
  tls_conn_free(t->sess);
  t->sess = NULL;
  free(t->stage);
  t->stage = NULL;
}
