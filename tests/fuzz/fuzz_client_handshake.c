/* fuzz_client_handshake.c: libFuzzer harness for libshunt's side of the
 * handshake (src/client/handshake.c: sh_handshake, sh_list) against a hostile
 * server.  The transport is replaced by the fuzzer's bytes (reads) and a sink
 * (writes); everything else is the real code, used the way handle.c uses it
 * (on failure the caller frees nothing, so a leak there is a finding).
 * Input: byte 0 = bit 0 structured, bit 1 extended, bit 2 block status,
 * bit 3 LIST instead of a handshake, bit 4 an empty export name;
 * the rest = the server's bytes, greeting first. */
#include <errno.h>
#include <stdio.h>

#include "client/handshake.h"
#include "client/transport.h"
#include "fuzz_common.h"

static const uint8_t *srv;
static size_t srv_len;

int sh_transport_read_full(struct sh_transport *t, void *buf, size_t len)
{
  (void)t;
  if (len > srv_len) {
    srv_len = 0;
    return -ECONNRESET;
  }
  memcpy(buf, srv, len);
  srv += len;
  srv_len -= len;
  return 0;
}

int sh_transport_write_full(struct sh_transport *t, const void *buf, size_t len)
{
  (void)t;
  /* Touch every byte the client sends, so ASan checks its buffers. */
  volatile uint8_t sink = 0;
  for (size_t i = 0; i < len; i++)
    sink ^= ((const uint8_t *)buf)[i];
  (void)sink;
  return 0;
}

/* Only for an error message: the fuzzer's bytes are all read through
 * sh_transport_read_full. */
ssize_t sh_transport_read_ready(struct sh_transport *t, void *buf, size_t len)
{
  (void)t; (void)buf; (void)len;
  return 0;
}

/* No socket: the greeting's shorter timeout has nothing to apply to. */
int sh_transport_set_timeout(struct sh_transport *t, unsigned timeout_ms)
{
  t->timeout_ms = timeout_ms;
  return 0;
}

/* The harness negotiates without TLS, so STARTTLS is never reached; if the
 * client ever calls it here, the negotiation fails as it would without GnuTLS. */
int sh_transport_starttls(struct sh_transport *t, char *err, size_t errlen)
{
  (void)t;
  snprintf(err, errlen, "TLS is not part of this harness");
  return -ENOTSUP;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
  struct sh_transport t = { .fd = -1 };
  char err[512];
  int r;

  if (size < 1)
    return 0;
  srv = data + 1;
  srv_len = size - 1;
  err[0] = '\0';
  if (data[0] & 8) {
    char **names, **descs;
    size_t n;
    r = sh_list(&t, &names, &descs, &n, err, sizeof err);
    if (r == 0) {
      for (size_t i = 0; i < n; i++) {
        FUZZ_CHECK(names[i] != NULL);
        free(names[i]);
        free(descs[i]);
      }
      free(names);
      free(descs);
    } else {
      FUZZ_CHECK(r < 0 && names == NULL && descs == NULL && n == 0);
    }
    return 0;
  }
  static char *const metas[] = { "base:allocation", "qemu:allocation-depth" };
  struct sh_want w = {
    .export_name = (data[0] & 16) ? "" : "disk",
    .structured = data[0] & 1, .extended = data[0] & 2,
    .metas = metas, .nmetas = (data[0] & 4) ? 1 + !!(data[0] & 32) : 0,
  };
  struct sh_negotiated neg;
  r = sh_handshake(&t, &w, &neg, err, sizeof err);
  if (r == 0) {
    FUZZ_CHECK(neg.min_block > 0 && neg.max_block > 0);
    FUZZ_CHECK(neg.eflags & NBD_FLAG_HAS_FLAGS);
    FUZZ_CHECK(!neg.extended || neg.structured);
    FUZZ_CHECK(!neg.have_meta || neg.structured);
    sh_negotiated_free(&neg);
  } else {
    FUZZ_CHECK(r < 0 && err[0] != '\0');
  }
  return 0;
}
