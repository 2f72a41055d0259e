/* info.c: `shunt info URI`: what an NBD export offers (size, flags, block sizes,
 * negotiated features), the server's export list (--list) and the extent map
 * (--map), as text or --json.  A thin user of libshunt. */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/json.h"
#include "common/units.h"
#include "shunt/shunt.h"
#include "common/log.h"
#include "tools/connect.h"
#include "tools/cli.h"
#include "tools/commands.h"

static void usage(FILE *f)
{
  fprintf(f,
    "usage: shunt info [OPTIONS] URI\n"
    "\n"
    "Show what an NBD export offers: size, transmission flags, block sizes and\n"
    "the features negotiated (structured replies, extended headers, base:allocation).\n"
    "URI is nbd://HOST[:PORT]/EXPORT or nbd+unix:///EXPORT?socket=PATH; nbds://\n"
    "and nbds+unix:// require TLS (?tls-psk-file=FILE with USER@HOST, or\n"
    "?tls-certificates=DIR; see docs/libshunt.md).\n"
    "\n"
    "      --list          list the server's exports (NBD_OPT_LIST) instead\n"
    "      --map           print only the extent map of the whole export, as\n"
    "                      nbdinfo: offset, length, type, data|hole|zero|hole,zero\n"
    "      --json          machine-readable output\n"
    "      --no-extended   do not request extended headers\n"
    "      --no-structured use simple replies only (implies no --map)\n"
    "  -V, --version       print the version\n"
    "  -h, --help          this text\n"
    "\n"
    "Predicates, as nbdinfo's: print nothing (--size: the size in bytes) and exit\n"
    "0 when true, 2 when false, 1 on an error:\n"
    "      --size          print the export's size\n"
    "      --can WHAT      connect, read, write, flush, fua, trim, zero, fast-zero,\n"
    "                      cache, df, multi-conn, block-status, structured-reply,\n"
    "                      extended-headers\n"
    "      --is WHAT       read-only, rotational, tls\n");
}

struct map_state {
  struct json *json;     /* JSON output, or NULL: text on stdout */
  uint64_t start, len;   /* pending merged extent */
  uint32_t flags;
  bool have;
  uint64_t end;          /* where the map stops */
  uint64_t next;         /* next offset to ask about */
};

/* base:allocation types spelled as nbdinfo --map does. */
static const char *extent_name(uint32_t f)
{
  static const char *const names[] = { "data", "hole", "zero", "hole,zero" };
  return names[f & (SHUNT_EXTENT_HOLE | SHUNT_EXTENT_ZERO)];
}

static void emit(struct map_state *m)
{
  if (!m->have)
    return;
  if (m->json) {
    json_object(m->json, NULL, JSON_LINE);
    json_uint(m->json, "offset", m->start);
    json_uint(m->json, "length", m->len);
    json_uint(m->json, "type", m->flags);
    json_string(m->json, "description", extent_name(m->flags));
    json_end(m->json);
  } else {
    printf("%14llu %14llu %3u  %s\n", (unsigned long long)m->start,
           (unsigned long long)m->len, m->flags, extent_name(m->flags));
  }
  m->have = false;
}

static void on_extent(void *user, const char *context, uint64_t off, uint64_t len,
                      uint32_t flags)
{
  struct map_state *m = user;
  if (strcmp(context, "base:allocation") || off >= m->end)
    return;
  if (len > m->end - off)
    len = m->end - off;
  if (m->have && m->flags == flags && m->start + m->len == off) {
    m->len += len;
  } else {
    emit(m);
    m->start = off;
    m->len = len;
    m->flags = flags;
    m->have = true;
  }
  m->next = off + len;
}

