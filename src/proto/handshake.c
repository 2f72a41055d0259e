/* handshake.c: fixed-newstyle option haggling ("Option haggling" in the NBD
 * spec), as a pure state machine over a byte stream.  Every length is checked
 * against the bytes actually present before it is used. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "common/wire.h"
#include "proto/handshake.h"
#include "proto/nbd-protocol.h"
#include "proto/option.h"

static const char base_allocation[] = "base:allocation";

int proto_buf_append(struct proto_buf *b, const void *p, size_t n)
{
  if (n > b->cap - b->len) {
    size_t cap = b->cap ? b->cap : 256;
    while (cap - b->len < n) {
      if (cap > SIZE_MAX / 2)
        return -ENOMEM;
      cap *= 2;
    }
    uint8_t *d = realloc(b->data, cap);
    if (!d)
      return -ENOMEM;
    b->data = d;
    b->cap = cap;
  }
  if (n)
    memcpy(b->data + b->len, p, n);
  b->len += n;
  return 0;
}

void proto_buf_free(struct proto_buf *b)
{
  free(b->data);
  b->data = NULL;
  b->len = b->cap = 0;
}

uint16_t proto_export_eflags(const struct proto_export *ex, bool structured_or_extended)
{
  uint16_t f = NBD_FLAG_HAS_FLAGS;

  if (ex->read_only)
    f |= NBD_FLAG_READ_ONLY;
  if (ex->can_flush)
    f |= NBD_FLAG_SEND_FLUSH;
  if (ex->rotational)
    f |= NBD_FLAG_ROTATIONAL;
  if (!ex->read_only) {
    if (ex->can_fua)
      f |= NBD_FLAG_SEND_FUA;
    if (ex->can_trim)
      f |= NBD_FLAG_SEND_TRIM;
    if (ex->can_zero) {
      f |= NBD_FLAG_SEND_WRITE_ZEROES;
      if (ex->can_fast_zero)
        f |= NBD_FLAG_SEND_FAST_ZERO;
    }
  }
  if (structured_or_extended)
    f |= NBD_FLAG_SEND_DF;
  if (ex->can_multi_conn)
    f |= NBD_FLAG_CAN_MULTI_CONN;
  if (ex->can_cache)
    f |= NBD_FLAG_SEND_CACHE;
  return f;
}

void proto_hs_init(struct proto_hs *hs, const struct proto_export *exports, size_t nexports)
{
  memset(hs, 0, sizeof *hs);
  hs->stage = PROTO_HS_CLIENT_FLAGS;
  hs->exports = exports;
  hs->nexports = nexports;
}

void proto_hs_tls_started(struct proto_hs *hs)
{
  hs->tls_active = true;
  hs->structured = hs->extended = false;
  hs->meta_set = hs->meta_base_allocation = false;
  hs->stage = PROTO_HS_OPTION;
}

int proto_hs_greeting(struct proto_buf *out)
{
  uint8_t g[PROTO_GREETING_SIZE];

  proto_greeting_encode(g, NBD_FLAG_FIXED_NEWSTYLE | NBD_FLAG_NO_ZEROES);
  return proto_buf_append(out, g, sizeof g);
}

long proto_find_export(const struct proto_export *exports, size_t n,
                       const char *name, size_t namelen)
{
  for (size_t i = 0; i < n; i++)
    if (strlen(exports[i].name) == namelen && !memcmp(exports[i].name, name, namelen))
      return (long)i;
  /* "A special, empty, name is reserved for a default export": the first one. */
  if (namelen == 0 && n > 0)
    return 0;
  return -1;
}

/* This client's access to export i (PROTO_ACCESS_RW when no rules apply). */
static enum proto_access export_access(const struct proto_hs *hs, size_t i)
{
  return hs->access ? (enum proto_access)hs->access[i] : PROTO_ACCESS_RW;
}

/* The export a name selects for this client: an export it may not use is
 * treated as absent, so that its existence does not leak; the empty name
 * selects an export named "" if visible, else the first visible one. */
static long find_export(const struct proto_hs *hs, const char *name, size_t namelen)
{
  long idx = proto_find_export(hs->exports, hs->nexports, name, namelen);

  if (idx >= 0 && namelen == 0 && hs->exports[idx].name[0] != '\0')
    idx = -1;   /* the first-export default: chosen below among visible ones */
  if (idx >= 0)
    return export_access(hs, (size_t)idx) == PROTO_ACCESS_DENIED ? -1 : idx;
  if (namelen == 0)
    for (size_t i = 0; i < hs->nexports; i++)
      if (export_access(hs, i) != PROTO_ACCESS_DENIED)
        return (long)i;
  return -1;
}

