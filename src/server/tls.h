/* tls.h: the server side of STARTTLS with GnuTLS.  Credentials (X.509 from a
 * directory, PSK from a keys file) are loaded once and shared by all workers;
 * each connection's session does no I/O itself: ciphertext comes in through
 * tls_in_space()/tls_in_commit() (filled by the connection's io_uring recv)
 * and goes out to the socket (tls_conn_set_socket(): a non-blocking send
 * of each batch of records, no copy) or, for what the socket does not take
 * at once, through tls_out_pending()/tls_out_consumed() (sent by the ring),
 * so a TLS connection lives on the same event loop as a plaintext one. */
#ifndef SHUNT_SERVER_TLS_H
#define SHUNT_SERVER_TLS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

enum tls_mode { TLS_MODE_OFF, TLS_MODE_ON, TLS_MODE_REQUIRE };

/* What `shunt serve` was told about TLS (command line or config file). */
struct tls_config {
  enum tls_mode mode;
  char *certificates;   /* directory with ca-cert.pem, server-cert.pem, server-key.pem */
  char *psk_file;       /* identity:hexkey lines */
  bool verify_peer;     /* require and verify client certificates against the CA */
  char **allow_dn;      /* fnmatch patterns over the client certificate's DN */
  size_t nallow_dn;
  char *priority;       /* GnuTLS priority string, or NULL: tls_default_priority() */
};

/* Parse "off", "on" or "require". Returns 0 or -EINVAL. */
int tls_parse_mode(const char *s, enum tls_mode *mode);
/* Append a DN pattern. Returns 0 or -ENOMEM. */
int tls_config_add_dn(struct tls_config *cfg, const char *pattern);
/* Check a GnuTLS priority string (--tls-priority).  Returns 0, or -EINVAL
 * with a message saying where it is wrong in err. */
int tls_priority_check(const char *priority, char *err, size_t errlen);
/* The ciphers the server prefers when no priority string is given: the
 * system's defaults (NORMAL) with AES-128-GCM first where the CPU has AES
 * instructions (fewer rounds than AES-256, on both ends), ChaCha20-Poly1305
 * first where it has not, and the server's order over the client's.  Static
 * text, one of two strings. */
const char *tls_default_priority(void);
/* Free the strings of a tls_config. */
void tls_config_free(struct tls_config *cfg);

struct tls_creds;
struct tls_conn;

/* Load the credentials cfg names (mode must not be off).  Returns 0 or
 * -errno with a message naming the file in err. */
int tls_creds_load(struct tls_creds **out, const struct tls_config *cfg, char *err, size_t errlen);
void tls_creds_free(struct tls_creds *creds);

/* A new server session over creds (which must outlive it). Returns 0 or -errno. */
int tls_conn_new(struct tls_conn **out, const struct tls_creds *creds);
void tls_conn_free(struct tls_conn *t);

/* Push records straight to socket fd with a non-blocking sendmsg() while no
 * ciphertext is pending (order is kept: once some is, records are appended
 * behind it).  fd -1: everything goes to the output buffer. */
void tls_conn_set_socket(struct tls_conn *t, int fd);
/* Ciphertext bytes pushed so far: straight to the socket, copied (into the
 * output buffer, or held: a tiny record with more to follow, sent with the
 * next push), and sealed (encrypted by the server into the output buffer,
 * not copied: see tls_conn_write). */
void tls_conn_push_counts(const struct tls_conn *t, uint64_t *direct, uint64_t *buffered, uint64_t *sealed);

/* Where the next received ciphertext may be written, and how much fits
 * (0 when the input buffer is full). */
void *tls_in_space(struct tls_conn *t, size_t *len);
/* n bytes were written at tls_in_space(). */
void tls_in_commit(struct tls_conn *t, size_t n);
/* Bytes may be moved in before the session starts (pipelined by the client). */
int tls_in_put(struct tls_conn *t, const void *p, size_t n);
/* The peer closed its side: reads see end of stream once the input is used. */
void tls_in_eof(struct tls_conn *t);

/* Advance the handshake: 0 when complete and the client was accepted
 * (certificate verified and its DN allowed, when so configured), -EAGAIN
 * when more input is needed, -EACCES when the client was refused, -EPROTO
 * on a TLS failure.  tls_conn_error() says why. */
int tls_conn_handshake(struct tls_conn *t);
/* Decrypt into buf: bytes (> 0), 0 at the end of the stream, -EAGAIN when
 * more input is needed, -EPROTO on a TLS failure. */
ssize_t tls_conn_read(struct tls_conn *t, void *buf, size_t len);
/* Encrypt len bytes (records of at most tls_conn_record_size() bytes) and
 * push them; all are taken.  more: further bytes follow at once (the last
 * record goes with MSG_MORE too).  A write of several records sends the
 * first through GnuTLS, then, on TLS 1.3 with an AEAD cipher or TLS 1.2
 * with AES-GCM, seals the others itself (tls_seal.h) straight from buf into
 * the output buffer; otherwise, or should that fail, GnuTLS makes them all.
 * Returns 0 or -EPROTO. */
int tls_conn_write(struct tls_conn *t, const void *buf, size_t len, bool more);
/* The largest plaintext of one record (16 KiB unless the peer asked less). */
size_t tls_conn_record_size(struct tls_conn *t);
/* Queue a close_notify alert. */
void tls_conn_bye(struct tls_conn *t);
/* Ciphertext waiting to be sent: its length, and *p at its start. */
size_t tls_out_pending(struct tls_conn *t, const void **p);
/* n bytes of tls_out_pending() were sent. */
void tls_out_consumed(struct tls_conn *t, size_t n);

/* After the handshake: the client's identity, or NULL.  The DN of a verified
 * client certificate (RFC 4514 text), or the PSK identity. */
const char *tls_conn_dn(const struct tls_conn *t);
const char *tls_conn_psk_identity(const struct tls_conn *t);
/* The session's gnutls_session_t, for tests that set its record state. */
void *tls_conn_gnutls(struct tls_conn *t);
/* Text of the last failure, for logs ("" when none). */
const char *tls_conn_error(const struct tls_conn *t);
/* Protocol and cipher, for logs. */
const char *tls_conn_description(struct tls_conn *t, char *buf, size_t len);

#endif