/* The extent map of the whole export: text lines, or a "map" array in json. */
static int print_map(struct shunt_handle *h, struct json *json)
{
  uint64_t size = (uint64_t)shunt_get_size(h);
  struct map_state m = { .json = json, .end = size };
  if (shunt_can_meta_context(h, "base:allocation") != 1) {
    log_msg(LOG_ERROR, NULL, NULL, "%s: the server offers no base:allocation context",
            shunt_get_uri(h));
    return 1;
  }
  /* Ask in pieces a compact header can express, aligned to the minimum block. */
  uint64_t piece = shunt_get_flag(h, SHUNT_HAS_EXTENDED_HEADERS) == 1 ? UINT64_C(1) << 40
                                                                       : (UINT64_C(1) << 31);
  if (json)
    json_array(json, "map", JSON_BLOCK);
  while (m.next < size) {
    uint64_t before = m.next;
    uint64_t len = size - m.next < piece ? size - m.next : piece;
    if (shunt_block_status(h, m.next, len, 0, on_extent, &m) < 0) {
      log_msg(LOG_ERROR, NULL, NULL, "%s", shunt_last_error(h));
      return 1;
    }
    if (m.next == before) {
      log_msg(LOG_ERROR, NULL, NULL, "%s: block status made no progress at %llu", shunt_get_uri(h),
              (unsigned long long)before);
      return 1;
    }
  }
  emit(&m);
  if (json)
    json_end(json);
  return 0;
}

/* The exports, kept until the listing succeeded: a failure prints none. */
struct list_state {
  char **names, **descs;
  size_t n;
  bool oom;
};

static void on_export(void *user, const char *name, const char *description)
{
  struct list_state *l = user;
  char **nn = realloc(l->names, (l->n + 1) * sizeof *nn);
  if (nn)
    l->names = nn;
  char **dd = nn ? realloc(l->descs, (l->n + 1) * sizeof *dd) : NULL;
  if (dd)
    l->descs = dd;
  if (!nn || !dd || !(l->names[l->n] = strdup(name))) {
    l->oom = true;
    return;
  }
  l->descs[l->n++] = description ? strdup(description) : NULL;
}

static int do_list(const char *uri, const struct tools_conn_opts *o, bool json)
{
  struct shunt_handle *h = tools_handle(o);
  struct list_state l = { 0 };
  int rc = 0;
  if (!h || shunt_list_exports(h, uri, on_export, &l) < 0 || l.oom) {
    log_msg(LOG_ERROR, NULL, NULL, "%s", !h || l.oom ? "out of memory" : shunt_last_error(h));
    rc = 1;
  } else if (json) {
    struct json j;
    json_init_file(&j, stdout);
    json_object(&j, NULL, JSON_BLOCK);
    json_array(&j, "exports", JSON_BLOCK);
    for (size_t i = 0; i < l.n; i++) {
      json_object(&j, NULL, JSON_LINE);
      json_string(&j, "name", l.names[i]);
      if (l.descs[i])
        json_string(&j, "description", l.descs[i]);
      json_end(&j);
    }
    json_end(&j);
    json_end(&j);
    rc = json_finish(&j) < 0;
  } else {
    for (size_t i = 0; i < l.n; i++)
      printf("%s%s%s\n", l.names[i], l.descs[i] ? "\t" : "", l.descs[i] ? l.descs[i] : "");
  }
  for (size_t i = 0; i < l.n; i++) {
    free(l.names[i]);
    free(l.descs[i]);
  }
  free(l.names);
  free(l.descs);
  shunt_close(h);
  return rc;
}

/* --can WHAT and --is WHAT: whether it holds for the connected export (h
 * NULL: only whether WHAT is known). */
