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
#include "datapath/qosopt.h"
#include "proto/nbd-protocol.h"
#include "server/export.h"

static int set_str(char **dst, const char *v, char *err, size_t errlen)
{
  char *s = strdup(v);
  if (!s) {
    snprintf(err, errlen, "out of memory");
    return -ENOMEM;
  }
  free(*dst);
  *dst = s;
  return 0;
}

int export_set_option(struct export_config *cfg, const char *key, const char *value,
                      char *err, size_t errlen)
{
  if (!strcmp(key, "ro") || !strcmp(key, "readonly") || !strcmp(key, "read-only")) {
    if (parse_flag(value, &cfg->read_only) < 0) goto bad;
    return 0;
  }
  if (!strcmp(key, "rw") && !value) {
    cfg->read_only = false;
    return 0;
  }
  if (!strcmp(key, "allow-overcommit")) {
    if (parse_flag(value, &cfg->allow_overcommit) < 0) goto bad;
    return 0;
  }
  char who[64];
  snprintf(who, sizeof who, "export '%s'", cfg->name ? cfg->name : "");
  int rr = backend_rbd_set_option(&cfg->rbd, key, value, who, err, errlen);
  if (rr <= 0)
    return rr;
  switch (qos_set_flow_option(&cfg->qos, key, value)) {
  case 0: return 0;
  case -EINVAL: goto bad;
  default: break;   /* not a scheduler option */
  }
  if (!value)
    goto unknown;
  if (!strcmp(key, "desc") || !strcmp(key, "description")) {
    if (strlen(value) > NBD_MAX_STRING) {
      snprintf(err, errlen, "export '%s': description longer than 4096 bytes", cfg->name);
      return -EINVAL;
    }
    return set_str(&cfg->description, value, err, errlen);
  }
  if (!strcmp(key, "backend")) {
    if (strcmp(value, "file") && strcmp(value, "memory") && strcmp(value, "rbd")) goto bad;
    return set_str(&cfg->backend, value, err, errlen);
  }
  if (!strcmp(key, "datapath")) {
    if (!datapath_find(value) && strcmp(value, "auto")) goto bad;
    return set_str(&cfg->datapath, value, err, errlen);
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
    if (parse_size(value, &v) < 0 || v == 0) goto bad;
    cfg->max_memory = v;
    return 0;
  }
  if (!strcmp(key, "path"))
    return set_str(&cfg->path, value, err, errlen);
  if (!strcmp(key, "allow") || !strcmp(key, "allow-ro") || !strcmp(key, "deny")) {
    char msg[256];
    int r = access_add_rule(&cfg->access, key, value, msg, sizeof msg);
    if (r < 0)
      snprintf(err, errlen, "export '%s': %s", cfg->name ? cfg->name : "", msg);
    return r;
  }
unknown:
  snprintf(err, errlen, "export '%s': unknown option '%s'", cfg->name ? cfg->name : "", key);
  return -EINVAL;
bad:
  snprintf(err, errlen, "export '%s': bad value '%s' for option '%s'", cfg->name ? cfg->name : "", value ? value : "", key);
  return -EINVAL;
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

int export_parse_spec(const char *spec, struct export_config *cfg, char *err, size_t errlen)
{
  const char *eq = strchr(spec, '=');
  char *rest, *opt, *save = NULL;
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
  opt = strtok_r(rest, ",", &save);
  if (!opt || !*opt || eq[1] == ',') {
    snprintf(err, errlen, "export '%s': missing PATH", cfg->name);
    free(rest);
    r = -EINVAL;
    goto out;
  }
  cfg->path = strdup(opt);
  while (r == 0 && (opt = strtok_r(NULL, ",", &save))) {
    char *v = strchr(opt, '=');
    if (v)
      *v++ = '\0';
    r = export_set_option(cfg, opt, v, err, errlen);
  }
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

int export_table_open(struct export_table *t, struct export_config *cfgs, size_t n,
                      char *err, size_t errlen)
{
  memset(t, 0, sizeof *t);
  t->exports = calloc(n ? n : 1, sizeof *t->exports);
  t->proto = calloc(n ? n : 1, sizeof *t->proto);
  if (!t->exports || !t->proto) {
    free(t->exports); free(t->proto);
    snprintf(err, errlen, "out of memory");
    return -ENOMEM;
  }
  for (size_t i = 0; i < n; i++) {
    struct export *ex = &t->exports[i];
    struct proto_export *pe = &t->proto[i];
    struct backend *b;
    char berr[256];
    int r;

    for (size_t j = 0; j < i; j++)
      if (!strcmp(t->exports[j].cfg.name, cfgs[i].name)) {
        snprintf(err, errlen, "export '%s' defined twice", cfgs[i].name);
        export_table_close(t);
        return -EINVAL;
      }
    if (!cfgs[i].path) {
      snprintf(err, errlen, "export '%s': no path", cfgs[i].name);
      export_table_close(t);
      return -EINVAL;
    }
    if ((r = check_file_type(&cfgs[i], err, errlen)) < 0) {
      export_table_close(t);
      return r;
    }
    struct backend_options bo = { .allow_overcommit = cfgs[i].allow_overcommit,
                                  .max_memory = cfgs[i].max_memory, .rbd = &cfgs[i].rbd };
    r = backend_open_opts(cfgs[i].backend, cfgs[i].path, cfgs[i].read_only, &bo, &b, berr, sizeof berr);
    if (r < 0 && !cfgs[i].read_only && (r == -EACCES || r == -EROFS || r == -EPERM)) {
      /* Readable but not writable: serving it read-only is the likely fix. */
      snprintf(err, errlen, "export '%s': %s; to serve it read-only, add ',ro' (%s%s%s,ro) or -r",
               cfgs[i].name, berr, cfgs[i].name, cfgs[i].name[0] ? "=" : "", cfgs[i].path);
      export_table_close(t);
      return r;
    }
    if (r < 0) {
      snprintf(err, errlen, "export '%s': %s", cfgs[i].name, berr);
      export_table_close(t);
      return r;
    }
    struct backend_memory_stats ms;
    if (backend_memory_stats(b, &ms) == 0 && !cfgs[i].read_only) {
      char cap[32];
      log_msg(LOG_INFO, NULL, cfgs[i].name, "memory backend: writes beyond %s of pages fail with ENOSPC (max-memory)",
              units_format_bytes(ms.max_bytes, cap, sizeof cap));
    }
    ex->cfg = cfgs[i];
    memset(&cfgs[i], 0, sizeof cfgs[i]);
    t->n = i + 1;
    struct dp_export_setup ds = { .name = ex->cfg.name, .path = ex->cfg.path, .datapath = ex->cfg.datapath,
                                  .chunk = (uint32_t)ex->cfg.chunk, .read_only = ex->cfg.read_only,
                                  .qos = ex->cfg.qos };
    if ((r = datapath_setup(&ex->dp, b, &ds, berr, sizeof berr)) < 0) {
      snprintf(err, errlen, "export '%s': %s", ex->cfg.name, berr);
      export_table_close(t);
      return r;
    }

    pe->name = ex->cfg.name;
    pe->description = ex->cfg.description;
    pe->size = b->size;
    pe->read_only = ex->cfg.read_only || b->read_only;   /* b: e.g. an rbd snapshot */
    ex->cfg.read_only = pe->read_only;
    pe->can_trim = b->can_trim;
    pe->can_zero = b->can_zero;
    pe->can_fast_zero = b->can_fast_zero;
    pe->can_cache = b->can_cache;
    pe->can_flush = b->can_flush;
    pe->can_fua = b->can_flush && !ex->cfg.read_only;
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
  return 0;
}

void export_table_refresh(struct export_table *t)
{
  for (size_t i = 0; i < t->n; i++) {
    struct backend *b = t->exports[i].dp.backend;
    if (b && b->ops->refresh && b->ops->refresh(b) == 0)
      __atomic_store_n(&t->proto[i].size, __atomic_load_n(&b->size, __ATOMIC_RELAXED), __ATOMIC_RELAXED);
  }
}

void export_table_close(struct export_table *t)
{
  for (size_t i = 0; i < t->n; i++) {
    struct export *ex = &t->exports[i];
    dp_export_close(&ex->dp);
    export_config_free(&ex->cfg);
  }
  free(t->exports);
  free(t->proto);
  memset(t, 0, sizeof *t);
}
