/* tls.c: GnuTLS sessions driven by buffers instead of sockets (see tls.h).
 * The pull function reads from a fixed input buffer, answering EAGAIN when
 * it is empty.  The push function hands each batch of records straight to
 * the socket with one non-blocking sendmsg() when nothing is waiting before
 * it, and appends only what the socket did not take to a growable output
 * buffer, which the ring sends; without a socket, everything is appended. */
#include <errno.h>
#include <fnmatch.h>
#include <gnutls/gnutls.h>
#include <gnutls/x509.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>
#if defined(__x86_64__) || defined(__i386__)
#include <cpuid.h>
#elif defined(__aarch64__)
#include <sys/auxv.h>
#endif

#include "server/tls.h"
#include "server/tls_seal.h"

/* Room for a few full TLS records (16 KiB plus overhead each). */
#define TLS_IN_CAP (80u * 1024)
/* Tiny records held for the next push, at most this many bytes. */
#define TLS_HOLD_CAP 256u
/* The iovecs GnuTLS hands the push function at once, at most (its queue). */
#define TLS_PUSH_IOV 64

struct tls_creds {
  gnutls_certificate_credentials_t x509;
  gnutls_psk_server_credentials_t psk;
  gnutls_priority_t prio;
  bool verify_peer;
  char **allow_dn;
  size_t nallow_dn;
};

struct tls_conn {
  gnutls_session_t s;
  const struct tls_creds *creds;
  uint8_t in[TLS_IN_CAP];
  size_t in_start, in_end;
  bool in_eof;
  bool starved;                 /* the pull function ran out of input */
  uint8_t *out;
  size_t out_start, out_end, out_cap;
  bool out_failed;
  int fd;                       /* direct pushes to this socket, or -1 */
  bool more;                    /* more records follow at once: MSG_MORE */
  bool bulk;                    /* a write of several records: buffered for one send */
  /* A tiny record (a reply header's) with more to follow at once: sent
   * with the next push instead of a send of its own.  Only while the
   * output buffer is empty. */
  uint8_t hold[TLS_HOLD_CAP];
  size_t hold_len;
  uint64_t pushed_direct, pushed_buffered, pushed_sealed;
  struct tls_seal seal;         /* the cipher of sealed records (tls_seal.h) */
  char *dn;
  char err[256];
};

int tls_parse_mode(const char *s, enum tls_mode *mode)
{
  if (!strcmp(s, "off") || !strcmp(s, "no"))
    *mode = TLS_MODE_OFF;
  else if (!strcmp(s, "on") || !strcmp(s, "yes"))
    *mode = TLS_MODE_ON;
  else if (!strcmp(s, "require"))
    *mode = TLS_MODE_REQUIRE;
  else
    return -EINVAL;
  return 0;
}

int tls_config_add_dn(struct tls_config *cfg, const char *pattern)
{
  char **v = realloc(cfg->allow_dn, (cfg->nallow_dn + 1) * sizeof *v);
  if (!v)
    return -ENOMEM;
  cfg->allow_dn = v;
  if (!(v[cfg->nallow_dn] = strdup(pattern)))
    return -ENOMEM;
  cfg->nallow_dn++;
  return 0;
}

int tls_priority_check(const char *priority, char *err, size_t errlen)
{
  gnutls_priority_t p;
  const char *pos = NULL;
  int r = gnutls_priority_init(&p, priority, &pos);

  if (r < 0) {
    if (pos && r == GNUTLS_E_INVALID_REQUEST)
      snprintf(err, errlen, "'%s': %s at '%s'", priority, gnutls_strerror(r), pos);
    else
      snprintf(err, errlen, "'%s': %s", priority, gnutls_strerror(r));
    return -EINVAL;
  }
  gnutls_priority_deinit(p);
  return 0;
}

/* Whether AES-GCM runs on the CPU's own instructions (AES rounds and the
 * carry-less multiply of GHASH), as GnuTLS then uses them. */