/* Transmission flags for export idx, read-only when this client's rule says so. */
static uint16_t export_eflags(const struct proto_hs *hs, size_t idx)
{
  struct proto_export ex = hs->exports[idx];

  if (export_access(hs, idx) == PROTO_ACCESS_RO)
    ex.read_only = true;
  return proto_export_eflags(&ex, hs->structured || hs->extended);
}

/* Append one option reply: header, then len bytes of data. */
static int reply(struct proto_buf *out, uint32_t opt, uint32_t type, const void *data, uint32_t len)
{
  uint8_t h[PROTO_OPT_REPLY_SIZE];
  int r;

  proto_opt_reply_encode(h, opt, type, len);
  if ((r = proto_buf_append(out, h, sizeof h)) < 0)
    return r;
  return proto_buf_append(out, data, len);
}

/* An error reply carrying a human-readable message, as libnbd displays it. */
static int reply_err(struct proto_buf *out, uint32_t opt, uint32_t type, const char *msg)
{
  return reply(out, opt, type, msg, (uint32_t)strlen(msg));
}

static int reply_info(struct proto_buf *out, uint32_t opt, uint16_t info, const void *data, uint32_t len)
{
  uint8_t buf[2 + 4096];

  put_be16(buf, info);
  memcpy(buf + 2, data, len);
  return reply(out, opt, NBD_REP_INFO, buf, 2 + len);
}

static int opt_list(struct proto_hs *hs, uint32_t opt, uint32_t len, struct proto_buf *out)
{
  int r;

  if (len != 0)
    return reply_err(out, opt, NBD_REP_ERR_INVALID, "NBD_OPT_LIST takes no data");
  for (size_t i = 0; i < hs->nexports; i++) {
    uint8_t buf[4 + 2 * 4096];
    if (export_access(hs, i) == PROTO_ACCESS_DENIED)
      continue;
    const char *desc = hs->exports[i].description;
    size_t n = strlen(hs->exports[i].name), d = desc ? strnlen(desc, 4096) : 0;
    put_be32(buf, (uint32_t)n);
    memcpy(buf + 4, hs->exports[i].name, n);
    /* "the rest of the data contains some implementation-specific details":
     * the description, as nbdkit sends it and libnbd reads it. */
    if (d)
      memcpy(buf + 4 + n, desc, d);
    if ((r = reply(out, opt, NBD_REP_SERVER, buf, (uint32_t)(4 + n + d))) < 0)
      return r;
  }
  return reply(out, opt, NBD_REP_ACK, NULL, 0);
}

/* Enter transmission: fill in the session. */
static void choose_export(struct proto_hs *hs, size_t idx, bool strict)
{
  const struct proto_export *ex = &hs->exports[idx];

  hs->session.export = ex;
  hs->session.export_index = idx;
  hs->session.structured = hs->structured && !hs->extended;
  hs->session.extended = hs->extended;
  hs->session.eflags = export_eflags(hs, idx);
  hs->session.meta_base_allocation = hs->meta_set && hs->meta_base_allocation
                                     && hs->meta_export == idx && ex->base_allocation;
  hs->session.strict_block_size = strict;
  hs->stage = PROTO_HS_DONE;
}

/* Remember a name that selected no export, for the caller's log. */
static void note_refused(struct proto_hs *hs, const uint8_t *name, size_t len)
{
  size_t n = len < sizeof hs->refused_name - 1 ? len : sizeof hs->refused_name - 1;

  memcpy(hs->refused_name, name, n);
  hs->refused_name[n] = '\0';
  hs->refused_export = true;
}

static int opt_export_name(struct proto_hs *hs, const uint8_t *d, uint32_t len, struct proto_buf *out)
{
  uint8_t buf[PROTO_EXPORT_NAME_REPLY_FULL];
  long idx;

  if (hs->extended) {
    hs->stage = PROTO_HS_CLOSED;
    hs->close_reason = "NBD_OPT_EXPORT_NAME after extended headers";
    return 0;
  }
  idx = find_export(hs, (const char *)d, len);
  if (idx < 0) {
    note_refused(hs, d, len);
    /* "the server MUST terminate the session" */
    hs->stage = PROTO_HS_CLOSED;
    hs->close_reason = "NBD_OPT_EXPORT_NAME for an unknown export";
    return 0;
  }
  choose_export(hs, (size_t)idx, false);
  return proto_buf_append(out, buf, proto_export_name_reply_encode(buf, hs->exports[idx].size,
                                                                   hs->session.eflags, hs->no_zeroes));
}

