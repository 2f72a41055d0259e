/* test_tls_seal.c: records sealed by the server (server/tls_seal.h, through
 * tls_conn_write) decrypted by a GnuTLS client.  A server session (PSK) and
 * a client session talk over a socketpair, the client in a thread of its
 * own; for each protocol and cipher the server writes large and odd-sized
 * buffers, then a one-record message, and the client compares every byte.
 * On TLS 1.3 the client asks for a KeyUpdate in between: the server's next
 * large write must come under its new key.  The suites sealed here must be
 * sealed (counted), the others left to GnuTLS, and both read back equal.
 * Near the end of 2^24 records (sequence numbers set on both sides) the
 * server leaves the records to GnuTLS, which then updates its key by
 * itself, and sealing resumes under the new key. */
#include <errno.h>
#include <gnutls/gnutls.h>
#include <poll.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>
#include <fcntl.h>

#include "server/tls.h"
#include "tap.h"

#define KEY_HEX "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff"
#define BIG (1u << 20)
#define ODD (3 * 16384 + 123)
#define SMALL 100
#define REC_CT (16384 + 22)                        /* a full TLS 1.3 record */
#define REKEY_SEQ ((UINT64_C(1) << 24) - 256 - 20)   /* 20 records before GnuTLS's window */
#define REKEY_MIB 6

struct client {
  int fd;
  const char *prio;
  bool key_update;
  bool rekey;             /* the 2^24 case: sync, then REKEY_MIB MiB */
  /* results */
  int handshake;
  bool big_ok, odd_ok, small_ok, eof_ok, key_changed;
  char desc[128];
};

static void pattern(uint8_t *b, size_t n, unsigned seed)
{
  uint32_t x = seed * 2654435761u + 1;
  for (size_t i = 0; i < n; i++) {
    x = x * 1103515245u + 12345u;
    b[i] = (uint8_t)(x >> 16);
  }
}

/* Receive exactly n bytes; true when they equal the pattern of seed. */
static bool recv_check(gnutls_session_t s, size_t n, unsigned seed)
{
  uint8_t *want = malloc(n), *got = malloc(n);
  size_t have = 0;
  bool same = false;

  if (!want || !got)
    goto out;
  pattern(want, n, seed);
  while (have < n) {
    ssize_t r = gnutls_record_recv(s, got + have, n - have);
    if (r == GNUTLS_E_AGAIN || r == GNUTLS_E_INTERRUPTED)
      continue;
    if (r <= 0) {
      fprintf(stderr, "# client receive: %s\n", r < 0 ? gnutls_strerror((int)r) : "end of stream");
      goto out;
    }
    have += (size_t)r;
  }
  same = memcmp(want, got, n) == 0;
out:
  free(want);
  free(got);
  return same;
}

static bool read_key(gnutls_session_t s, uint8_t key[32])
{
  gnutls_datum_t k;
  if (gnutls_record_get_state(s, 1, NULL, NULL, &k, NULL) < 0 || k.size > 32)
    return false;
  memset(key, 0, 32);
  memcpy(key, k.data, k.size);
  return true;
}

static void put_seq(uint8_t b[8], uint64_t v)
{
  for (int i = 0; i < 8; i++)
    b[i] = (uint8_t)(v >> (56 - 8 * i));
}

/* The 2^24 case, after the handshake: a byte, then the sequence number set
 * and REKEY_MIB MiB under a key that must change on the way. */
static void client_rekey(struct client *c, gnutls_session_t s)
{
  uint8_t k0[32], k1[32], seq[8], byte;

  while (gnutls_record_recv(s, &byte, 1) == GNUTLS_E_AGAIN)
    ;
  put_seq(seq, REKEY_SEQ);
  gnutls_record_set_state(s, 1, seq);
  read_key(s, k0);
  c->big_ok = recv_check(s, (size_t)REKEY_MIB << 20, 5);
  c->key_changed = read_key(s, k1) && memcmp(k0, k1, 32) != 0;
  c->odd_ok = c->small_ok = true;
  c->eof_ok = gnutls_record_recv(s, &byte, 1) == 0;
}