static bool cpu_has_aes_gcm(void)
{
#if defined(__x86_64__) || defined(__i386__)
  unsigned a, b, c, d;
  if (!__get_cpuid(1, &a, &b, &c, &d))
    return false;
  return (c & bit_AES) && (c & bit_PCLMUL);
#elif defined(__aarch64__) && defined(HWCAP_AES) && defined(HWCAP_PMULL)
  unsigned long hw = getauxval(AT_HWCAP);
  return (hw & HWCAP_AES) && (hw & HWCAP_PMULL);
#else
  return false;
#endif
}

/* NORMAL's ciphers, reordered.  The key exchanges, signatures and protocol
 * versions stay the system's. */
#define TLS_CIPHERS_AES "+AES-128-GCM:+AES-256-GCM:+CHACHA20-POLY1305"
#define TLS_CIPHERS_CHACHA "+CHACHA20-POLY1305:+AES-128-GCM:+AES-256-GCM"
#define TLS_CIPHERS_REST "+AES-128-CCM:+AES-256-CCM:+AES-128-CBC:+AES-256-CBC"

const char *tls_default_priority(void)
{
  return cpu_has_aes_gcm()
    ? "NORMAL:-CIPHER-ALL:" TLS_CIPHERS_AES ":" TLS_CIPHERS_REST ":%SERVER_PRECEDENCE"
    : "NORMAL:-CIPHER-ALL:" TLS_CIPHERS_CHACHA ":" TLS_CIPHERS_REST ":%SERVER_PRECEDENCE";
}

void tls_config_free(struct tls_config *cfg)
{
  free(cfg->priority);
  free(cfg->certificates);
  free(cfg->psk_file);
  for (size_t i = 0; i < cfg->nallow_dn; i++)
    free(cfg->allow_dn[i]);
  free(cfg->allow_dn);
  memset(cfg, 0, sizeof *cfg);
}

void tls_creds_free(struct tls_creds *c)
{
  if (!c)
    return;
  if (c->x509)
    gnutls_certificate_free_credentials(c->x509);
  if (c->psk)
    gnutls_psk_free_server_credentials(c->psk);
  if (c->prio)
    gnutls_priority_deinit(c->prio);
  for (size_t i = 0; i < c->nallow_dn; i++)
    free(c->allow_dn[i]);
  free(c->allow_dn);
  free(c);
}

static int load_x509(struct tls_creds *c, const char *dir, char *err, size_t errlen)
{
  char ca[4096], cert[4096], key[4096], crl[4096];
  int r;

  snprintf(ca, sizeof ca, "%s/ca-cert.pem", dir);
  snprintf(cert, sizeof cert, "%s/server-cert.pem", dir);
  snprintf(key, sizeof key, "%s/server-key.pem", dir);
  snprintf(crl, sizeof crl, "%s/ca-crl.pem", dir);
  if ((r = gnutls_certificate_allocate_credentials(&c->x509)) < 0)
    goto gerr;
  if (access(ca, R_OK) == 0) {
    if ((r = gnutls_certificate_set_x509_trust_file(c->x509, ca, GNUTLS_X509_FMT_PEM)) < 0) {
      snprintf(err, errlen, "%s: %s", ca, gnutls_strerror(r));
      return -EINVAL;
    }
  } else if (c->verify_peer) {
    snprintf(err, errlen, "%s: needed by --tls-verify-peer: %s", ca, strerror(errno));
    return -ENOENT;
  }
  if (access(crl, R_OK) == 0
      && (r = gnutls_certificate_set_x509_crl_file(c->x509, crl, GNUTLS_X509_FMT_PEM)) < 0) {
    snprintf(err, errlen, "%s: %s", crl, gnutls_strerror(r));
    return -EINVAL;
  }
  if ((r = gnutls_certificate_set_x509_key_file(c->x509, cert, key, GNUTLS_X509_FMT_PEM)) < 0) {
    snprintf(err, errlen, "%s, %s: %s", cert, key, gnutls_strerror(r));
    return -EINVAL;
  }
  gnutls_certificate_set_known_dh_params(c->x509, GNUTLS_SEC_PARAM_MEDIUM);
  return 0;
gerr:
  snprintf(err, errlen, "%s", gnutls_strerror(r));
  return -ENOMEM;
}

