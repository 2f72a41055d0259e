/* config.c: the server configuration and its file format (docs/config.md):
 * INI-style, a [server] part (also the default before any section) and one
 * [export NAME] section per export; keys mirror the command line. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/inifile.h"
#include "common/log.h"
#include "common/parse.h"
#include "common/text.h"
#include "datapath/procopt.h"
#include "server/config.h"

void config_init(struct server_config *cfg)
{
  memset(cfg, 0, sizeof *cfg);
  cfg->log_level = LOG_INFO;
  cfg->max_inflight = SHUNT_DEFAULT_MAX_INFLIGHT;
  cfg->handshake_timeout = SHUNT_DEFAULT_HANDSHAKE_TIMEOUT;
  cfg->max_connections = SHUNT_DEFAULT_MAX_CONNECTIONS;
  cfg->send_timeout = SHUNT_DEFAULT_SEND_TIMEOUT;
  cfg->control_mode = 0600;
}

static void free_strv(char **v, size_t n)
{
  for (size_t i = 0; i < n; i++)
    free(v[i]);
  free(v);
}

void config_free(struct server_config *cfg)
{
  free_strv(cfg->listen, cfg->nlisten);
  free_strv(cfg->unix_paths, cfg->nunix);
  free(cfg->stats_path);
  free(cfg->control_path);
  free(cfg->metrics_listen);
  for (size_t i = 0; i < cfg->nexports; i++)
    export_config_free(&cfg->exports[i]);
  free(cfg->exports);
  tls_config_free(&cfg->tls);
  memset(cfg, 0, sizeof *cfg);
}

static int strv_add(char ***v, size_t *n, const char *s)
{
  char **nv = realloc(*v, (*n + 1) * sizeof *nv);
  if (!nv)
    return -ENOMEM;
  *v = nv;
  if (!(nv[*n] = strdup(s)))
    return -ENOMEM;
  (*n)++;
  return 0;
}

int config_add_listen(struct server_config *cfg, const char *hostport)
{
  return strv_add(&cfg->listen, &cfg->nlisten, hostport);
}

int config_add_unix(struct server_config *cfg, const char *path)
{
  return strv_add(&cfg->unix_paths, &cfg->nunix, path);
}

static struct export_config *add_export(struct server_config *cfg)
{
  struct export_config *e = realloc(cfg->exports, (cfg->nexports + 1) * sizeof *e);
  if (!e)
    return NULL;
  cfg->exports = e;
  memset(&e[cfg->nexports], 0, sizeof *e);
  return &e[cfg->nexports++];
}

int config_add_export_spec(struct server_config *cfg, const char *spec, char *err, size_t errlen)
{
  struct export_config ec;
  int r = export_parse_spec(spec, &ec, err, errlen);
  if (r < 0)
    return r;
  struct export_config *e = add_export(cfg);
  if (!e) {
    export_config_free(&ec);
    snprintf(err, errlen, "out of memory");
    return -ENOMEM;
  }
  *e = ec;
  return 0;
}

int config_set_tls(struct server_config *cfg, const char *key, const char *val,
                   char *err, size_t errlen)
{
  char **dst = NULL;
  bool b;

  if (!strcmp(key, "tls")) {
    if (tls_parse_mode(val, &cfg->tls.mode) < 0) goto bad;
    return 0;
  }
  if (!strcmp(key, "tls-verify-peer")) {
    if (parse_bool(val, &b) < 0) goto bad;
    cfg->tls.verify_peer = b;
    return 0;
  }
  if (!strcmp(key, "tls-allow-dn"))
    return tls_config_add_dn(&cfg->tls, val);
  if (!strcmp(key, "tls-priority")) {
    char why[256];
    if (tls_priority_check(val, why, sizeof why) < 0) {
      snprintf(err, errlen, "bad value for '%s': %s", key, why);
      return -EINVAL;
    }
    dst = &cfg->tls.priority;
  }
  if (!strcmp(key, "tls-certificates"))
    dst = &cfg->tls.certificates;
  else if (!strcmp(key, "tls-psk"))
    dst = &cfg->tls.psk_file;
  if (!dst)
    return proc_unknown_key(key, err, errlen);
  free(*dst);
  if (!(*dst = strdup(val)))
    return -ENOMEM;
  return 0;
bad:
  return proc_bad_value(key, val, err, errlen);
}

int config_set_server_key(struct server_config *cfg, const char *key, const char *val,
                          char *err, size_t errlen)
{
  const struct proc_options po = {
    .threads = &cfg->threads, .arena = &cfg->arena, .stats_path = &cfg->stats_path, .log_level = &cfg->log_level,
    .log_target = &cfg->log_target, .qos = &cfg->qos, .qos_key = true,
  };
  int r = proc_set_key(&po, key, val, err, errlen);
  uint64_t v;

  if (r <= 0)
    return r;
  if (!strcmp(key, "listen"))
    return config_add_listen(cfg, val);
  if (!strcmp(key, "unix"))
    return config_add_unix(cfg, val);
  if (!strcmp(key, "export"))
    return config_add_export_spec(cfg, val, err, errlen);
  if (!strcmp(key, "max-inflight")) {
    if (parse_size(val, &v) < 0 || v < (33u << 20)) goto bad;
    cfg->max_inflight = v;
    return 0;
  }
  if (!strcmp(key, "chunk")) {
    if (parse_size(val, &v) < 0 || v < 4096 || v > (32u << 20) || v % 4096) goto bad;
    cfg->chunk = v;
    return 0;
  }
  if (!strcmp(key, "control") || !strcmp(key, "metrics")) {
    if (!val[0]) goto bad;
    return text_set(key[0] == 'c' ? &cfg->control_path : &cfg->metrics_listen, val, err, errlen);
  }
  if (!strcmp(key, "control-mode")) {
    if (parse_mode(val, &cfg->control_mode) < 0) goto bad;
    return 0;
  }
  if (!strncmp(key, "tls", 3))
    return config_set_tls(cfg, key, val, err, errlen);
  if (!strcmp(key, "handshake-timeout")) {
    if (parse_uint(val, 0, SHUNT_MAX_HANDSHAKE_TIMEOUT, &v) < 0) goto bad;
    cfg->handshake_timeout = (unsigned)v;
    return 0;
  }
  if (!strcmp(key, "max-connections")) {
    if (parse_uint(val, 0, SHUNT_MAX_MAX_CONNECTIONS, &v) < 0) goto bad;
    cfg->max_connections = (unsigned)v;
    return 0;
  }
  if (!strcmp(key, "send-timeout")) {
    if (parse_uint(val, 0, SHUNT_MAX_SEND_TIMEOUT, &v) < 0) goto bad;
    cfg->send_timeout = (unsigned)v;
    return 0;
  }
  if (!strcmp(key, "memory-budget")) {
    if (parse_size(val, &v) < 0 || v < SHUNT_MIN_MEMORY_BUDGET) goto bad;
    cfg->memory_budget = v;
    return 0;
  }
  return proc_unknown_key(key, err, errlen);
bad:
  return proc_bad_value(key, val, err, errlen);
}

static bool same_str(const char *a, const char *b)
{
  return a == b || (a && b && !strcmp(a, b));
}

static bool same_strv(char *const *a, size_t na, char *const *b, size_t nb)
{
  if (na != nb)
    return false;
  for (size_t i = 0; i < na; i++)
    if (strcmp(a[i], b[i]))
      return false;
  return true;
}

size_t config_server_diff(const struct server_config *a, const struct server_config *b,
                          const char **keys, size_t max)
{
  const struct tls_config *ta = &a->tls, *tb = &b->tls;
  struct { const char *key; bool same; } f[] = {
    { "listen", same_strv(a->listen, a->nlisten, b->listen, b->nlisten) },
    { "unix", same_strv(a->unix_paths, a->nunix, b->unix_paths, b->nunix) },
    { "threads", a->threads == b->threads },
    { "log", a->log_level == b->log_level && a->log_target == b->log_target },
    { "max-inflight", a->max_inflight == b->max_inflight },
    { "handshake-timeout", a->handshake_timeout == b->handshake_timeout },
    { "max-connections", a->max_connections == b->max_connections },
    { "send-timeout", a->send_timeout == b->send_timeout },
    { "memory-budget", a->memory_budget == b->memory_budget },
    { "chunk", a->chunk == b->chunk },
    { "arena", a->arena == b->arena },
    { "stats", same_str(a->stats_path, b->stats_path) },
    { "qos", a->qos.off == b->qos.off },
    { "qos-key", a->qos.key == b->qos.key },
    { "device-iops", a->qos.dev.device_iops == b->qos.dev.device_iops },
    { "device-bw", a->qos.dev.device_bw == b->qos.dev.device_bw },
    { "control", same_str(a->control_path, b->control_path) },
    { "control-mode", a->control_mode == b->control_mode },
    { "metrics", same_str(a->metrics_listen, b->metrics_listen) },
    { "tls", ta->mode == tb->mode },
    { "tls-certificates", same_str(ta->certificates, tb->certificates) },
    { "tls-psk", same_str(ta->psk_file, tb->psk_file) },
    { "tls-priority", same_str(ta->priority, tb->priority) },
    { "tls-verify-peer", ta->verify_peer == tb->verify_peer },
    { "tls-allow-dn", same_strv(ta->allow_dn, ta->nallow_dn, tb->allow_dn, tb->nallow_dn) },
  };
  size_t n = 0;

  for (size_t i = 0; i < sizeof f / sizeof f[0]; i++)
    if (!f[i].same) {
      if (n < max)
        keys[n] = f[i].key;
      n++;
    }
  return n;
}

static int config_export(void *arg, const char *name, void **item, char *msg, size_t msglen)
{
  struct server_config *cfg = arg;
  struct export_config *e;
  int r;

  if ((r = export_check_name(name, msg, msglen)) < 0)
    return r;
  for (size_t i = 0; i < cfg->nexports; i++)
    if (!strcmp(cfg->exports[i].name, name)) {
      snprintf(msg, msglen, "export '%s' defined twice", name);
      return -EINVAL;
    }
  if (!(e = add_export(cfg)) || !(e->name = strdup(name))) {
    snprintf(msg, msglen, "out of memory");
    return -ENOMEM;
  }
  *item = e;
  return 0;
}

static int config_export_key(void *e, const char *key, const char *val, char *msg, size_t msglen)
{
  return export_set_option(e, key, val, msg, msglen);
}

static int config_server_key(void *cfg, const char *key, const char *val, char *msg, size_t msglen)
{
  return config_set_server_key(cfg, key, val, msg, msglen);
}

int config_load_file(struct server_config *cfg, const char *path, char *err, size_t errlen)
{
  static const struct ini_layout layout = { .kind = "export", .name_what = "NAME", .item = config_export,
                                            .item_key = config_export_key, .server_key = config_server_key };
  int r = ini_load_layout(path, &layout, cfg, err, errlen);

  if (r < 0)
    return r;
  for (size_t i = 0; i < cfg->nexports; i++)
    if (!cfg->exports[i].path) {
      snprintf(err, errlen, "%s: export '%s' has no path", path, cfg->exports[i].name);
      return -EINVAL;
    }
  return 0;
}