static int opt_info_go(struct proto_hs *hs, uint32_t opt, const uint8_t *d, uint32_t len,
                       struct proto_buf *out)
{
  uint32_t namelen;
  uint16_t nreq;
  bool want_name = false, want_desc = false, want_bs = false;
  const struct proto_export *ex;
  uint8_t buf[PROTO_INFO_BLOCK_SIZE_SIZE];
  long idx;
  int r;

  if (len < 6)
    return reply_err(out, opt, NBD_REP_ERR_INVALID, "option too short");
  namelen = get_be32(d);
  if (namelen > len - 6)
    return reply_err(out, opt, NBD_REP_ERR_INVALID, "export name length exceeds option");
  nreq = get_be16(d + 4 + namelen);
  if ((uint64_t)len != 4 + (uint64_t)namelen + 2 + 2 * (uint64_t)nreq)
    return reply_err(out, opt, NBD_REP_ERR_INVALID, "information request count does not match length");
  if (namelen > NBD_MAX_STRING)
    return reply_err(out, opt, NBD_REP_ERR_INVALID, "export name longer than 4096 bytes");
  for (uint16_t i = 0; i < nreq; i++) {
    switch (get_be16(d + 4 + namelen + 2 + 2 * i)) {
    case NBD_INFO_NAME: want_name = true; break;
    case NBD_INFO_DESCRIPTION: want_desc = true; break;
    case NBD_INFO_BLOCK_SIZE: want_bs = true; break;
    default: break;   /* "The server MUST ignore information requests it does not understand" */
    }
  }
  idx = find_export(hs, (const char *)d + 4, namelen);
  if (idx < 0 && hs->tls_mode == PROTO_TLS_ON && !hs->tls_active)
    /* SELECTIVETLS: an export that only TLS clients may see "MUST" get
     * TLS_REQD; a non-existent one "MAY", so both get it and answers do not
     * tell them apart. */
    return reply_err(out, opt, NBD_REP_ERR_TLS_REQD, "no such export, or it needs TLS");
  if (idx < 0) {
    note_refused(hs, d + 4, namelen);
    return reply_err(out, opt, NBD_REP_ERR_UNKNOWN, "no such export");
  }
  ex = &hs->exports[idx];

  proto_info_export_encode(buf, ex->size, export_eflags(hs, (size_t)idx));
  if ((r = reply(out, opt, NBD_REP_INFO, buf, PROTO_INFO_EXPORT_SIZE)) < 0)
    return r;
  if (want_name && (r = reply_info(out, opt, NBD_INFO_NAME, ex->name, (uint32_t)strlen(ex->name))) < 0)
    return r;
  if (want_desc && ex->description && ex->description[0]) {
    size_t n = strlen(ex->description);
    if (n > NBD_MAX_STRING)
      n = NBD_MAX_STRING;
    if ((r = reply_info(out, opt, NBD_INFO_DESCRIPTION, ex->description, (uint32_t)n)) < 0)
      return r;
  }
  /* Sent even when not asked: the client MUST ignore what it did not request. */
  proto_info_block_size_encode(buf, ex->min_block, ex->pref_block, ex->max_payload);
  if ((r = reply(out, opt, NBD_REP_INFO, buf, PROTO_INFO_BLOCK_SIZE_SIZE)) < 0)
    return r;
  if ((r = reply(out, opt, NBD_REP_ACK, NULL, 0)) < 0)
    return r;
  if (opt == NBD_OPT_GO)
    choose_export(hs, (size_t)idx, want_bs);
  return 0;
}

static int reply_meta(struct proto_buf *out, uint32_t opt, uint32_t id)
{
  uint8_t buf[4 + sizeof base_allocation - 1];

  put_be32(buf, id);
  memcpy(buf + 4, base_allocation, sizeof base_allocation - 1);
  return reply(out, opt, NBD_REP_META_CONTEXT, buf, sizeof buf);
}

static int opt_meta(struct proto_hs *hs, uint32_t opt, const uint8_t *d, uint32_t len,
                    struct proto_buf *out)
{
  bool set = opt == NBD_OPT_SET_META_CONTEXT;
  bool match = false;
  uint32_t namelen, nq, pos;
  long idx;
  int r;