int tls_creds_load(struct tls_creds **out, const struct tls_config *cfg, char *err, size_t errlen)
{
  struct tls_creds *c = calloc(1, sizeof *c);
  const char *base, *pos = NULL;
  char prio[1024];
  int r;

  *out = NULL;
  if (!c)
    return -ENOMEM;
  if (!cfg->certificates && !cfg->psk_file) {
    snprintf(err, errlen, "--tls=%s needs --tls-certificates DIR or --tls-psk FILE",
             cfg->mode == TLS_MODE_REQUIRE ? "require" : "on");
    free(c);
    return -EINVAL;
  }
  c->verify_peer = cfg->verify_peer || cfg->nallow_dn > 0;
  if (c->verify_peer && !cfg->certificates) {
    snprintf(err, errlen, "--tls-verify-peer and --tls-allow-dn need --tls-certificates DIR");
    free(c);
    return -EINVAL;
  }
  if (cfg->certificates && (r = load_x509(c, cfg->certificates, err, errlen)) < 0)
    goto fail;
  if (cfg->psk_file) {
    if (access(cfg->psk_file, R_OK) < 0) {
      r = -errno;
      snprintf(err, errlen, "%s: %s", cfg->psk_file, strerror(errno));
      goto fail;
    }
    if ((r = gnutls_psk_allocate_server_credentials(&c->psk)) < 0
        || (r = gnutls_psk_set_server_credentials_file(c->psk, cfg->psk_file)) < 0) {
      snprintf(err, errlen, "%s: %s", cfg->psk_file, gnutls_strerror(r));
      r = -EINVAL;
      goto fail;
    }
    gnutls_psk_set_server_known_dh_params(c->psk, GNUTLS_SEC_PARAM_MEDIUM);
  }
  /* The server's cipher order (tls_default_priority) or the operator's,
   * plus the PSK key exchanges when a keys file is given (as qemu adds
   * them to its priority= for PSK credentials).  An external PSK is bound
   * to SHA-256, which rules out AES-256-GCM in TLS 1.3. */
  base = cfg->priority ? cfg->priority : tls_default_priority();
  if (c->psk)
    snprintf(prio, sizeof prio, "%s:+ECDHE-PSK:+DHE-PSK:+PSK", base);
  else
    snprintf(prio, sizeof prio, "%s", base);
  if (strlen(base) + 32 > sizeof prio) {
    snprintf(err, errlen, "--tls-priority: longer than %zu bytes", sizeof prio - 32);
    r = -EINVAL;
    goto fail;
  }
  if ((r = gnutls_priority_init(&c->prio, prio, &pos)) < 0) {
    snprintf(err, errlen, "TLS priority '%s': %s%s%s", prio, gnutls_strerror(r), pos ? " at " : "",
             pos ? pos : "");
    r = -EINVAL;
    goto fail;
  }
  if (cfg->nallow_dn) {
    c->allow_dn = calloc(cfg->nallow_dn, sizeof *c->allow_dn);
    if (!c->allow_dn) {
      r = -ENOMEM;
      goto fail;
    }
    for (size_t i = 0; i < cfg->nallow_dn; i++, c->nallow_dn++)
      if (!(c->allow_dn[i] = strdup(cfg->allow_dn[i]))) {
        r = -ENOMEM;
        goto fail;
      }
  }
  *out = c;
  return 0;
fail:
  tls_creds_free(c);
  return r;
}

/* ---- buffers as the transport ---- */

