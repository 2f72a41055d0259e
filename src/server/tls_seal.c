/* tls_seal.c: application data records encrypted outside GnuTLS with the
 * session's write state (see tls_seal.h).
 *
 * TLS 1.3 (RFC 8446, 5.2 and 5.3): a record is the header (type 23, legacy
 * version 3.3, length of what follows), then the AEAD ciphertext of the
 * plaintext followed by its real content type (23: no padding), then the
 * tag.  The nonce is the 12-byte write IV with the 64-bit sequence number
 * XORed into its last 8 bytes; the additional data is the record header.
 *
 * TLS 1.2 with AES-GCM (RFC 5288): the header, an 8-byte explicit nonce
 * (the sequence number, which makes it unique, as GnuTLS does), then the
 * ciphertext of the plaintext and the tag.  The nonce is the 4-byte
 * implicit salt (the state's IV) followed by the explicit part; the
 * additional data is the sequence number, type, version and the
 * plaintext's length. */
#include <stdbool.h>
#include <string.h>

#include "server/tls_seal.h"

#define REC_HDR 5          /* type, version, length */
#define REC_TAG 16         /* every AEAD here: a 16-byte tag */
#define REC_EXPLICIT 8     /* TLS 1.2 AES-GCM's explicit nonce */
#define REC_MAX 16384      /* the largest plaintext of a record */
#define CT_APPDATA 23
/* GnuTLS hands each piece of a gathered plaintext to the cipher as it is;
 * ChaCha20-Poly1305 takes a piece that is not whole 64-byte blocks only as
 * the last (a record's data then its type byte would be wrong).  A record
 * whose data is not whole blocks is copied and sealed in one piece. */
#define REC_BLOCK 64
/* GnuTLS updates its TLS 1.3 write key by itself after 2^24 records: it
 * schedules the KeyUpdate when a record it sends leaves the sequence number
 * at 0xfffffd modulo 2^24 (then sends it before its next record).  The last
 * REKEY_WINDOW numbers of every 2^24 are left to GnuTLS so that it sees
 * that number go by. */
#define REKEY_PERIOD (UINT64_C(1) << 24)
#define REKEY_WINDOW 256u

enum seal_format { SEAL_NONE, SEAL_TLS13, SEAL_TLS12_GCM };

static void put_be64(uint8_t *b, uint64_t v)
{
  for (int i = 0; i < 8; i++)
    b[i] = (uint8_t)(v >> (56 - 8 * i));
}

static uint64_t get_be64(const uint8_t *b)
{
  uint64_t v = 0;
  for (int i = 0; i < 8; i++)
    v = v << 8 | b[i];
  return v;
}

static void put_header(uint8_t *h, size_t body)
{
  h[0] = CT_APPDATA;
  h[1] = 3;
  h[2] = 3;
  h[3] = (uint8_t)(body >> 8);
  h[4] = (uint8_t)body;
}

/* Which record format the session's protocol and cipher use here. */
static enum seal_format format_of(gnutls_session_t s, gnutls_cipher_algorithm_t *alg)
{
  gnutls_protocol_t v = gnutls_protocol_get_version(s);
  bool gcm;

  *alg = gnutls_cipher_get(s);
  gcm = *alg == GNUTLS_CIPHER_AES_128_GCM || *alg == GNUTLS_CIPHER_AES_256_GCM;
  if (v == GNUTLS_TLS1_3 && (gcm || *alg == GNUTLS_CIPHER_CHACHA20_POLY1305))
    return SEAL_TLS13;
  if (v == GNUTLS_TLS1_2 && gcm)
    return SEAL_TLS12_GCM;
  return SEAL_NONE;
}

size_t tls_seal_room(size_t len, size_t rec)
{
  size_t n = rec ? (len + rec - 1) / rec : 0;
  return len + n * (REC_HDR + REC_EXPLICIT + 1 + REC_TAG);
}

void tls_seal_fini(struct tls_seal *z)
{
  if (z->h)
    gnutls_aead_cipher_deinit(z->h);
  memset(z, 0, sizeof *z);
}

/* The cipher keyed with key, set up again only when the key changed (a
 * KeyUpdate, or the first call).  Returns 0 or -1. */
static int setup(struct tls_seal *z, gnutls_cipher_algorithm_t alg, const gnutls_datum_t *key)
{
  if (z->h && z->alg == alg && z->key_len == key->size && !memcmp(z->key, key->data, key->size))
    return 0;
  tls_seal_fini(z);
  if (key->size == 0 || key->size > sizeof z->key)
    return -1;
  if (gnutls_aead_cipher_init(&z->h, alg, key) < 0) {
    z->h = NULL;
    return -1;
  }
  z->alg = alg;
  memcpy(z->key, key->data, key->size);
  z->key_len = key->size;
  return 0;
}