static void *client_main(void *arg)
{
  struct client *c = arg;
  gnutls_session_t s;
  gnutls_psk_client_credentials_t cred;
  gnutls_datum_t key = { (unsigned char *)KEY_HEX, sizeof KEY_HEX - 1 };
  uint8_t k0[32], k1[32], byte;
  char *d;

  gnutls_psk_allocate_client_credentials(&cred);
  gnutls_psk_set_client_credentials(cred, "alice", &key, GNUTLS_PSK_KEY_HEX);
  gnutls_init(&s, GNUTLS_CLIENT);
  gnutls_priority_set_direct(s, c->prio, NULL);
  gnutls_credentials_set(s, GNUTLS_CRD_PSK, cred);
  gnutls_transport_set_int(s, c->fd);
  do
    c->handshake = gnutls_handshake(s);
  while (c->handshake < 0 && !gnutls_error_is_fatal(c->handshake));
  if (c->handshake < 0)
    goto out;
  d = gnutls_session_get_desc(s);
  snprintf(c->desc, sizeof c->desc, "%s", d);
  gnutls_free(d);
  if (c->rekey) {
    client_rekey(c, s);
    goto out;
  }
  c->big_ok = recv_check(s, BIG, 1);
  c->odd_ok = recv_check(s, ODD, 2);
  read_key(s, k0);
  if (c->key_update)
    gnutls_session_key_update(s, GNUTLS_KU_PEER);
  byte = 'n';
  gnutls_record_send(s, &byte, 1);   /* go on */
  c->big_ok = recv_check(s, BIG, 3) && c->big_ok;
  c->key_changed = read_key(s, k1) && memcmp(k0, k1, 32) != 0;
  c->small_ok = recv_check(s, SMALL, 4);
  c->eof_ok = gnutls_record_recv(s, &byte, 1) == 0;
out:
  gnutls_deinit(s);
  gnutls_psk_free_client_credentials(cred);
  return NULL;
}

/* Send everything the session holds (blocking on poll). */
static int drain(struct tls_conn *t, int fd)
{
  const void *p;
  size_t n;

  while ((n = tls_out_pending(t, &p)) > 0) {
    ssize_t w = send(fd, p, n, MSG_NOSIGNAL);
    if (w > 0) {
      tls_out_consumed(t, (size_t)w);
    } else if (w < 0 && errno == EAGAIN) {
      poll(&(struct pollfd){ .fd = fd, .events = POLLOUT }, 1, 10000);
    } else {
      return -1;
    }
  }
  return 0;
}

/* Wait for ciphertext and move it into the session. */
static int feed(struct tls_conn *t, int fd)
{
  size_t room;
  void *p = tls_in_space(t, &room);
  ssize_t r;

  if (poll(&(struct pollfd){ .fd = fd, .events = POLLIN }, 1, 10000) != 1)
    return -1;
  r = recv(fd, p, room, 0);
  if (r <= 0)
    return -1;
  tls_in_commit(t, (size_t)r);
  return 0;
}

static int write_pattern(struct tls_conn *t, int fd, size_t n, unsigned seed)
{
  uint8_t *b = malloc(n);
  int r = -1;

  if (b) {
    pattern(b, n, seed);
    r = tls_conn_write(t, b, n, false);
    free(b);
  }
  return r == 0 ? drain(t, fd) : -1;
}

static uint64_t sealed_bytes(const struct tls_conn *t)
{
  uint64_t direct, buffered, sealed;
  tls_conn_push_counts(t, &direct, &buffered, &sealed);
  return sealed;
}

/* The 2^24 case: a byte, the sequence number set, then 1 MiB writes. */
static const char *serve_rekey(struct tls_conn *t, int fd, uint64_t *sealed_first)
{
  uint8_t seq[8], byte = 's';

  if (tls_conn_write(t, &byte, 1, false) < 0 || drain(t, fd) < 0)
    return "the first byte";
  put_seq(seq, REKEY_SEQ);
  if (gnutls_record_set_state(tls_conn_gnutls(t), 0, seq) < 0)
    return "gnutls_record_set_state";
  uint8_t *all = malloc((size_t)REKEY_MIB << 20);
  if (!all)
    return "memory";
  pattern(all, (size_t)REKEY_MIB << 20, 5);
  for (unsigned i = 0; i < REKEY_MIB; i++) {
    if (tls_conn_write(t, all + ((size_t)i << 20), BIG, false) < 0 || drain(t, fd) < 0) {
      free(all);
      return "the writes";
    }
    if (i == 0)
      *sealed_first = sealed_bytes(t);
  }
  free(all);
  tls_conn_bye(t);
  return drain(t, fd) < 0 ? "close_notify" : NULL;
}

/* The server's side of one session; returns what failed, or NULL. */
static const char *serve(struct tls_conn *t, int fd, bool rekey, uint64_t *sealed_first)
{
  uint8_t byte;
  int r;

  tls_conn_set_socket(t, fd);
  while ((r = tls_conn_handshake(t)) == -EAGAIN)
    if (drain(t, fd) < 0 || feed(t, fd) < 0)
      return "handshake I/O";
  if (r < 0 || drain(t, fd) < 0)
    return tls_conn_error(t);
  if (rekey)
    return serve_rekey(t, fd, sealed_first);
  if (write_pattern(t, fd, BIG, 1) < 0 || write_pattern(t, fd, ODD, 2) < 0)
    return "first writes";
  while ((r = (int)tls_conn_read(t, &byte, 1)) == -EAGAIN)
    if (drain(t, fd) < 0 || feed(t, fd) < 0)
      return "waiting for the client";
  if (r != 1 || drain(t, fd) < 0)
    return "the client's message";
  if (write_pattern(t, fd, BIG, 3) < 0 || write_pattern(t, fd, SMALL, 4) < 0)
    return "later writes";
  tls_conn_bye(t);
  return drain(t, fd) < 0 ? "close_notify" : NULL;
}

