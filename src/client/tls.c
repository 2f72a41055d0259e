/* tls.c: GnuTLS client sessions for nbds:// (see tls.h).  GnuTLS reads and
 * writes the socket itself (reads through pull(), which notes when the socket
 * had nothing); writes are staged one record at a time so that a
 * non-blocking send that would block can be resumed with the same bytes. */
#include <errno.h>
#include <gnutls/gnutls.h>
#include <gnutls/x509.h>
#include <pwd.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "client/tls.h"

#define SH_TLS_RECORD 16384
/* Records without application data read in a row by one sh_tls_readv before
 * it returns -EAGAIN with the socket not yet found empty (see tls.h). */
#define SH_TLS_READ_TRIES 64

struct sh_tls {
  gnutls_session_t s;
  gnutls_certificate_credentials_t x509;
  gnutls_psk_client_credentials_t psk;
  char *hostname;        /* for verification and SNI, or NULL */
  bool verify;
  bool active;
  bool send_pending;     /* a record is staged and partly sent */
  int fd;                /* the socket, once the handshake starts */
  bool starved;          /* the socket had nothing when GnuTLS last read it */
  size_t stage_len;
  unsigned char stage[SH_TLS_RECORD];
};

static int fail(char *err, size_t errlen, int r, const char *fmt, const char *a, const char *b)
{
  snprintf(err, errlen, fmt, a, b);
  return r;
}

/* The key for identity in a keys file of identity:hexkey lines. */
static int psk_lookup(const char *file, const char *identity, char **hexkey, char *err, size_t errlen)
{
  FILE *f = fopen(file, "r");
  char line[1024];
  size_t idlen = strlen(identity);
  int r = -ENOENT;

  if (!f)
    return fail(err, errlen, -errno, "tls-psk-file %s: %s", file, strerror(errno));
  while (fgets(line, sizeof line, f)) {
    line[strcspn(line, "\r\n")] = '\0';
    if (strncmp(line, identity, idlen) || line[idlen] != ':')
      continue;
    r = (*hexkey = strdup(line + idlen + 1)) ? 0 : -ENOMEM;
    break;
  }
  fclose(f);
  if (r == -ENOENT)
    fail(err, errlen, -ENOENT, "tls-psk-file %s: no key for identity '%s'", file, identity);
  return r;
}

static int load_psk(struct sh_tls *t, const struct nbd_uri *u, char *err, size_t errlen)
{
  const char *user = u->user;
  struct passwd *pw;
  char *hex = NULL;
  gnutls_datum_t key;
  int r;

  if (!user && !(user = getenv("USER")) && (pw = getpwuid(getuid())))
    user = pw->pw_name;
  if (!user)
    return fail(err, errlen, -EINVAL, "%s%s", "tls-psk-file: no identity (give user@ in the URI)", "");
  if ((r = psk_lookup(u->tls_psk_file, user, &hex, err, errlen)) < 0)
    return r;
  key.data = (unsigned char *)hex;
  key.size = (unsigned)strlen(hex);
  if ((r = gnutls_psk_allocate_client_credentials(&t->psk)) < 0
      || (r = gnutls_psk_set_client_credentials(t->psk, user, &key, GNUTLS_PSK_KEY_HEX)) < 0) {
    free(hex);
    return fail(err, errlen, -EINVAL, "tls-psk-file %s: %s", u->tls_psk_file, gnutls_strerror(r));
  }
  free(hex);
  return 0;
}

static int load_x509(struct sh_tls *t, const struct nbd_uri *u, char *err, size_t errlen)
{
  char ca[4096], cert[4096], key[4096];
  int r;

  if ((r = gnutls_certificate_allocate_credentials(&t->x509)) < 0)
    return -ENOMEM;
  if (!u->tls_certificates) {
    if ((r = gnutls_certificate_set_x509_system_trust(t->x509)) < 0 && t->verify)
      return fail(err, errlen, -EINVAL, "system trusted CAs: %s%s", gnutls_strerror(r), "");
    return 0;
  }
  snprintf(ca, sizeof ca, "%s/ca-cert.pem", u->tls_certificates);
  snprintf(cert, sizeof cert, "%s/client-cert.pem", u->tls_certificates);
  snprintf(key, sizeof key, "%s/client-key.pem", u->tls_certificates);
  if (access(ca, R_OK) == 0) {
    if ((r = gnutls_certificate_set_x509_trust_file(t->x509, ca, GNUTLS_X509_FMT_PEM)) < 0)
      return fail(err, errlen, -EINVAL, "%s: %s", ca, gnutls_strerror(r));
  } else if (t->verify) {
    return fail(err, errlen, -ENOENT, "%s: %s (needed to verify the server)", ca, strerror(errno));
  }
  if (access(cert, R_OK) == 0 && access(key, R_OK) == 0
      && (r = gnutls_certificate_set_x509_key_file(t->x509, cert, key, GNUTLS_X509_FMT_PEM)) < 0)
    return fail(err, errlen, -EINVAL, "%s: %s", cert, gnutls_strerror(r));
  return 0;
}

