/* options.c: libshunt's setters (the configuration a handle connects with)
 * and getters (what negotiation produced, the counters).  Setters work only
 * before connecting; getters return -ENOTCONN (or NULL) before. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "client/client.h"
#include "proto/nbd-protocol.h"

#define META_NAME_MAX 4096

int sh_options_init(struct shunt_handle *h)
{
  h->opt.connections = 1;
  h->opt.timeout_ms = 30000;
  h->opt.reconnect_delay_ms = 100;
  h->opt.tls_verify_peer = -1;
  if (!(h->metas[0] = strdup("base:allocation")))
    return -ENOMEM;
  h->nmetas = 1;
  return 0;
}

void sh_options_free(struct shunt_handle *h)
{
  for (unsigned i = 0; i < h->nmetas; i++)
    free(h->metas[i]);
  h->nmetas = 0;
  for (unsigned i = 0; i < h->opt.nalt; i++)
    free(h->opt.alt_uris[i]);
  h->opt.nalt = 0;
  free(h->opt.export_name);
  free(h->opt.tls_psk_file);
  free(h->opt.tls_certificates);
}

/* Lock h for a setter; -EISCONN once connected (then unlocked). */
static int set_begin(struct shunt_handle *h)
{
  sh_lock(h);
  if (h->connected) {
    sh_set_error(h, "the handle is connected: its configuration is fixed");
    sh_unlock(h);
    return -EISCONN;
  }
  return 0;
}

static int set_end(struct shunt_handle *h, int r)
{
  sh_unlock(h);
  return r;
}

int shunt_set_connections(struct shunt_handle *h, unsigned n)
{
  int r = set_begin(h);
  if (r < 0)
    return r;
  if (n == 0 || n > SH_MAX_CONNECTIONS)
    return set_end(h, -EINVAL);
  h->opt.connections = n;
  return set_end(h, 0);
}

int shunt_set_request_structured_replies(struct shunt_handle *h, bool on)
{
  int r = set_begin(h);
  if (r < 0)
    return r;
  h->opt.no_structured = !on;
  return set_end(h, 0);
}

int shunt_set_request_extended_headers(struct shunt_handle *h, bool on)
{
  int r = set_begin(h);
  if (r < 0)
    return r;
  h->opt.no_extended = !on;
  return set_end(h, 0);
}

int shunt_add_meta_context(struct shunt_handle *h, const char *name)
{
  int r = set_begin(h);
  if (r < 0)
    return r;
  if (!name || !*name || strlen(name) > META_NAME_MAX || h->nmetas == SH_MAX_META)
    return set_end(h, -EINVAL);
  for (unsigned i = 0; i < h->nmetas; i++)
    if (!strcmp(h->metas[i], name))
      return set_end(h, 0);
  if (!(h->metas[h->nmetas] = strdup(name)))
    return set_end(h, -ENOMEM);
  h->nmetas++;
  return set_end(h, 0);
}

int shunt_clear_meta_contexts(struct shunt_handle *h)
{
  int r = set_begin(h);
  if (r < 0)
    return r;
  for (unsigned i = 0; i < h->nmetas; i++)
    free(h->metas[i]);
  h->nmetas = 0;
  return set_end(h, 0);
}

int shunt_set_reconnect(struct shunt_handle *h, unsigned attempts, unsigned delay_ms)
{
  int r = set_begin(h);
  if (r < 0)
    return r;
  h->opt.reconnect = attempts;
  h->opt.reconnect_delay_ms = delay_ms ? delay_ms : 100;
  return set_end(h, 0);
}

int shunt_set_reconnect_deadline(struct shunt_handle *h, unsigned deadline_ms)
{
  int r = set_begin(h);
  if (r < 0)
    return r;
  h->opt.reconnect_deadline_ms = deadline_ms;
  return set_end(h, 0);
}

int shunt_add_uri(struct shunt_handle *h, const char *uri)
{
  int r = set_begin(h);
  if (r < 0)
    return r;
  if (!uri || h->opt.nalt == SH_MAX_URIS - 1)
    return set_end(h, -EINVAL);
  if (!(h->opt.alt_uris[h->opt.nalt] = strdup(uri)))
    return set_end(h, -ENOMEM);
  h->opt.nalt++;
  return set_end(h, 0);
}

int shunt_set_timeout(struct shunt_handle *h, unsigned timeout_ms)
{
  int r = set_begin(h);
  if (r < 0)
    return r;
  if (timeout_ms == 0)
    return set_end(h, -EINVAL);
  h->opt.timeout_ms = timeout_ms;
  return set_end(h, 0);
}

int shunt_set_copy_reads(struct shunt_handle *h, bool on)
{
  int r = set_begin(h);
  if (r < 0)
    return r;
  h->opt.copy_reads = on;
  return set_end(h, 0);
}

/* Replace *slot with a copy of value (NULL: unset). */
static int set_string(struct shunt_handle *h, char **slot, const char *value)
{
  int r = set_begin(h);
  if (r < 0)
    return r;
  char *copy = NULL;
  if (value && !(copy = strdup(value)))
    return set_end(h, -ENOMEM);
  free(*slot);
  *slot = copy;
  return set_end(h, 0);
}

