/* export.c: parsing export specs and opening the export table (see export.h). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "backend/backend.h"
#include "common/log.h"
#include "common/parse.h"
#include "common/text.h"
#include "common/units.h"
#include "datapath/datapath.h"
#include "datapath/sourceopt.h"
#include "proto/nbd-protocol.h"
#include "server/export.h"

static const char *const export_backends[] = { "file", "memory", "rbd", NULL };

static int set_option(struct export_config *cfg, const char *key, const char *value,
                      char *err, size_t errlen)
{
  const struct source_options so = {
    .kind = "export ", .name = cfg->name, .backends = export_backends, .read_only = &cfg->read_only,
    .backend = &cfg->backend, .datapath = &cfg->datapath, .rbd = &cfg->rbd, .qos = &cfg->qos,
  };
  int r = source_set_option(&so, key, value, err, errlen);

  if (r <= 0)
    return r;
  if (!strcmp(key, "allow-overcommit"))
    return parse_flag(value, &cfg->allow_overcommit) < 0 ? source_bad_value(&so, key, value, err, errlen) : 0;
  if (!value)
    return source_unknown_option(&so, key, err, errlen);
  if (!strcmp(key, "desc") || !strcmp(key, "description")) {
    if (strlen(value) > NBD_MAX_STRING) {
      snprintf(err, errlen, "export '%s': description longer than 4096 bytes", cfg->name);
      return -EINVAL;
    }
    return text_set(&cfg->description, value, err, errlen);
  }
  if (!strcmp(key, "chunk")) {
    uint64_t v;
    if (parse_size(value, &v) < 0 || v < DP_MIN_CHUNK || v > DP_MAX_CHUNK || v % 4096) {
      snprintf(err, errlen, "export '%s': chunk must be a multiple of 4K from 4K to 32M", cfg->name ? cfg->name : "");
      return -EINVAL;
    }
    cfg->chunk = v;
    return 0;
  }
  if (!strcmp(key, "max-memory")) {
    uint64_t v;
    if (parse_size(value, &v) < 0 || v == 0)
      return source_bad_value(&so, key, value, err, errlen);
    cfg->max_memory = v;
    return 0;
  }
  if (!strcmp(key, "path"))
    return text_set(&cfg->path, value, err, errlen);
  if (!strcmp(key, "allow") || !strcmp(key, "allow-ro") || !strcmp(key, "deny")) {
    char msg[256];
    r = access_add_rule(&cfg->access, key, value, msg, sizeof msg);
    if (r < 0)
      snprintf(err, errlen, "export '%s': %s", cfg->name ? cfg->name : "", msg);
    return r;
  }
  return source_unknown_option(&so, key, err, errlen);
}

/* The scheduler's options: a running export takes new values at once. */
static bool is_qos_key(const char *key)
{
  return !strcmp(key, "weight") || !strcmp(key, "reserve-iops") || !strcmp(key, "limit-iops")
         || !strcmp(key, "limit-bw");
}

int export_set_option(struct export_config *cfg, const char *key, const char *value,
                      char *err, size_t errlen)
{
  int r = set_option(cfg, key, value, err, errlen);
  char *s;

  if (r < 0 || is_qos_key(key) || !strcmp(key, "path"))   /* (the path is compared apart) */
    return r;
  if (asprintf(&s, "%s%s%s%s\n", cfg->settings ? cfg->settings : "", key, value ? "=" : "", value ? value : "") < 0) {
    snprintf(err, errlen, "out of memory");
    return -ENOMEM;
  }
  free(cfg->settings);
  cfg->settings = s;
  return 0;
}

static bool same_str(const char *a, const char *b)
{
  return a == b || (a && b && !strcmp(a, b));
}

bool export_config_same(const struct export_config *a, const struct export_config *b)
{
  return same_str(a->name, b->name) && same_str(a->path, b->path) && a->read_only == b->read_only
         && same_str(a->settings, b->settings);
}

int export_check_name(const char *name, char *err, size_t errlen)
{
  char shown[256];

  if (text_is_clean(name, strlen(name)))
    return 0;
  snprintf(err, errlen, "export name '%s' is not valid UTF-8 or holds control characters",
           text_escape(name, strlen(name), shown, sizeof shown));
  return -EINVAL;
}

static int set_spec_option(void *cfg, const char *key, const char *value, char *err, size_t errlen)
{
  return export_set_option(cfg, key, value, err, errlen);
}