int sh_tls_new(const struct nbd_uri *u, struct sh_tls **out, char *err, size_t errlen)
{
  struct sh_tls *t = calloc(1, sizeof *t);
  bool psk;
  int r;

  *out = NULL;
  if (!t)
    return -ENOMEM;
  t->verify = u->tls_verify_peer != 0;
  psk = u->tls_psk_file != NULL;
  if (u->tls_type && strcmp(u->tls_type, psk ? "psk" : "x509")) {
    r = fail(err, errlen, -ENOTSUP, "tls-type=%s is not supported%s (psk with tls-psk-file, x509 otherwise)",
             u->tls_type, "");
    goto out;
  }
  if (!u->unix_socket || u->tls_hostname) {
    const char *h = u->tls_hostname ? u->tls_hostname : u->host;
    if (h && !(t->hostname = strdup(h))) {
      r = -ENOMEM;
      goto out;
    }
  }
  r = psk ? load_psk(t, u, err, errlen) : load_x509(t, u, err, errlen);
out:
  if (r < 0)
    sh_tls_free(t);
  else
    *out = t;
  return r;
}

void sh_tls_free(struct sh_tls *t)
{
  if (!t)
    return;
  if (t->s)
    gnutls_deinit(t->s);
  if (t->x509)
    gnutls_certificate_free_credentials(t->x509);
  if (t->psk)
    gnutls_psk_free_client_credentials(t->psk);
  free(t->hostname);
  free(t);
}

/* GnuTLS's pull function: recv() on the socket, noting a socket found empty
 * (EAGAIN: nothing yet on a non-blocking socket, or the receive timeout ran
 * out on a blocking one).  errno is left for GnuTLS to read. */
static ssize_t pull(gnutls_transport_ptr_t p, void *buf, size_t len)
{
  struct sh_tls *t = p;
  ssize_t n = recv(t->fd, buf, len, 0);
  if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
    t->starved = true;
  return n;
}

static int pull_timeout(gnutls_transport_ptr_t p, unsigned ms)
{
  const struct sh_tls *t = p;
  return gnutls_system_recv_timeout((gnutls_transport_ptr_t)(intptr_t)t->fd, ms);
}

/* Reads go through pull() (its pointer is the session), sends straight to
 * the socket with GnuTLS's own sendmsg (MSG_NOSIGNAL: GNUTLS_NO_SIGNAL). */
static void set_transport(struct sh_tls *t, int fd)
{
  t->fd = fd;
  gnutls_transport_set_ptr2(t->s, t, (gnutls_transport_ptr_t)(intptr_t)fd);
  gnutls_transport_set_pull_function(t->s, pull);
  gnutls_transport_set_pull_timeout_function(t->s, pull_timeout);
}

int sh_tls_handshake(struct sh_tls *t, int fd, char *err, size_t errlen)
{
  const char *prio = t->psk ? "NORMAL:+ECDHE-PSK:+DHE-PSK:+PSK" : "NORMAL";
  int r;

  if ((r = gnutls_init(&t->s, GNUTLS_CLIENT | GNUTLS_NO_SIGNAL)) < 0)
    return -ENOMEM;
  if ((r = gnutls_priority_set_direct(t->s, prio, NULL)) < 0
      || (r = gnutls_credentials_set(t->s, t->psk ? GNUTLS_CRD_PSK : GNUTLS_CRD_CERTIFICATE,
                                     t->psk ? (void *)t->psk : (void *)t->x509)) < 0)
    return fail(err, errlen, -EINVAL, "TLS setup: %s%s", gnutls_strerror(r), "");
  if (t->x509 && t->verify)
    gnutls_session_set_verify_cert(t->s, t->hostname, 0);
  if (t->hostname && !strchr(t->hostname, ':') && strspn(t->hostname, "0123456789.") != strlen(t->hostname))
    gnutls_server_name_set(t->s, GNUTLS_NAME_DNS, t->hostname, strlen(t->hostname));
  set_transport(t, fd);
  do
    r = gnutls_handshake(t->s);
  while (r == GNUTLS_E_INTERRUPTED || (r < 0 && r != GNUTLS_E_AGAIN && !gnutls_error_is_fatal(r)));
  if (r == GNUTLS_E_AGAIN)
    return fail(err, errlen, -ETIMEDOUT, "TLS handshake: timed out%s%s", "", "");
  if (r == GNUTLS_E_CERTIFICATE_VERIFICATION_ERROR) {
    gnutls_datum_t txt = { NULL, 0 };
    unsigned status = gnutls_session_get_verify_cert_status(t->s);
    gnutls_certificate_verification_status_print(status, GNUTLS_CRT_X509, &txt, 0);
    fail(err, errlen, -EACCES, "TLS: server certificate: %s%s", txt.data ? (char *)txt.data : "not trusted", "");
    gnutls_free(txt.data);
    return -EACCES;
  }
  if (r < 0)
    return fail(err, errlen, r == GNUTLS_E_DECRYPTION_FAILED || r == GNUTLS_E_FATAL_ALERT_RECEIVED
                ? -EACCES : -EPROTO, "TLS handshake: %s%s", gnutls_strerror(r), "");
  t->active = true;
  return 0;
}