int shunt_set_export_name(struct shunt_handle *h, const char *name)
{
  if (name && strlen(name) > NBD_MAX_STRING)
    return -EINVAL;
  return set_string(h, &h->opt.export_name, name);
}

int shunt_set_tls_psk_file(struct shunt_handle *h, const char *path)
{
  return set_string(h, &h->opt.tls_psk_file, path);
}

int shunt_set_tls_certificates(struct shunt_handle *h, const char *dir)
{
  return set_string(h, &h->opt.tls_certificates, dir);
}

int shunt_set_tls_verify_peer(struct shunt_handle *h, bool verify)
{
  int r = set_begin(h);
  if (r < 0)
    return r;
  h->opt.tls_verify_peer = verify;
  return set_end(h, 0);
}

/* ---- Getters ---- */

/* What negotiation produced is fixed once connected: read without the lock. */
int64_t shunt_get_size(const struct shunt_handle *h)
{
  return h->connected ? (int64_t)h->info.size : -ENOTCONN;
}

int shunt_get_transmission_flags(const struct shunt_handle *h)
{
  return h->connected ? h->info.eflags : -ENOTCONN;
}

int shunt_get_flag(const struct shunt_handle *h, enum shunt_flag f)
{
  const struct sh_info *i = &h->info;
  if (!h->connected)
    return -ENOTCONN;
  switch (f) {
  case SHUNT_IS_READ_ONLY: return i->read_only;
  case SHUNT_CAN_FLUSH: return i->can_flush;
  case SHUNT_CAN_FUA: return i->can_fua;
  case SHUNT_CAN_TRIM: return i->can_trim;
  case SHUNT_CAN_ZERO: return i->can_zero;
  case SHUNT_CAN_FAST_ZERO: return i->can_fast_zero;
  case SHUNT_CAN_DF: return i->can_df;
  case SHUNT_CAN_MULTI_CONN: return i->can_multi_conn;
  case SHUNT_CAN_CACHE: return i->can_cache;
  case SHUNT_IS_ROTATIONAL: return i->rotational;
  case SHUNT_HAS_STRUCTURED_REPLIES: return i->structured;
  case SHUNT_HAS_EXTENDED_HEADERS: return i->extended;
  case SHUNT_HAS_META_CONTEXT: return i->block_status;
  case SHUNT_USED_EXPORT_NAME: return i->used_export_name;
  }
  return -EINVAL;
}

int64_t shunt_get_block_size(const struct shunt_handle *h, enum shunt_block_size which)
{
  if (!h->connected)
    return -ENOTCONN;
  switch (which) {
  case SHUNT_BLOCK_MIN: return h->info.min_block;
  case SHUNT_BLOCK_PREFERRED: return h->info.pref_block;
  case SHUNT_BLOCK_MAX: return h->info.max_block;
  }
  return -EINVAL;
}

int shunt_can_meta_context(const struct shunt_handle *h, const char *name)
{
  if (!h->connected)
    return -ENOTCONN;
  for (unsigned i = 0; name && i < h->nmetas; i++)
    if (!strcmp(h->metas[i], name))
      return h->neg.meta_ok[i];
  return 0;
}

const char *shunt_get_export_name(const struct shunt_handle *h)
{
  return h->connected ? h->info.export_name : NULL;
}

const char *shunt_get_description(const struct shunt_handle *h)
{
  return h->connected ? h->info.description : NULL;
}

const char *shunt_get_uri(const struct shunt_handle *h)
{
  return h->connected ? h->info.server : NULL;
}

unsigned shunt_get_connections(const struct shunt_handle *h)
{
  struct shunt_handle *m = (struct shunt_handle *)h;
  sh_lock(m);
  unsigned n = h->nconns;
  sh_unlock(m);
  return n;
}

uint64_t shunt_get_stat(const struct shunt_handle *h, enum shunt_stat which)
{
  struct shunt_handle *m = (struct shunt_handle *)h;
  const struct sh_stats *s = &h->stats;
  uint64_t v = 0;
  sh_lock(m);
  switch (which) {
  case SHUNT_STAT_REQUESTS: v = s->requests; break;
  case SHUNT_STAT_ERRORS: v = s->errors; break;
  case SHUNT_STAT_BYTES_READ: v = s->bytes_read; break;
  case SHUNT_STAT_BYTES_WRITTEN: v = s->bytes_written; break;
  case SHUNT_STAT_PAYLOAD_BYTES_COPIED: v = s->payload_bytes_copied; break;
  case SHUNT_STAT_HOLE_BYTES: v = s->hole_bytes; break;
  case SHUNT_STAT_CHUNKS: v = s->chunks; break;
  case SHUNT_STAT_RECONNECTS: v = s->reconnects; break;
  case SHUNT_STAT_RETRIED: v = s->retried; break;
  case SHUNT_STAT_RECEIVE_CALLS: v = s->receive_calls; break;
  case SHUNT_STAT_FAILOVERS: v = s->failovers; break;
  }
  sh_unlock(m);
  return v;
}

uint64_t shunt_payload_bytes_copied(const struct shunt_handle *h)
{
  return shunt_get_stat(h, SHUNT_STAT_PAYLOAD_BYTES_COPIED);
}