static int predicate(const struct shunt_handle *h, const char *uri, const char *kind,
                     const char *what)
{
  static const struct { const char *kind, *what; enum shunt_flag f; bool negate; } preds[] = {
    { "can", "write", SHUNT_IS_READ_ONLY, true },
    { "can", "flush", SHUNT_CAN_FLUSH, false }, { "can", "fua", SHUNT_CAN_FUA, false },
    { "can", "trim", SHUNT_CAN_TRIM, false }, { "can", "zero", SHUNT_CAN_ZERO, false },
    { "can", "fast-zero", SHUNT_CAN_FAST_ZERO, false }, { "can", "cache", SHUNT_CAN_CACHE, false },
    { "can", "df", SHUNT_CAN_DF, false }, { "can", "multi-conn", SHUNT_CAN_MULTI_CONN, false },
    { "can", "block-status", SHUNT_HAS_META_CONTEXT, false },
    { "can", "structured-reply", SHUNT_HAS_STRUCTURED_REPLIES, false },
    { "can", "extended-headers", SHUNT_HAS_EXTENDED_HEADERS, false },
    { "is", "read-only", SHUNT_IS_READ_ONLY, false }, { "is", "rotational", SHUNT_IS_ROTATIONAL, false },
  };
  if (!strcmp(kind, "can") && !strcmp(what, "connect"))
    return 1;   /* connected */
  if (!strcmp(kind, "can") && !strcmp(what, "read"))
    return 1;   /* every export can be read */
  if (!strcmp(kind, "is") && !strcmp(what, "tls"))
    return !strncmp(uri, "nbds", 4);   /* libshunt requires TLS for nbds:// and nbds+unix:// */
  for (size_t i = 0; i < sizeof preds / sizeof preds[0]; i++)
    if (!strcmp(kind, preds[i].kind) && !strcmp(what, preds[i].what))
      return !h ? 0 : (shunt_get_flag(h, preds[i].f) == 1) != preds[i].negate;
  return -1;
}

static bool predicate_known(const char *kind, const char *what)
{
  return predicate(NULL, "", kind, what) >= 0;
}

static const struct { const char *name; enum shunt_flag f; } flag_names[] = {
  { "read_only", SHUNT_IS_READ_ONLY }, { "can_flush", SHUNT_CAN_FLUSH },
  { "can_fua", SHUNT_CAN_FUA }, { "can_trim", SHUNT_CAN_TRIM }, { "can_zero", SHUNT_CAN_ZERO },
  { "can_fast_zero", SHUNT_CAN_FAST_ZERO }, { "can_df", SHUNT_CAN_DF },
  { "can_multi_conn", SHUNT_CAN_MULTI_CONN }, { "can_cache", SHUNT_CAN_CACHE },
  { "rotational", SHUNT_IS_ROTATIONAL },
};

