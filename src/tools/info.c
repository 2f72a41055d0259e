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

static void on_extent(void *user, uint64_t off, uint64_t len, uint32_t flags)
{
  struct map_state *m = user;
  if (off >= m->end)
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
  const struct shunt_info *in = shunt_get_info(h);
  struct map_state m = { .json = json, .end = in->size };
  if (!in->block_status) {
    log_msg(LOG_ERROR, NULL, NULL, "%s: the server offers no base:allocation context", in->server);
    return 1;
  }
  /* Ask in pieces a compact header can express, aligned to the minimum block. */
  uint64_t piece = in->extended ? UINT64_C(1) << 40 : (UINT64_C(1) << 31);
  if (json)
    json_array(json, "map", JSON_BLOCK);
  while (m.next < in->size) {
    uint64_t before = m.next;
    uint64_t len = in->size - m.next < piece ? in->size - m.next : piece;
    if (shunt_block_status(h, m.next, len, 0, on_extent, &m) < 0) {
      log_msg(LOG_ERROR, NULL, NULL, "%s", shunt_last_error(h));
      return 1;
    }
    if (m.next == before) {
      log_msg(LOG_ERROR, NULL, NULL, "%s: block status made no progress at %llu", in->server,
              (unsigned long long)before);
      return 1;
    }
  }
  emit(&m);
  if (json)
    json_end(json);
  return 0;
}

static int do_list(const char *uri, const struct shunt_options *o, bool json)
{
  struct shunt_export *list;
  size_t n;
  char err[512];
  if (shunt_list_exports(uri, o, &list, &n, err, sizeof err) < 0) {
    log_msg(LOG_ERROR, NULL, NULL, "%s", err);
    return 1;
  }
  int rc = 0;
  if (json) {
    struct json j;
    json_init_file(&j, stdout);
    json_object(&j, NULL, JSON_BLOCK);
    json_array(&j, "exports", JSON_BLOCK);
    for (size_t i = 0; i < n; i++) {
      json_object(&j, NULL, JSON_LINE);
      json_string(&j, "name", list[i].name);
      if (list[i].description)
        json_string(&j, "description", list[i].description);
      json_end(&j);
    }
    json_end(&j);
    json_end(&j);
    rc = json_finish(&j) < 0;
  } else {
    for (size_t i = 0; i < n; i++)
      printf("%s%s%s\n", list[i].name, list[i].description ? "\t" : "",
             list[i].description ? list[i].description : "");
  }
  shunt_free_exports(list, n);
  return rc;
}

/* --can WHAT and --is WHAT: whether it holds for the connected export. */
static int predicate(const struct shunt_info *in, const char *uri, const char *kind, const char *what)
{
  static const struct { const char *kind, *what; size_t off; bool negate; } preds[] = {
#define P(k, w, f, n) { k, w, offsetof(struct shunt_info, f), n }
    P("can", "write", read_only, true),
    P("can", "flush", can_flush, false), P("can", "fua", can_fua, false),
    P("can", "trim", can_trim, false), P("can", "zero", can_zero, false),
    P("can", "fast-zero", can_fast_zero, false), P("can", "cache", can_cache, false),
    P("can", "df", can_df, false), P("can", "multi-conn", can_multi_conn, false),
    P("can", "block-status", block_status, false), P("can", "structured-reply", structured, false),
    P("can", "extended-headers", extended, false),
    P("is", "read-only", read_only, false), P("is", "rotational", rotational, false),
#undef P
  };
  if (!strcmp(kind, "can") && !strcmp(what, "connect"))
    return 1;   /* connected */
  if (!strcmp(kind, "can") && !strcmp(what, "read"))
    return 1;   /* every export can be read */
  if (!strcmp(kind, "is") && !strcmp(what, "tls"))
    return !strncmp(uri, "nbds", 4);   /* libshunt requires TLS for nbds:// and nbds+unix:// */
  for (size_t i = 0; i < sizeof preds / sizeof preds[0]; i++)
    if (!strcmp(kind, preds[i].kind) && !strcmp(what, preds[i].what))
      return *(const bool *)((const char *)in + preds[i].off) != preds[i].negate;
  return -1;
}

static bool predicate_known(const char *kind, const char *what)
{
  static const struct shunt_info none;
  return predicate(&none, "", kind, what) >= 0;
}

static const struct { const char *name; size_t off; } flag_names[] = {
#define F(n, f) { n, offsetof(struct shunt_info, f) }
  F("read_only", read_only), F("can_flush", can_flush), F("can_fua", can_fua),
  F("can_trim", can_trim), F("can_zero", can_zero), F("can_fast_zero", can_fast_zero),
  F("can_df", can_df), F("can_multi_conn", can_multi_conn), F("can_cache", can_cache),
  F("rotational", rotational),
#undef F
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
  struct shunt_options o = { 0 };
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
  const struct shunt_info *in = shunt_get_info(h);
  char sz[32];
  int rc = 0;
  if (size || pred_kind) {
    if (size)
      printf("%llu\n", (unsigned long long)in->size);
    else
      rc = predicate(in, uri, pred_kind, pred_what) ? 0 : 2;
    shunt_close(h);
    return rc;
  }
  if (json) {
    struct json j;
    json_init_file(&j, stdout);
    json_object(&j, NULL, JSON_BLOCK);
    json_string(&j, "uri", uri);
    json_string(&j, "export", in->export_name);
    if (in->description)
      json_string(&j, "description", in->description);
    json_uint(&j, "size", in->size);
    json_uint(&j, "eflags", in->eflags);
    for (size_t i = 0; i < sizeof flag_names / sizeof flag_names[0]; i++)
      json_bool(&j, flag_names[i].name, *(const bool *)((const char *)in + flag_names[i].off));
    json_uint(&j, "block_size_minimum", in->min_block);
    json_uint(&j, "block_size_preferred", in->pref_block);
    json_uint(&j, "block_size_maximum", in->max_block);
    json_bool(&j, "structured_replies", in->structured);
    json_bool(&j, "extended_headers", in->extended);
    json_bool(&j, "base_allocation", in->block_status);
    json_string(&j, "negotiation", in->used_export_name ? "EXPORT_NAME" : "GO");
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
    printf("export:       %s\n", in->export_name);
    if (in->description)
      printf("description:  %s\n", in->description);
    printf("size:         %llu (%s)\n", (unsigned long long)in->size,
           units_format_bytes(in->size, sz, sizeof sz));
    printf("flags:        0x%04x", in->eflags);
    for (size_t i = 0; i < sizeof flag_names / sizeof flag_names[0]; i++)
      if (*(const bool *)((const char *)in + flag_names[i].off))
        printf(" %s", flag_names[i].name);
    printf("\nblock size:   minimum %u, preferred %u, maximum %u\n", in->min_block,
           in->pref_block, in->max_block);
    printf("negotiated:   %s, %s replies%s%s\n", in->used_export_name ? "EXPORT_NAME" : "GO",
           in->extended ? "extended" : in->structured ? "structured" : "simple",
           in->block_status ? ", base:allocation" : "", "");
  }
  shunt_close(h);
  return rc;
}