/* The checks of the 2^24 case. */
static void rekey_checks(const struct client *c, uint64_t first, uint64_t sealed)
{
  ok(c->big_ok && c->eof_ok, "... %d MiB across the end of 2^24 records read back equal, then the end", REKEY_MIB);
  ok(first == 19 * (uint64_t)REC_CT, "... the first 1 MiB: 19 records sealed, up to GnuTLS's window (%llu bytes)",
     (unsigned long long)first);
  ok(c->key_changed, "... GnuTLS updated its write key by itself past 2^24 records");
  ok(sealed == (19 + 63) * (uint64_t)REC_CT, "... then sealing resumed under the new key: 63 records of the last MiB (%llu bytes in all)",
     (unsigned long long)sealed);
}

static void one_case(const char *psk_file, const char *prio, bool tls13, bool sealable, bool rekey)
{
  struct tls_config cfg = { .mode = TLS_MODE_REQUIRE, .psk_file = (char *)psk_file, .priority = (char *)prio };
  char err[256], cprio[512];
  struct tls_creds *creds = NULL;
  struct tls_conn *t = NULL;
  struct client c = { .key_update = tls13, .rekey = rekey };
  uint64_t sealed_first = 0;
  pthread_t th;
  int sv[2];
  uint64_t direct, buffered, sealed;
  const char *fail;

  snprintf(cprio, sizeof cprio, "%s:+ECDHE-PSK:+PSK", prio);
  c.prio = cprio;
  if (tls_creds_load(&creds, &cfg, err, sizeof err) < 0 || tls_conn_new(&t, creds) < 0
      || socketpair(AF_UNIX, SOCK_STREAM, 0, sv) < 0) {
    ok(0, "%s: set up (%s)", prio, err);
    return;
  }
  fcntl(sv[0], F_SETFL, fcntl(sv[0], F_GETFL) | O_NONBLOCK);
  c.fd = sv[1];
  pthread_create(&th, NULL, client_main, &c);
  fail = serve(t, sv[0], rekey, &sealed_first);
  if (fail)
    shutdown(sv[0], SHUT_RDWR);   /* the client sees the end instead of waiting */
  pthread_join(th, NULL);
  tls_conn_push_counts(t, &direct, &buffered, &sealed);
  ok(!fail && c.handshake == 0, "%s: session %s served (%s)%s", prio, c.desc, fail ? fail : "ok",
     rekey ? ", sequence numbers set near 2^24" : "");
  if (rekey) {
    rekey_checks(&c, sealed_first, sealed);
    goto out;
  }
  ok(c.big_ok && c.odd_ok && c.small_ok, "... 1 MiB, 3 records + 123 bytes and a small message read back equal");
  ok(c.eof_ok, "... then close_notify, read as the end");
  if (sealable)
    ok(sealed > (2 * BIG + ODD) * 3 / 4 && buffered < 2 * BIG / 4,
       "... most records sealed by the server (sealed %llu, copied %llu)",
       (unsigned long long)sealed, (unsigned long long)buffered);
  else
    ok(sealed == 0, "... none sealed: GnuTLS made them all (copied %llu)", (unsigned long long)buffered);
  if (tls13)
    ok(c.key_changed, "... the client's KeyUpdate changed the server's write key, and the records after it decrypt");
out:
  tls_conn_free(t);
  tls_creds_free(creds);
  close(sv[0]);
  close(sv[1]);
}

int main(void)
{
  char dir[] = "/tmp/test_tls_seal.XXXXXX", path[64];
  FILE *f;

  if (!mkdtemp(dir)) {
    ok(0, "temporary directory");
    return tap_done();
  }
  snprintf(path, sizeof path, "%s/keys.psk", dir);
  f = fopen(path, "w");
  fprintf(f, "alice:%s\n", KEY_HEX);
  fclose(f);
  one_case(path, "NORMAL:-VERS-ALL:+VERS-TLS1.3:-CIPHER-ALL:+AES-128-GCM", true, true, false);
  one_case(path, "NORMAL:-VERS-ALL:+VERS-TLS1.3:-CIPHER-ALL:+CHACHA20-POLY1305", true, true, false);
  one_case(path, "NORMAL:-VERS-ALL:+VERS-TLS1.2:-CIPHER-ALL:+AES-128-GCM", false, true, false);
  one_case(path, "NORMAL:-VERS-ALL:+VERS-TLS1.2:-CIPHER-ALL:+AES-256-GCM", false, true, false);
  one_case(path, "NORMAL:-VERS-ALL:+VERS-TLS1.2:-CIPHER-ALL:+CHACHA20-POLY1305", false, false, false);
  one_case(path, "NORMAL:-VERS-ALL:+VERS-TLS1.2:-CIPHER-ALL:+AES-128-CBC", false, false, false);
  one_case(path, "NORMAL:-VERS-ALL:+VERS-TLS1.3:-CIPHER-ALL:+AES-128-GCM", true, true, true);
  unlink(path);
  rmdir(dir);
  return tap_done();
}