/* Room for len more bytes at the end of the output buffer (kept, never
 * shrunk: a connection's large replies reuse it).  Returns where they go,
 * or NULL when out of memory. */
static uint8_t *out_reserve(struct tls_conn *t, size_t len)
{
  if (t->out_start > 0 && t->out_start == t->out_end)
    t->out_start = t->out_end = 0;
  if (len > t->out_cap - t->out_end) {
    size_t cap = t->out_cap ? t->out_cap : 32768;
    while (cap - t->out_end < len) {
      if (cap > SIZE_MAX / 2)
        return NULL;
      cap *= 2;
    }
    uint8_t *o = realloc(t->out, cap);
    if (!o)
      return NULL;
    t->out = o;
    t->out_cap = cap;
  }
  return t->out + t->out_end;
}

/* Append len bytes to the output buffer.  Returns 0 or -ENOMEM. */
static int out_append(struct tls_conn *t, const void *data, size_t len)
{
  uint8_t *dst = out_reserve(t, len);

  if (!dst)
    return -ENOMEM;
  memcpy(dst, data, len);
  t->out_end += len;
  return 0;
}

/* Move the held records to the output buffer (counted when held). */
static int unhold(struct tls_conn *t, size_t from)
{
  int r = 0;

  if (from < t->hold_len)
    r = out_append(t, t->hold + from, t->hold_len - from);
  t->hold_len = 0;
  return r;
}

/* Records of a write of one record go to the socket at once while nothing
 * waits in the output buffer (which keeps their order); what the socket
 * does not take waits there for the ring's send, and so does everything
 * after it, which is the backpressure: the connection encrypts more only
 * once that is sent.  A tiny record with more to follow (a reply header
 * before its payload) is held and goes out with the next push, saving a
 * send.  The records of a write of several (a large READ's payload) are
 * buffered and go in one send of the ring: a send per 16 KiB record costs
 * more than copying it.  A send error stops the direct pushes: the ring's
 * send of the rest reports it the usual way. */
static ssize_t push_fn(gnutls_transport_ptr_t p, const giovec_t *iov, int iovcnt)
{
  struct tls_conn *t = p;
  size_t total = 0, skip = 0;
  bool direct = t->fd >= 0 && !t->bulk;

  for (int i = 0; i < iovcnt; i++)
    total += iov[i].iov_len;
  if (t->hold_len && (!direct || t->out_start != t->out_end || iovcnt >= TLS_PUSH_IOV))
    if (unhold(t, 0) < 0)
      goto nomem;
  if (direct && t->out_start == t->out_end && t->more && t->hold_len + total <= TLS_HOLD_CAP) {
    for (int i = 0; i < iovcnt; i++) {
      memcpy(t->hold + t->hold_len, iov[i].iov_base, iov[i].iov_len);
      t->hold_len += iov[i].iov_len;
    }
    t->pushed_buffered += total;
    return (ssize_t)total;
  }
  if (direct && t->out_start == t->out_end) {
    struct iovec v[TLS_PUSH_IOV];   /* the held records, then iov (fewer than TLS_PUSH_IOV then) */
    struct msghdr m = { .msg_iov = (struct iovec *)iov, .msg_iovlen = (size_t)iovcnt };
    if (t->hold_len) {
      v[0] = (struct iovec){ .iov_base = t->hold, .iov_len = t->hold_len };
      memcpy(&v[1], iov, (size_t)iovcnt * sizeof *iov);
      m.msg_iov = v;
      m.msg_iovlen = (size_t)iovcnt + 1;
    }
    ssize_t sent = sendmsg(t->fd, &m, MSG_DONTWAIT | MSG_NOSIGNAL | (t->more ? MSG_MORE : 0));
    if (sent < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)
      t->fd = -1;
    skip = sent > 0 ? (size_t)sent : 0;
    if (skip >= t->hold_len) {
      skip -= t->hold_len;
      t->hold_len = 0;
    } else {
      if (unhold(t, skip) < 0)
        goto nomem;
      skip = 0;
    }
    t->pushed_direct += skip;
  }
  for (int i = 0; i < iovcnt; i++) {
    if (skip >= iov[i].iov_len) {
      skip -= iov[i].iov_len;
      continue;
    }
    if (out_append(t, (const uint8_t *)iov[i].iov_base + skip, iov[i].iov_len - skip) < 0)
      goto nomem;
    t->pushed_buffered += iov[i].iov_len - skip;
    skip = 0;
  }
  return (ssize_t)total;
nomem:
  t->out_failed = true;
  gnutls_transport_set_errno(t->s, ENOMEM);
  return -1;
}