int cmd_info(int argc, char **argv)
{
  static const struct option lo[] = {
    { "list", no_argument, NULL, 'l' }, { "map", no_argument, NULL, 'm' },
    { "json", no_argument, NULL, 'j' }, { "no-extended", no_argument, NULL, 'E' },
    { "no-structured", no_argument, NULL, 'S' }, { "help", no_argument, NULL, 'h' },
    { "size", no_argument, NULL, 'z' }, { "can", required_argument, NULL, 'c' },
    { "is", required_argument, NULL, 'i' }, { "version", no_argument, NULL, 'V' },
    { NULL, 0, NULL, 0 },
  };
  bool list = false, map = false, json = false, size = false;
  const char *pred_kind = NULL, *pred_what = NULL;
  struct tools_conn_opts o = { 0 };
  int c;
  while ((c = cli_getopt(argc, argv, "Vh", lo)) != -1) {
    switch (c) {
    case 'l': list = true; break;
    case 'm': map = true; break;
    case 'j': json = true; break;
    case 'E': o.no_extended = true; break;
    case 'S': o.no_structured = true; break;
    case 'z': size = true; break;
    case 'c': case 'i':
      pred_kind = c == 'c' ? "can" : "is";
      pred_what = optarg;
      if (!predicate_known(pred_kind, pred_what)) {
        cli_usage_error("info", "--%s %s: unknown (shunt info --help lists them)", pred_kind, optarg);
        return 1;   /* as nbdinfo: 2 would read as "false" */
      }
      break;
    case 'V': return cli_version();
    case 'h': usage(stdout); return 0;
    default: return 2;
    }
  }
  if (optind != argc - 1)
    return cli_usage_error("info", optind == argc ? "no URI given" : "one URI expected, not %d arguments", argc - optind);
  if ((size || pred_kind) && (list || map || json || (size && pred_kind)))
    return cli_usage_error("info", "--size, --can and --is are used alone");
  const char *uri = argv[optind];
  if (list)
    return do_list(uri, &o, json);

  struct shunt_handle *h;
  char err[512];
  if (tools_connect(&h, uri, &o, err, sizeof err) < 0) {
    log_msg(LOG_ERROR, NULL, NULL, "%s", err);
    return 1;
  }
  uint64_t esize = (uint64_t)shunt_get_size(h);
  const char *desc = shunt_get_description(h);
  char sz[32];
  int rc = 0;
  if (size || pred_kind) {
    if (size)
      printf("%llu\n", (unsigned long long)esize);
    else
      rc = predicate(h, uri, pred_kind, pred_what) ? 0 : 2;
    shunt_close(h);
    return rc;
  }
  if (json) {
    struct json j;
    json_init_file(&j, stdout);
    json_object(&j, NULL, JSON_BLOCK);
    json_string(&j, "uri", uri);
    json_string(&j, "export", shunt_get_export_name(h));
    if (desc)
      json_string(&j, "description", desc);
    json_uint(&j, "size", esize);
    json_uint(&j, "eflags", (uint64_t)shunt_get_transmission_flags(h));
    for (size_t i = 0; i < sizeof flag_names / sizeof flag_names[0]; i++)
      json_bool(&j, flag_names[i].name, shunt_get_flag(h, flag_names[i].f) == 1);
    json_uint(&j, "block_size_minimum", (uint64_t)shunt_get_block_size(h, SHUNT_BLOCK_MIN));
    json_uint(&j, "block_size_preferred", (uint64_t)shunt_get_block_size(h, SHUNT_BLOCK_PREFERRED));
    json_uint(&j, "block_size_maximum", (uint64_t)shunt_get_block_size(h, SHUNT_BLOCK_MAX));
    json_bool(&j, "structured_replies", shunt_get_flag(h, SHUNT_HAS_STRUCTURED_REPLIES) == 1);
    json_bool(&j, "extended_headers", shunt_get_flag(h, SHUNT_HAS_EXTENDED_HEADERS) == 1);
    json_bool(&j, "base_allocation", shunt_can_meta_context(h, "base:allocation") == 1);
    json_string(&j, "negotiation",
                shunt_get_flag(h, SHUNT_USED_EXPORT_NAME) == 1 ? "EXPORT_NAME" : "GO");
    if (map) {
      rc = print_map(h, &j);
      /* A failed map leaves its array open: close what is open. */
      while (j.depth > 0)
        json_end(&j);
    } else {
      json_end(&j);
    }
    if (json_finish(&j) < 0 && !rc)
      rc = 1;
  } else if (map) {
    rc = print_map(h, NULL);   /* only the map, as nbdinfo --map */
  } else {
    printf("uri:          %s\n", uri);
    printf("export:       %s\n", shunt_get_export_name(h));
    if (desc)
      printf("description:  %s\n", desc);
    printf("size:         %llu (%s)\n", (unsigned long long)esize,
           units_format_bytes(esize, sz, sizeof sz));
    printf("flags:        0x%04x", (unsigned)shunt_get_transmission_flags(h));
    for (size_t i = 0; i < sizeof flag_names / sizeof flag_names[0]; i++)
      if (shunt_get_flag(h, flag_names[i].f) == 1)
        printf(" %s", flag_names[i].name);
    printf("\nblock size:   minimum %lld, preferred %lld, maximum %lld\n",
           (long long)shunt_get_block_size(h, SHUNT_BLOCK_MIN),
           (long long)shunt_get_block_size(h, SHUNT_BLOCK_PREFERRED),
           (long long)shunt_get_block_size(h, SHUNT_BLOCK_MAX));
    printf("negotiated:   %s, %s replies%s\n",
           shunt_get_flag(h, SHUNT_USED_EXPORT_NAME) == 1 ? "EXPORT_NAME" : "GO",
           shunt_get_flag(h, SHUNT_HAS_EXTENDED_HEADERS) == 1 ? "extended"
           : shunt_get_flag(h, SHUNT_HAS_STRUCTURED_REPLIES) == 1 ? "structured" : "simple",
           shunt_can_meta_context(h, "base:allocation") == 1 ? ", base:allocation" : "");
  }
  shunt_close(h);
  return rc;
}