int export_parse_spec(const char *spec, struct export_config *cfg, char *err, size_t errlen)
{
  const char *eq = strchr(spec, '=');
  char *rest, *opts;
  int r = 0;

  memset(cfg, 0, sizeof *cfg);
  if (!eq || eq == spec) {
    snprintf(err, errlen, "'%s': expected NAME=PATH[,OPTION]...", spec);
    return -EINVAL;
  }
  if ((size_t)(eq - spec) > NBD_MAX_STRING) {
    snprintf(err, errlen, "export name longer than 4096 bytes");
    return -EINVAL;
  }
  cfg->name = strndup(spec, eq - spec);
  rest = strdup(eq + 1);
  if (!cfg->name || !rest) {
    free(rest);
    snprintf(err, errlen, "out of memory");
    r = -ENOMEM;
    goto out;
  }
  if ((r = export_check_name(cfg->name, err, errlen)) < 0) {
    free(rest);
    goto out;
  }
  if (!*rest || *rest == ',') {
    snprintf(err, errlen, "export '%s': missing PATH", cfg->name);
    free(rest);
    r = -EINVAL;
    goto out;
  }
  if ((opts = strchr(rest, ',')))
    *opts++ = '\0';
  cfg->path = strdup(rest);
  if (opts)
    r = parse_option_list(opts, set_spec_option, cfg, err, errlen);
  free(rest);
out:
  if (r < 0)
    export_config_free(cfg);
  return r;
}

void export_config_free(struct export_config *cfg)
{
  free(cfg->name);
  free(cfg->path);
  free(cfg->description);
  free(cfg->backend);
  free(cfg->datapath);
  free(cfg->settings);
  backend_rbd_options_free(&cfg->rbd);
  access_list_free(&cfg->access);
  memset(cfg, 0, sizeof *cfg);
}

/* A file export must be a regular file or a block device: opening a FIFO
 * would block the start until a writer appears, and a character device or
 * socket has no size to serve.  A missing path is left to the backend. */
static int check_file_type(const struct export_config *cfg, char *err, size_t errlen)
{
  struct stat st;

  if ((cfg->backend && strcmp(cfg->backend, "file")) || stat(cfg->path, &st) < 0)
    return 0;
  if (S_ISREG(st.st_mode) || S_ISBLK(st.st_mode))
    return 0;
  snprintf(err, errlen, "export '%s': %s is a %s, not a regular file or block device", cfg->name,
           cfg->path, S_ISFIFO(st.st_mode) ? "FIFO" : S_ISDIR(st.st_mode) ? "directory" :
           S_ISCHR(st.st_mode) ? "character device" : S_ISSOCK(st.st_mode) ? "socket" : "special file");
  return -EINVAL;
}

/* What the protocol sees of an open export. */
static void fill_proto(struct export *ex)
{
  struct proto_export *pe = &ex->proto;
  struct backend *b = ex->dp.backend;

  pe->name = ex->cfg.name;
  pe->description = ex->cfg.description;
  pe->size = b->size;
  /* b too: e.g. an rbd snapshot (ex->cfg keeps what was configured, which
   * a reload compares) */
  pe->read_only = ex->cfg.read_only || b->read_only;
  pe->can_trim = b->can_trim;
  pe->can_zero = b->can_zero;
  pe->can_fast_zero = b->can_fast_zero;
  pe->can_cache = b->can_cache;
  pe->can_flush = b->can_flush;
  pe->can_fua = b->can_flush && !pe->read_only;
  /* One backend instance behind all connections: a FLUSH on any of them
   * (fdatasync of the shared file) covers the writes of all. */
  pe->can_multi_conn = true;
  pe->rotational = b->rotational;
  pe->base_allocation = b->ops->extents != NULL;
  /* Advertise 512-byte blocks only when the size allows reaching every byte. */
  pe->min_block = (b->size % 512 == 0) ? 512 : 1;
  pe->pref_block = 4096;
  pe->max_payload = NBD_DEFAULT_MAX_PAYLOAD;
}