static ssize_t pull_fn(gnutls_transport_ptr_t p, void *data, size_t len)
{
  struct tls_conn *t = p;
  size_t avail = t->in_end - t->in_start;

  if (avail == 0) {
    if (t->in_eof)
      return 0;
    t->starved = true;
    gnutls_transport_set_errno(t->s, EAGAIN);
    return -1;
  }
  if (len > avail)
    len = avail;
  memcpy(data, t->in + t->in_start, len);
  t->in_start += len;
  if (t->in_start == t->in_end)
    t->in_start = t->in_end = 0;
  return (ssize_t)len;
}

int tls_conn_new(struct tls_conn **out, const struct tls_creds *creds)
{
  struct tls_conn *t = calloc(1, sizeof *t);
  int r;

  *out = NULL;
  if (!t)
    return -ENOMEM;
  t->creds = creds;
  t->fd = -1;
  if ((r = gnutls_init(&t->s, GNUTLS_SERVER | GNUTLS_NONBLOCK)) < 0) {
    free(t);
    return -ENOMEM;
  }
  if ((r = gnutls_priority_set(t->s, creds->prio)) < 0)
    goto fail;
  if (creds->x509 && (r = gnutls_credentials_set(t->s, GNUTLS_CRD_CERTIFICATE, creds->x509)) < 0)
    goto fail;
  if (creds->psk && (r = gnutls_credentials_set(t->s, GNUTLS_CRD_PSK, creds->psk)) < 0)
    goto fail;
  if (creds->verify_peer)
    gnutls_certificate_server_set_request(t->s, GNUTLS_CERT_REQUIRE);
  /* No timer inside GnuTLS: slow clients are the server's handshake timeout's business. */
  gnutls_handshake_set_timeout(t->s, 0);
  gnutls_transport_set_ptr(t->s, t);
  gnutls_transport_set_vec_push_function(t->s, push_fn);
  gnutls_transport_set_pull_function(t->s, pull_fn);
  *out = t;
  return 0;
fail:
  gnutls_deinit(t->s);
  free(t);
  return -EINVAL;
}

void tls_conn_free(struct tls_conn *t)
{
  if (!t)
    return;
  tls_seal_fini(&t->seal);
  gnutls_deinit(t->s);
  free(t->out);
  free(t->dn);
  free(t);
}

void tls_conn_set_socket(struct tls_conn *t, int fd)
{
  t->fd = fd;
}

void tls_conn_push_counts(const struct tls_conn *t, uint64_t *direct, uint64_t *buffered, uint64_t *sealed)
{
  *direct = t->pushed_direct;
  *buffered = t->pushed_buffered;
  *sealed = t->pushed_sealed;
}

void *tls_in_space(struct tls_conn *t, size_t *len)
{
  if (t->in_start > 0) {
    memmove(t->in, t->in + t->in_start, t->in_end - t->in_start);
    t->in_end -= t->in_start;
    t->in_start = 0;
  }
  *len = TLS_IN_CAP - t->in_end;
  return t->in + t->in_end;
}

void tls_in_commit(struct tls_conn *t, size_t n)
{
  t->in_end += n;
}

int tls_in_put(struct tls_conn *t, const void *p, size_t n)
{
  size_t room;
  void *dst = tls_in_space(t, &room);
  if (n > room)
    return -ENOBUFS;
  memcpy(dst, p, n);
  tls_in_commit(t, n);
  return 0;
}