/* One record of k plaintext bytes at p, sequence number seq, into out.
 * Returns its length, or 0 when the cipher failed. */
static size_t seal_one(const struct tls_seal *z, enum seal_format f, const uint8_t *iv, uint64_t seq,
                       const uint8_t *p, size_t k, uint8_t *out)
{
  uint8_t nonce[12], ad[13], type = CT_APPDATA;
  giovec_t in[2] = { { (void *)p, k }, { &type, 1 } };
  giovec_t aad;
  size_t body, clen;
  int r;

  if (f == SEAL_TLS13) {
    body = k + 1 + REC_TAG;
    memcpy(nonce, iv, 12);
    for (int i = 0; i < 8; i++)
      nonce[4 + i] ^= (uint8_t)(seq >> (56 - 8 * i));
    put_header(out, body);
    aad = (giovec_t){ out, REC_HDR };
    if (k % REC_BLOCK) {
      /* A short record: the plaintext and its type copied, sealed in place. */
      giovec_t one = { out + REC_HDR, k + 1 };
      memcpy(out + REC_HDR, p, k);
      out[REC_HDR + k] = CT_APPDATA;
      size_t tag = REC_TAG;
      r = gnutls_aead_cipher_encryptv2(z->h, nonce, 12, &aad, 1, &one, 1, out + REC_HDR + k + 1, &tag);
      return r == 0 && tag == REC_TAG ? REC_HDR + body : 0;
    }
    clen = body;
    r = gnutls_aead_cipher_encryptv(z->h, nonce, 12, &aad, 1, REC_TAG, in, 2, out + REC_HDR, &clen);
    return r == 0 && clen == body ? REC_HDR + body : 0;
  }
  body = REC_EXPLICIT + k + REC_TAG;
  memcpy(nonce, iv, 4);
  put_be64(nonce + 4, seq);
  put_header(out, body);
  memcpy(out + REC_HDR, nonce + 4, REC_EXPLICIT);
  put_be64(ad, seq);
  memcpy(ad + 8, out, 3);   /* type and version */
  ad[11] = (uint8_t)(k >> 8);
  ad[12] = (uint8_t)k;
  aad = (giovec_t){ ad, sizeof ad };
  clen = k + REC_TAG;
  r = gnutls_aead_cipher_encryptv(z->h, nonce, 12, &aad, 1, REC_TAG, in, 1, out + REC_HDR + REC_EXPLICIT,
                                  &clen);
  return r == 0 && clen == k + REC_TAG ? REC_HDR + body : 0;
}

size_t tls_seal(struct tls_seal *z, gnutls_session_t s, const void *p, size_t len, size_t rec, void *out,
                size_t *olen)
{
  gnutls_cipher_algorithm_t alg;
  enum seal_format f = format_of(s, &alg);
  gnutls_datum_t iv, key;
  uint8_t seqb[8], *o = out;
  const uint8_t *in = p;
  size_t done = 0, nrec;
  uint64_t seq;

  *olen = 0;
  if (f == SEAL_NONE || rec == 0 || rec > REC_MAX || len == 0)
    return 0;
  if (gnutls_record_get_state(s, 0, NULL, &iv, &key, seqb) < 0)
    return 0;
  if (iv.size != (f == SEAL_TLS13 ? 12u : 4u) || setup(z, alg, &key) < 0)
    return 0;
  seq = get_be64(seqb);
  nrec = (len + rec - 1) / rec;
  if (seq >= UINT64_MAX - nrec)
    return 0;   /* the end of the sequence numbers is GnuTLS's to handle */
  if (seq % REKEY_PERIOD >= REKEY_PERIOD - REKEY_WINDOW)
    return 0;
  if (nrec > REKEY_PERIOD - REKEY_WINDOW - seq % REKEY_PERIOD)
    len = (REKEY_PERIOD - REKEY_WINDOW - seq % REKEY_PERIOD) * rec;
  while (done < len) {
    size_t k = len - done < rec ? len - done : rec;
    size_t n = seal_one(z, f, iv.data, seq, in + done, k, o);
    if (n == 0)
      break;
    o += n;
    done += k;
    seq++;
  }
  put_be64(seqb, seq);
  if (done && gnutls_record_set_state(s, 0, seqb) < 0)
    return 0;
  *olen = (size_t)(o - (uint8_t *)out);
  return done;
}