int export_open(struct export_config *cfg, struct export **out, char *err, size_t errlen)
{
  struct export *ex;
  struct backend *b;
  char berr[256];
  int r;

  *out = NULL;
  if (!cfg->path) {
    snprintf(err, errlen, "export '%s': no path", cfg->name);
    export_config_free(cfg);
    return -EINVAL;
  }
  if ((r = check_file_type(cfg, err, errlen)) < 0) {
    export_config_free(cfg);
    return r;
  }
  if (!(ex = calloc(1, sizeof *ex))) {
    snprintf(err, errlen, "out of memory");
    export_config_free(cfg);
    return -ENOMEM;
  }
  ex->cfg = *cfg;
  memset(cfg, 0, sizeof *cfg);
  cfg = &ex->cfg;
  atomic_init(&ex->refs, 1);
  struct backend_options bo = { .allow_overcommit = cfg->allow_overcommit, .max_memory = cfg->max_memory,
                                .rbd = &cfg->rbd };
  r = backend_open_opts(cfg->backend, cfg->path, cfg->read_only, &bo, &b, berr, sizeof berr);
  if (r < 0 && !cfg->read_only && (r == -EACCES || r == -EROFS || r == -EPERM)) {
    /* Readable but not writable: serving it read-only is the likely fix. */
    snprintf(err, errlen, "export '%s': %s; to serve it read-only, add ',ro' (%s%s%s,ro) or -r",
             cfg->name, berr, cfg->name, cfg->name[0] ? "=" : "", cfg->path);
  } else if (r < 0) {
    snprintf(err, errlen, "export '%s': %s", cfg->name, berr);
  }
  if (r < 0) {
    export_config_free(cfg);
    free(ex);
    return r;
  }
  struct backend_memory_stats ms;
  if (backend_memory_stats(b, &ms) == 0 && !cfg->read_only) {
    char cap[32];
    log_msg(LOG_INFO, NULL, cfg->name, "memory backend: writes beyond %s of pages fail with ENOSPC (max-memory)",
            units_format_bytes(ms.max_bytes, cap, sizeof cap));
  }
  struct dp_export_setup ds = { .name = cfg->name, .path = cfg->path, .datapath = cfg->datapath,
                                .chunk = (uint32_t)cfg->chunk, .read_only = cfg->read_only,
                                .qos = cfg->qos };
  if ((r = datapath_setup(&ex->dp, b, &ds, berr, sizeof berr)) < 0) {
    snprintf(err, errlen, "export '%s': %s", cfg->name, berr);
    export_put(ex);
    return r;
  }
  fill_proto(ex);
  *out = ex;
  return 0;
}

void export_table_refresh(struct export_table *t)
{
  for (size_t i = 0; i < t->n; i++) {
    struct export *ex = t->exports[i];
    struct backend *b = ex->dp.backend;
    if (b && b->ops->refresh && b->ops->refresh(b) == 0) {
      uint64_t size = __atomic_load_n(&b->size, __ATOMIC_RELAXED);
      /* the table's copy for handshakes, the export's for its connections */
      __atomic_store_n(&t->proto[i].size, size, __ATOMIC_RELAXED);
      __atomic_store_n(&ex->proto.size, size, __ATOMIC_RELAXED);
    }
  }
}

struct export *export_get(struct export *ex)
{
  atomic_fetch_add(&ex->refs, 1);
  return ex;
}

void export_put(struct export *ex)
{
  if (!ex || atomic_fetch_sub(&ex->refs, 1) != 1)
    return;
  dp_export_close(&ex->dp);
  export_config_free(&ex->cfg);
  free(ex);
}

struct export_table *export_table_new(size_t n)
{
  struct export_table *t = calloc(1, sizeof *t);

  if (t) {
    t->exports = calloc(n ? n : 1, sizeof *t->exports);
    t->proto = calloc(n ? n : 1, sizeof *t->proto);
    atomic_init(&t->refs, 1);
  }
  if (t && (!t->exports || !t->proto)) {
    free(t->exports);
    free(t->proto);
    free(t);
    t = NULL;
  }
  return t;
}

long export_table_find(const struct export_table *t, const char *name)
{
  for (size_t i = 0; i < t->n; i++)
    if (!strcmp(t->exports[i]->cfg.name, name))
      return (long)i;
  return -1;
}

int export_table_add(struct export_table *t, struct export *ex, char *err, size_t errlen)
{
  if (export_table_find(t, ex->cfg.name) >= 0) {
    snprintf(err, errlen, "export '%s' defined twice", ex->cfg.name);
    export_put(ex);
    return -EINVAL;
  }
  t->exports[t->n] = ex;
  t->proto[t->n] = ex->proto;
  t->n++;
  return 0;
}

int export_table_open(struct export_table **out, struct export_config *cfgs, size_t n,
                      char *err, size_t errlen)
{
  struct export_table *t = export_table_new(n);
  int r = 0;

  if (!t) {
    snprintf(err, errlen, "out of memory");
    r = -ENOMEM;
  }
  for (size_t i = 0; i < n; i++) {
    struct export *ex;
    if (r == 0 && export_table_find(t, cfgs[i].name) >= 0) {
      snprintf(err, errlen, "export '%s' defined twice", cfgs[i].name);
      r = -EINVAL;
    }
    if (r == 0 && (r = export_open(&cfgs[i], &ex, err, errlen)) == 0)
      r = export_table_add(t, ex, err, errlen);
    export_config_free(&cfgs[i]);   /* (taken, or not opened) */
  }
  if (r < 0) {
    export_table_put(t);
    t = NULL;
  }
  *out = t;
  return r;
}

struct export_table *export_table_get(struct export_table *t)
{
  atomic_fetch_add(&t->refs, 1);
  return t;
}

void export_table_put(struct export_table *t)
{
  if (!t || atomic_fetch_sub(&t->refs, 1) != 1)
    return;
  for (size_t i = 0; i < t->n; i++)
    export_put(t->exports[i]);
  free(t->exports);
  free(t->proto);
  free(t);
}