void tls_in_eof(struct tls_conn *t)
{
  t->in_eof = true;
}

/* After the handshake: verify the client certificate and check its DN. */
static int check_peer(struct tls_conn *t)
{
  const struct tls_creds *c = t->creds;
  unsigned status = 0;
  const gnutls_datum_t *certs;
  unsigned ncerts = 0;
  gnutls_x509_crt_t crt;
  gnutls_datum_t dn = { NULL, 0 };
  int r;

  if (gnutls_auth_get_type(t->s) != GNUTLS_CRD_CERTIFICATE || !c->verify_peer)
    return 0;
  if ((r = gnutls_certificate_verify_peers2(t->s, &status)) < 0) {
    snprintf(t->err, sizeof t->err, "client certificate: %s", gnutls_strerror(r));
    return -EACCES;
  }
  if (status) {
    gnutls_datum_t txt;
    if (gnutls_certificate_verification_status_print(status, GNUTLS_CRT_X509, &txt, 0) == 0) {
      snprintf(t->err, sizeof t->err, "client certificate: %s", txt.data);
      gnutls_free(txt.data);
    } else {
      snprintf(t->err, sizeof t->err, "client certificate not trusted");
    }
    return -EACCES;
  }
  certs = gnutls_certificate_get_peers(t->s, &ncerts);
  if (!certs || ncerts == 0) {
    snprintf(t->err, sizeof t->err, "client sent no certificate");
    return -EACCES;
  }
  if (gnutls_x509_crt_init(&crt) < 0)
    return -ENOMEM;
  r = gnutls_x509_crt_import(crt, &certs[0], GNUTLS_X509_FMT_DER);
  if (r == 0)
    r = gnutls_x509_crt_get_dn3(crt, &dn, 0);
  gnutls_x509_crt_deinit(crt);
  if (r < 0) {
    snprintf(t->err, sizeof t->err, "client certificate DN: %s", gnutls_strerror(r));
    return -EACCES;
  }
  t->dn = strndup((const char *)dn.data, dn.size);
  gnutls_free(dn.data);
  if (!t->dn)
    return -ENOMEM;
  if (c->nallow_dn == 0)
    return 0;
  for (size_t i = 0; i < c->nallow_dn; i++)
    if (fnmatch(c->allow_dn[i], t->dn, 0) == 0)
      return 0;
  snprintf(t->err, sizeof t->err, "client DN '%s' is not in the allowed list", t->dn);
  return -EACCES;
}

int tls_conn_handshake(struct tls_conn *t)
{
  int r = gnutls_handshake(t->s);

  if (r == GNUTLS_E_AGAIN || r == GNUTLS_E_INTERRUPTED)
    return -EAGAIN;
  if (r < 0) {
    snprintf(t->err, sizeof t->err, "TLS handshake: %s", gnutls_strerror(r));
    return r == GNUTLS_E_CERTIFICATE_VERIFICATION_ERROR ? -EACCES : -EPROTO;
  }
  return check_peer(t);
}

/* GnuTLS answers "again" after a record that carried no application data
 * (a KeyUpdate, a ticket, an empty record) even when the next record is
 * already in its buffer or ours: only an answer given after the input ran
 * out means that more input is needed.  Otherwise it is asked again (at
 * most TLS_READ_TRIES times, each of which took a record). */
#define TLS_READ_TRIES 64

ssize_t tls_conn_read(struct tls_conn *t, void *buf, size_t len)
{
  ssize_t r;
  int tries = 0;

  do {
    t->starved = false;
    r = gnutls_record_recv(t->s, buf, len);
  } while ((r == GNUTLS_E_AGAIN || r == GNUTLS_E_INTERRUPTED) && !t->starved && ++tries < TLS_READ_TRIES);
  if (r >= 0)
    return r;
  if (r == GNUTLS_E_AGAIN || r == GNUTLS_E_INTERRUPTED)
    return -EAGAIN;
  if (r == GNUTLS_E_PREMATURE_TERMINATION && t->in_eof)
    return 0;   /* closed without close_notify: the same as a TCP close to NBD */
  snprintf(t->err, sizeof t->err, "TLS receive: %s", gnutls_strerror((int)r));
  return -EPROTO;
}

