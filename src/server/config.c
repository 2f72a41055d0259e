/* config.c: the server configuration and its file format (docs/config.md):
 * INI-style, a [server] part (also the default before any section) and one
 * [export NAME] section per export; keys mirror the command line. */
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/log.h"
#include "common/parse.h"
#include "datapath/qos.h"
#include "server/config.h"

/* Longest config line accepted, newline included. */
#define CONFIG_MAX_LINE 8191

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

static char *trim(char *s)
{
  char *end;
  while (isspace((unsigned char)*s))
    s++;
  end = s + strlen(s);
  while (end > s && isspace((unsigned char)end[-1]))
    *--end = '\0';
  return s;
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
  if (!strcmp(key, "tls-certificates"))
    dst = &cfg->tls.certificates;
  else if (!strcmp(key, "tls-psk"))
    dst = &cfg->tls.psk_file;
  if (!dst) {
    snprintf(err, errlen, "unknown server key '%s'", key);
    return -EINVAL;
  }
  free(*dst);
  if (!(*dst = strdup(val)))
    return -ENOMEM;
  return 0;
bad:
  snprintf(err, errlen, "bad value '%s' for '%s'", val, key);
  return -EINVAL;
}

int config_set_server_key(struct server_config *cfg, const char *key, const char *val,
                          char *err, size_t errlen)
{
  uint64_t v;

  if (!strcmp(key, "listen"))
    return config_add_listen(cfg, val);
  if (!strcmp(key, "unix"))
    return config_add_unix(cfg, val);
  if (!strcmp(key, "export"))
    return config_add_export_spec(cfg, val, err, errlen);
  if (!strcmp(key, "threads")) {
    if (parse_uint(val, 1, 1024, &v) < 0) goto bad;
    cfg->threads = (unsigned)v;
    return 0;
  }
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
  if (!strcmp(key, "arena")) {
    if (parse_size(val, &v) < 0 || v < (1u << 20) || v > (UINT64_C(64) << 30)) goto bad;
    cfg->arena = v;
    return 0;
  }
  if (!strcmp(key, "qos")) {
    bool b;
    if (parse_bool(val, &b) < 0) goto bad;
    cfg->qos_off = !b;
    return 0;
  }
  if (!strcmp(key, "qos-key")) {
    if (!strcmp(val, "conn")) cfg->qos_key = DP_QOS_KEY_CONN;
    else if (!strcmp(val, "addr")) cfg->qos_key = DP_QOS_KEY_ADDR;
    else if (!strcmp(val, "tls")) cfg->qos_key = DP_QOS_KEY_TLS;
    else goto bad;
    return 0;
  }
  if (!strcmp(key, "device-iops")) {
    if (parse_uint(val, 0, UINT64_C(1000000000), &v) < 0) goto bad;
    cfg->device_iops = v;
    return 0;
  }
  if (!strcmp(key, "device-bw")) {
    if (parse_size(val, &v) < 0) goto bad;
    cfg->device_bw = v;
    return 0;
  }
  if (!strcmp(key, "stats") || !strcmp(key, "control") || !strcmp(key, "metrics")) {
    char **dst = key[0] == 's' ? &cfg->stats_path : key[0] == 'c' ? &cfg->control_path : &cfg->metrics_listen;
    char *p;
    if (!val[0] && dst != &cfg->stats_path) goto bad;
    if (!(p = strdup(val))) return -ENOMEM;
    free(*dst);
    *dst = p;
    return 0;
  }
  if (!strcmp(key, "control-mode")) {
    char *end;
    unsigned long m = strtoul(val, &end, 8);
    if (!val[0] || *end || m > 0777) goto bad;
    cfg->control_mode = (unsigned)m;
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
  if (!strcmp(key, "log")) {
    static const char *const names[] = { "error", "warning", "info", "debug" };
    enum log_target target;
    if (log_parse_target(val, &target) == 0) {
      cfg->log_target = target;
      return 0;
    }
    for (int i = 0; i < 4; i++)
      if (!strcmp(val, names[i])) {
        cfg->log_level = i;
        return 0;
      }
    goto bad;
  }
  snprintf(err, errlen, "unknown server key '%s'", key);
  return -EINVAL;
bad:
  snprintf(err, errlen, "bad value '%s' for '%s'", val, key);
  return -EINVAL;
}

/* Open path for reading: a regular file, or a pipe (--config <(...)) read
 * to its end.  Anything else is refused: a directory reads as an empty file
 * on some systems (every tls = require and allow= silently gone), and a
 * device or socket is no config file. */
static FILE *open_config(const char *path, char *err, size_t errlen, int *r)
{
  struct stat st;
  FILE *f;
  /* O_NONBLOCK: opening a FIFO must not wait for a writer before we know
   * what it is (regular files ignore the flag). */
  int fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK);

  if (fd >= 0 && fstat(fd, &st) == 0 && S_ISFIFO(st.st_mode)) {
    /* A pipe: reopen blocking, so that its writer is waited for. */
    close(fd);
    fd = open(path, O_RDONLY | O_CLOEXEC);
  }
  if (fd < 0 || fstat(fd, &st) < 0) {
    *r = -errno;
    snprintf(err, errlen, "%s: %s", path, strerror(errno));
    if (fd >= 0) close(fd);
    return NULL;
  }
  if (!S_ISREG(st.st_mode) && !S_ISFIFO(st.st_mode)) {
    *r = -EINVAL;
    snprintf(err, errlen, "%s: not a regular file%s", path, S_ISDIR(st.st_mode) ? " (a directory)" : "");
    close(fd);
    return NULL;
  }
  if (!(f = fdopen(fd, "r"))) {
    *r = -errno;
    snprintf(err, errlen, "%s: %s", path, strerror(errno));
    close(fd);
  }
  return f;
}