bool sh_tls_active(const struct sh_tls *t)
{
  return t && t->active;
}

static ssize_t map_error(ssize_t r)
{
  if (r == GNUTLS_E_AGAIN || r == GNUTLS_E_INTERRUPTED)
    return -EAGAIN;
  if (r == GNUTLS_E_PREMATURE_TERMINATION)
    return 0;   /* closed without close_notify: an end of stream for NBD */
  if (r == GNUTLS_E_PUSH_ERROR || r == GNUTLS_E_PULL_ERROR)
    return -ECONNRESET;
  return -EPROTO;
}

/* One gnutls_record_recv.  GnuTLS answers "again" after a record that
 * carried no application data (a TLS 1.3 KeyUpdate or NewSessionTicket) as
 * well as when the socket has nothing: it is asked again unless pull() found
 * the socket empty, so a reply that came behind such a record is read now
 * and not left waiting for input that will not come (at most
 * SH_TLS_READ_TRIES such records in a row). */
static ssize_t recv_record(struct sh_tls *t, void *buf, size_t len)
{
  ssize_t n;
  int tries = 0;

  do {
    t->starved = false;
    n = gnutls_record_recv(t->s, buf, len);
  } while (n == GNUTLS_E_INTERRUPTED
           || (n == GNUTLS_E_AGAIN && !t->starved && ++tries < SH_TLS_READ_TRIES));
  return n;
}

bool sh_tls_starved(const struct sh_tls *t)
{
  return t->starved;
}

ssize_t sh_tls_readv(struct sh_tls *t, const struct iovec *iov, int iovcnt)
{
  ssize_t total = 0;

  for (int i = 0; i < iovcnt; i++) {
    size_t got = 0;
    while (got < iov[i].iov_len) {
      ssize_t n = recv_record(t, (char *)iov[i].iov_base + got, iov[i].iov_len - got);
      if (n <= 0) {
        if (total > 0 || got > 0)
          return total + (ssize_t)got;
        return n == 0 ? 0 : map_error(n);
      }
      got += (size_t)n;
      /* Stop when nothing more is buffered: the caller polls for the rest. */
      if (got < iov[i].iov_len && gnutls_record_check_pending(t->s) == 0)
        return total + (ssize_t)got;
    }
    total += (ssize_t)got;
  }
  return total;
}

ssize_t sh_tls_writev(struct sh_tls *t, const struct iovec *iov, int iovcnt)
{
  ssize_t r;

  if (!t->send_pending) {
    t->stage_len = 0;
    for (int i = 0; i < iovcnt && t->stage_len < SH_TLS_RECORD; i++) {
      size_t k = iov[i].iov_len;
      if (k > SH_TLS_RECORD - t->stage_len)
        k = SH_TLS_RECORD - t->stage_len;
      memcpy(t->stage + t->stage_len, iov[i].iov_base, k);
      t->stage_len += k;
    }
    if (t->stage_len == 0)
      return 0;
    r = gnutls_record_send(t->s, t->stage, t->stage_len);
  } else {
    /* "call this function again with ... a NULL pointer for data and 0 for size" */
    r = gnutls_record_send(t->s, NULL, 0);
  }
  if (r == GNUTLS_E_AGAIN || r == GNUTLS_E_INTERRUPTED) {
    t->send_pending = true;
    return -EAGAIN;
  }
  t->send_pending = false;
  if (r < 0)
    return map_error(r) == 0 ? -ECONNRESET : map_error(r);
  return r;
}