/* The rest of a write of several records, sealed into the output buffer
 * behind what waits there, in records of rec bytes (the size GnuTLS gave
 * the first one).  Only when GnuTLS holds nothing back: its first record
 * went out through it (with whatever it owed before it, such as a
 * KeyUpdate), and nothing is corked or held.  Returns the plaintext bytes
 * sealed: len, or 0 (GnuTLS sends them). */
static size_t seal_rest(struct tls_conn *t, const char *p, size_t len, size_t rec)
{
  uint8_t *dst;
  size_t n, olen;

  if (t->hold_len || t->out_failed || gnutls_record_check_corked(t->s))
    return 0;
  if (!(dst = out_reserve(t, tls_seal_room(len, rec))))
    return 0;
  n = tls_seal(&t->seal, t->s, p, len, rec, dst, &olen);
  t->out_end += olen;
  t->pushed_sealed += olen;
  return n;
}

int tls_conn_write(struct tls_conn *t, const void *buf, size_t len, bool more)
{
  const char *p = buf;
  size_t rec = gnutls_record_get_max_size(t->s);
  bool tried = false;

  if (t->out_failed)
    goto fail;
  t->bulk = len > rec;
  while (len) {
    /* One record per call: MSG_MORE unless it is the last one of the batch. */
    t->more = more || len > rec;
    ssize_t r = gnutls_record_send(t->s, p, len);
    if (r == GNUTLS_E_INTERRUPTED || r == GNUTLS_E_AGAIN) {
      if (t->out_failed)
        goto fail;
      continue;
    }
    if (r <= 0)
      goto fail;
    p += r;
    len -= (size_t)r;
    if (t->bulk && !tried && len) {
      size_t n = seal_rest(t, p, len, (size_t)r);
      tried = true;
      p += n;
      len -= n;
    }
  }
  t->more = t->bulk = false;
  return 0;
fail:
  t->more = t->bulk = false;
  snprintf(t->err, sizeof t->err, "TLS send failed");
  return -EPROTO;
}

size_t tls_conn_record_size(struct tls_conn *t)
{
  return gnutls_record_get_max_size(t->s);
}

void tls_conn_bye(struct tls_conn *t)
{
  gnutls_bye(t->s, GNUTLS_SHUT_WR);
}

size_t tls_out_pending(struct tls_conn *t, const void **p)
{
  if (t->hold_len && unhold(t, 0) < 0)
    t->out_failed = true;   /* the held records are lost: the next write fails */
  *p = t->out + t->out_start;
  return t->out_end - t->out_start;
}

void tls_out_consumed(struct tls_conn *t, size_t n)
{
  t->out_start += n;
  if (t->out_start == t->out_end)
    t->out_start = t->out_end = 0;
}

const char *tls_conn_dn(const struct tls_conn *t)
{
  return t->dn;
}

const char *tls_conn_psk_identity(const struct tls_conn *t)
{
  if (gnutls_auth_get_type(t->s) != GNUTLS_CRD_PSK)
    return NULL;
  return gnutls_psk_server_get_username(t->s);
}

void *tls_conn_gnutls(struct tls_conn *t)
{
  return t->s;
}

const char *tls_conn_error(const struct tls_conn *t)
{
  return t->err;
}

const char *tls_conn_description(struct tls_conn *t, char *buf, size_t len)
{
  char *d = gnutls_session_get_desc(t->s);
  snprintf(buf, len, "%s", d ? d : "?");
  gnutls_free(d);
  return buf;
}
