/* tls_seal.h: application data records of a GnuTLS session encrypted by the
 * server itself ("sealed"), straight from where the plaintext lies into the
 * caller's buffer, with the session's current write key and sequence number,
 * which it then advances as if GnuTLS had sent the records.  GnuTLS's own
 * record_send costs a buffer of its own per record and a copy of the
 * ciphertext out of it; a sealed run of records costs one pass of the
 * cipher.  Only the AEAD record formats: TLS 1.3 with AES-128-GCM,
 * AES-256-GCM or ChaCha20-Poly1305, and TLS 1.2 with AES-GCM (an explicit
 * nonce).  Anything else is left to GnuTLS: tls_seal() then seals nothing.
 *
 * The caller must make sure GnuTLS owes nothing before sealed records: no
 * corked data, nothing of its own queued (a KeyUpdate it must send before
 * the next application data, the one a peer's KeyUpdate may ask for, goes
 * out with its next record_send).  tls.c sends one record of each large
 * write through gnutls_record_send() first, then seals the rest; the
 * session's state is read again at every call, so a key GnuTLS changed in
 * between is used. */
#ifndef SHUNT_SERVER_TLS_SEAL_H
#define SHUNT_SERVER_TLS_SEAL_H

#include <gnutls/crypto.h>
#include <gnutls/gnutls.h>
#include <stddef.h>
#include <stdint.h>

/* The cipher a session's write key was last set up in (zeroed: none yet). */
struct tls_seal {
  gnutls_aead_cipher_hd_t h;
  gnutls_cipher_algorithm_t alg;
  uint8_t key[32];
  unsigned key_len;
};

/* The largest ciphertext tls_seal() makes of len plaintext bytes cut into
 * records of at most rec bytes (headers, nonces, content types and tags). */
size_t tls_seal_room(size_t len, size_t rec);

/* Seal the plaintext [p, p + len) as the session's next application data
 * records, each of at most rec bytes of plaintext (the session's record
 * size), into out, which has room for tls_seal_room(len, rec) bytes.  The
 * session's write sequence number is advanced by the records made.  Returns
 * the plaintext bytes sealed (len, or 0 when the session's protocol or
 * cipher is not one sealed here, or its state cannot be read; fewer only if
 * the cipher fails midway: those records are whole and counted), with the
 * ciphertext's length in *olen.  Records numbered in the last 256 of every
 * 2^24 are not sealed (fewer bytes are, or none): GnuTLS must send them
 * itself to see when its automatic TLS 1.3 key update is due. */
size_t tls_seal(struct tls_seal *z, gnutls_session_t s, const void *p, size_t len, size_t rec, void *out,
                size_t *olen);

/* Release the cipher (z may be reused: it is zeroed). */
void tls_seal_fini(struct tls_seal *z);

#endif