  if (set) {
    /* "Issuing this command replaces all previously-set metadata contexts
     * (including when this command fails)". */
    hs->meta_set = false;
    hs->meta_base_allocation = false;
  }
  if (!hs->structured && !hs->extended)
    return reply_err(out, opt, NBD_REP_ERR_INVALID, "negotiate structured replies first");
  if (len < 8)
    return reply_err(out, opt, NBD_REP_ERR_INVALID, "option too short");
  namelen = get_be32(d);
  if (namelen > len - 8)
    return reply_err(out, opt, NBD_REP_ERR_INVALID, "export name length exceeds option");
  if (namelen > NBD_MAX_STRING)
    return reply_err(out, opt, NBD_REP_ERR_INVALID, "export name longer than 4096 bytes");
  nq = get_be32(d + 4 + namelen);
  pos = 8 + namelen;
  /* Validate the whole query list before acting on any of it. */
  for (uint32_t i = 0, p = pos; i < nq; i++) {
    uint32_t ql;
    if (len - p < 4)
      return reply_err(out, opt, NBD_REP_ERR_INVALID, "query list exceeds option");
    ql = get_be32(d + p);
    p += 4;
    if (ql > len - p)
      return reply_err(out, opt, NBD_REP_ERR_INVALID, "query length exceeds option");
    if (ql > NBD_MAX_STRING)
      return reply_err(out, opt, NBD_REP_ERR_INVALID, "query longer than 4096 bytes");
    p += ql;
    if (i + 1 == nq && p != len)
      return reply_err(out, opt, NBD_REP_ERR_INVALID, "trailing bytes after queries");
  }
  if (nq == 0 && pos != len)
    return reply_err(out, opt, NBD_REP_ERR_INVALID, "trailing bytes after query count");
  idx = find_export(hs, (const char *)d + 4, namelen);
  if (idx < 0)
    return reply_err(out, opt, NBD_REP_ERR_UNKNOWN, "no such export");

  if (!hs->exports[idx].base_allocation) {
    match = false;
  } else if (nq == 0) {
    /* LIST with no query: everything; SET with no query: nothing. */
    match = !set;
  } else {
    for (uint32_t i = 0, p = pos; i < nq; i++) {
      uint32_t ql = get_be32(d + p);
      const char *q = (const char *)d + p + 4;
      p += 4 + ql;
      if (ql == sizeof base_allocation - 1 && !memcmp(q, base_allocation, ql))
        match = true;
      else if (!set && ql == 5 && !memcmp(q, "base:", 5))
        match = true;   /* LIST may use an empty leaf as a wildcard */
      /* Unknown namespaces "MUST" be ignored; so are other base: leaves. */
    }
  }
  if (match && (r = reply_meta(out, opt, set ? PROTO_META_BASE_ALLOCATION_ID : 0)) < 0)
    return r;
  if (set) {
    hs->meta_set = true;
    hs->meta_base_allocation = match;
    hs->meta_export = (size_t)idx;
  }
  return reply(out, opt, NBD_REP_ACK, NULL, 0);
}

/* Handle one complete option (header already validated). */
static int handle_option(struct proto_hs *hs, uint32_t opt, const uint8_t *d, uint32_t len,
                         struct proto_buf *out)
{
  hs->options_seen++;
  if (hs->tls_mode == PROTO_TLS_REQUIRE && !hs->tls_active
      && opt != NBD_OPT_STARTTLS && opt != NBD_OPT_ABORT) {
    /* FORCEDTLS: nothing but STARTTLS and ABORT before TLS; EXPORT_NAME
     * "cannot error", so the server "MUST terminate the session". */
    if (opt == NBD_OPT_EXPORT_NAME) {
      hs->stage = PROTO_HS_CLOSED;
      hs->close_reason = "NBD_OPT_EXPORT_NAME before STARTTLS while TLS is required";
      return 0;
    }
    return reply_err(out, opt, NBD_REP_ERR_TLS_REQD, "TLS is required: send NBD_OPT_STARTTLS first");
  }
  switch (opt) {
  case NBD_OPT_EXPORT_NAME:
    return opt_export_name(hs, d, len, out);
  case NBD_OPT_ABORT:
    /* "The server MUST reply with NBD_REP_ACK"; any data is ignored. */
    hs->stage = PROTO_HS_CLOSED;
    hs->close_reason = "client sent NBD_OPT_ABORT";
    return reply(out, opt, NBD_REP_ACK, NULL, 0);
  case NBD_OPT_LIST:
    return opt_list(hs, opt, len, out);
  case NBD_OPT_STARTTLS:
    if (len)
      return reply_err(out, opt, NBD_REP_ERR_INVALID, "NBD_OPT_STARTTLS takes no data");
    if (hs->tls_mode == PROTO_TLS_OFF)
      return reply_err(out, opt, NBD_REP_ERR_POLICY, "TLS is not enabled on this server");
    if (hs->tls_active)   /* "MUST reply with NBD_REP_ERR_INVALID" */
      return reply_err(out, opt, NBD_REP_ERR_INVALID, "TLS is already active");
    hs->stage = PROTO_HS_STARTTLS;
    return reply(out, opt, NBD_REP_ACK, NULL, 0);
  case NBD_OPT_INFO:
  case NBD_OPT_GO:
    return opt_info_go(hs, opt, d, len, out);
  case NBD_OPT_STRUCTURED_REPLY:
    if (len)
      return reply_err(out, opt, NBD_REP_ERR_INVALID, "NBD_OPT_STRUCTURED_REPLY takes no data");
    if (hs->extended)
      return reply_err(out, opt, NBD_REP_ERR_EXT_HEADER_REQD, "extended headers already negotiated");
    hs->structured = true;
    return reply(out, opt, NBD_REP_ACK, NULL, 0);
  case NBD_OPT_EXTENDED_HEADERS:
    if (len)
      return reply_err(out, opt, NBD_REP_ERR_INVALID, "NBD_OPT_EXTENDED_HEADERS takes no data");
    hs->extended = true;
    return reply(out, opt, NBD_REP_ACK, NULL, 0);
  case NBD_OPT_LIST_META_CONTEXT:
  case NBD_OPT_SET_META_CONTEXT:
    return opt_meta(hs, opt, d, len, out);
  default:
    return reply_err(out, opt, NBD_REP_ERR_UNSUP, "unsupported option");
  }
}

