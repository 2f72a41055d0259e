/* shunt_test.h: bundles the client tests use to configure a libshunt handle
 * and read it back in one go, through the public setters and getters only
 * (the library's structures are opaque). */
#ifndef SHUNT_TESTS_SHUNT_TEST_H
#define SHUNT_TESTS_SHUNT_TEST_H

#include <errno.h>
#include <stdio.h>

#include "shunt/shunt.h"

/* Zero: libshunt's default. */
struct test_opts {
  unsigned connections, reconnect, reconnect_delay_ms, timeout_ms;
  bool no_structured, copy_reads;
};

struct test_stats {
  uint64_t requests, errors, bytes_read, chunks, hole_bytes, payload_bytes_copied, reconnects,
           retried, receive_calls, failovers;
};

struct test_info {
  uint64_t size;
  bool structured, extended, block_status, can_multi_conn, used_export_name, can_flush,
       can_trim;
  unsigned connections;
};

/* shunt_create + the setters o asks for + shunt_connect_uri.  On failure *hp
 * is NULL and err has the message. */
static inline int test_connect(struct shunt_handle **hp, const char *uri,
                               const struct test_opts *o, char *err, size_t errlen)
{
  struct shunt_handle *h = shunt_create();
  int r = h ? 0 : -ENOMEM;
  *hp = NULL;
  if (r == 0 && o && o->connections)
    r = shunt_set_connections(h, o->connections);
  if (r == 0 && o && o->reconnect)
    r = shunt_set_reconnect(h, o->reconnect, o->reconnect_delay_ms);
  if (r == 0 && o && o->timeout_ms)
    r = shunt_set_timeout(h, o->timeout_ms);
  if (r == 0 && o && o->no_structured)
    r = shunt_set_request_structured_replies(h, false);
  if (r == 0 && o && o->copy_reads)
    r = shunt_set_copy_reads(h, true);
  if (r == 0)
    r = shunt_connect_uri(h, uri);
  if (r < 0) {
    snprintf(err, errlen, "%s", h ? shunt_last_error(h) : "out of memory");
    shunt_close(h);
    return r;
  }
  *hp = h;
  return 0;
}

static inline void test_get_stats(const struct shunt_handle *h, struct test_stats *s)
{
  s->requests = shunt_get_stat(h, SHUNT_STAT_REQUESTS);
  s->errors = shunt_get_stat(h, SHUNT_STAT_ERRORS);
  s->bytes_read = shunt_get_stat(h, SHUNT_STAT_BYTES_READ);
  s->chunks = shunt_get_stat(h, SHUNT_STAT_CHUNKS);
  s->hole_bytes = shunt_get_stat(h, SHUNT_STAT_HOLE_BYTES);
  s->payload_bytes_copied = shunt_get_stat(h, SHUNT_STAT_PAYLOAD_BYTES_COPIED);
  s->reconnects = shunt_get_stat(h, SHUNT_STAT_RECONNECTS);
  s->retried = shunt_get_stat(h, SHUNT_STAT_RETRIED);
  s->receive_calls = shunt_get_stat(h, SHUNT_STAT_RECEIVE_CALLS);
  s->failovers = shunt_get_stat(h, SHUNT_STAT_FAILOVERS);
}

static inline struct test_info test_get_info(const struct shunt_handle *h)
{
  struct test_info i = {
    .size = (uint64_t)shunt_get_size(h),
    .structured = shunt_get_flag(h, SHUNT_HAS_STRUCTURED_REPLIES) == 1,
    .extended = shunt_get_flag(h, SHUNT_HAS_EXTENDED_HEADERS) == 1,
    .block_status = shunt_get_flag(h, SHUNT_HAS_META_CONTEXT) == 1,
    .can_multi_conn = shunt_get_flag(h, SHUNT_CAN_MULTI_CONN) == 1,
    .used_export_name = shunt_get_flag(h, SHUNT_USED_EXPORT_NAME) == 1,
    .can_flush = shunt_get_flag(h, SHUNT_CAN_FLUSH) == 1,
    .can_trim = shunt_get_flag(h, SHUNT_CAN_TRIM) == 1,
    .connections = shunt_get_connections(h),
  };
  return i;
}

#endif