int config_load_file(struct server_config *cfg, const char *path, char *err, size_t errlen)
{
  char *line = NULL, msg[512];
  size_t cap = 0;
  ssize_t len;
  struct export_config *cur = NULL;
  unsigned lineno = 0;
  int r = 0;
  FILE *f = open_config(path, err, errlen, &r);

  if (!f)
    return r;
  while (r == 0 && (len = getline(&line, &cap, f)) >= 0) {
    char *s, *eq, *key, *val;
    lineno++;
    if (memchr(line, '\0', (size_t)len)) {
      snprintf(msg, sizeof msg, "NUL byte in line");
      r = -EINVAL;
      break;
    }
    if (len > CONFIG_MAX_LINE) {
      snprintf(msg, sizeof msg, "line too long (more than %d bytes)", CONFIG_MAX_LINE);
      r = -EINVAL;
      break;
    }
    s = trim(line);
    if (!*s || *s == '#' || *s == ';')
      continue;
    if (*s == '[') {
      char *end = strchr(s, ']');
      if (!end || end[1]) {
        snprintf(msg, sizeof msg, "malformed section header");
        r = -EINVAL;
        break;
      }
      *end = '\0';
      s = trim(s + 1);
      if (!strcmp(s, "server")) {
        cur = NULL;
      } else if (!strncmp(s, "export", 6) && isspace((unsigned char)s[6])) {
        const char *name = trim(s + 7);
        r = export_check_name(name, msg, sizeof msg);
        for (size_t i = 0; r == 0 && i < cfg->nexports; i++)
          if (!strcmp(cfg->exports[i].name, name)) {
            snprintf(msg, sizeof msg, "export '%s' defined twice", name);
            r = -EINVAL;
          }
        if (r == 0 && (!(cur = add_export(cfg)) || !(cur->name = strdup(name)))) {
          snprintf(msg, sizeof msg, "out of memory");
          r = -ENOMEM;
        }
      } else {
        snprintf(msg, sizeof msg, "unknown section [%s] (expected [server] or [export NAME])", s);
        r = -EINVAL;
      }
      continue;
    }
    eq = strchr(s, '=');
    if (!eq) {
      key = s;
      val = NULL;
    } else {
      *eq = '\0';
      key = trim(s);
      val = trim(eq + 1);
    }
    if (cur) {
      r = export_set_option(cur, key, val, msg, sizeof msg);
    } else if (!val) {
      snprintf(msg, sizeof msg, "expected KEY = VALUE");
      r = -EINVAL;
    } else {
      r = config_set_server_key(cfg, key, val, msg, sizeof msg);
    }
  }
  if (r == 0 && ferror(f)) {
    /* A read error must not pass for the end of the file: the rest of it
     * may hold the tls = require or allow= lines that matter most. */
    r = -EIO;
    snprintf(msg, sizeof msg, "read error after this line");
  }
  free(line);
  fclose(f);
  if (r < 0) {
    snprintf(err, errlen, "%s:%u: %s", path, lineno, msg);
    return r;
  }
  for (size_t i = 0; i < cfg->nexports; i++)
    if (!cfg->exports[i].path) {
      snprintf(err, errlen, "%s: export '%s' has no path", path, cfg->exports[i].name);
      return -EINVAL;
    }
  return 0;
}