int proto_hs_input(struct proto_hs *hs, const uint8_t *in, size_t len,
                   size_t *consumed, struct proto_buf *out)
{
  size_t pos = 0;
  int r = 0;

  while (r >= 0 && hs->stage != PROTO_HS_DONE && hs->stage != PROTO_HS_CLOSED
         && hs->stage != PROTO_HS_STARTTLS) {
    size_t avail = len - pos;

    if (hs->stage == PROTO_HS_CLIENT_FLAGS) {
      if (avail < 4)
        break;
      hs->client_flags = get_be32(in + pos);
      pos += 4;
      if (hs->client_flags & ~(uint32_t)(NBD_FLAG_C_FIXED_NEWSTYLE | NBD_FLAG_C_NO_ZEROES)) {
        /* Unknown client flags: the spec has the server close. */
        hs->stage = PROTO_HS_CLOSED;
        hs->close_reason = "unknown client flags";
        break;
      }
      hs->no_zeroes = hs->client_flags & NBD_FLAG_C_NO_ZEROES;
      hs->stage = PROTO_HS_OPTION;
    } else if (hs->stage == PROTO_HS_OPTION) {
      uint32_t opt, optlen;
      if (avail < 16 || (hs->out_max && out->len >= hs->out_max))
        break;
      if (proto_opt_decode(in + pos, &opt, &optlen) < 0) {
        hs->stage = PROTO_HS_CLOSED;
        hs->close_reason = "bad option magic";
        break;
      }
      if (optlen > PROTO_MAX_OPTION_DATA) {
        if (opt == NBD_OPT_EXPORT_NAME) {
          hs->stage = PROTO_HS_CLOSED;
          hs->close_reason = "NBD_OPT_EXPORT_NAME longer than any export name";
          break;
        }
        pos += 16;
        hs->stage = PROTO_HS_DISCARD;
        hs->discard_option = opt;
        hs->discard_left = optlen;
        continue;
      }
      if (avail - 16 < optlen)
        break;
      r = handle_option(hs, opt, in + pos + 16, optlen, out);
      pos += 16 + (size_t)optlen;
    } else if (hs->stage == PROTO_HS_DISCARD) {
      size_t n = avail < hs->discard_left ? avail : (size_t)hs->discard_left;
      pos += n;
      hs->discard_left -= n;
      if (hs->discard_left > 0)
        break;
      hs->stage = PROTO_HS_OPTION;
      if (hs->tls_mode == PROTO_TLS_REQUIRE && !hs->tls_active && hs->discard_option != NBD_OPT_ABORT)
        r = reply_err(out, hs->discard_option, NBD_REP_ERR_TLS_REQD, "TLS is required: send NBD_OPT_STARTTLS first");
      else
        r = reply_err(out, hs->discard_option, NBD_REP_ERR_TOO_BIG, "option data too large");
    }
  }
  *consumed = pos;
  return r < 0 ? r : (int)hs->stage;
}
