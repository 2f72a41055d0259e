/* vconfig.c: the configuration of `shunt vhost` (see vconfig.h); the file
 * format is serve's (common/inifile.h) with [vhost SOCKET] sections. */
#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/inifile.h"
#include "common/log.h"
#include "common/parse.h"
#include "common/text.h"
#include "datapath/procopt.h"
#include "datapath/qosopt.h"
#include "datapath/sourceopt.h"
#include "vhost/vconfig.h"

void vhost_config_init(struct vhost_config *cfg)
{
  memset(cfg, 0, sizeof *cfg);
  cfg->log_level = LOG_INFO;
  cfg->socket_mode = 0600;
}

static void dev_free(struct vhost_dev_config *d)
{
  free(d->socket);
  free(d->source);
  free(d->datapath);
  free(d->serial);
  free(d->backend);
  backend_rbd_options_free(&d->rbd);
  memset(d, 0, sizeof *d);
}

void vhost_config_free(struct vhost_config *cfg)
{
  for (size_t i = 0; i < cfg->ndevs; i++)
    dev_free(&cfg->devs[i]);
  free(cfg->devs);
  free(cfg->stats_path);
  memset(cfg, 0, sizeof *cfg);
}

static struct vhost_dev_config *add_dev(struct vhost_config *cfg)
{
  struct vhost_dev_config *d = realloc(cfg->devs, (cfg->ndevs + 1) * sizeof *d);
  if (!d)
    return NULL;
  cfg->devs = d;
  d += cfg->ndevs++;
  memset(d, 0, sizeof *d);
  d->discard = true;
  return d;
}

bool vhost_source_is_uri(const char *source)
{
  return !strncmp(source, "nbd://", 6) || !strncmp(source, "nbds://", 7) ||
         !strncmp(source, "nbd+unix://", 11) || !strncmp(source, "nbds+unix://", 12) ||
         !strncmp(source, "nbd+vsock://", 12);
}

/* The serial: at most 20 bytes of printable ASCII (the guest shows it as
 * /sys/block/vdX/serial and in /dev/disk/by-id names). */
static int check_serial(const struct vhost_dev_config *d, const char *v, char *err, size_t errlen)
{
  if (strlen(v) > VHOST_SERIAL_MAX) {
    snprintf(err, errlen, "'%s': serial longer than %d bytes", d->socket ? d->socket : "", VHOST_SERIAL_MAX);
    return -EINVAL;
  }
  for (const char *p = v; *p; p++)
    if (!isprint((unsigned char)*p)) {
      snprintf(err, errlen, "'%s': serial must be printable ASCII", d->socket ? d->socket : "");
      return -EINVAL;
    }
  return 0;
}

static const char *const dev_backends[] = { "file", "rbd", NULL };

int vhost_dev_set_option(struct vhost_dev_config *d, const char *key, const char *val,
                         char *err, size_t errlen)
{
  const struct source_options so = {
    .kind = "", .name = d->socket, .backends = dev_backends, .read_only = &d->read_only,
    .backend = &d->backend, .datapath = &d->datapath, .rbd = &d->rbd, .qos = &d->qos,
  };
  int r = source_set_option(&so, key, val, err, errlen);
  uint64_t v;

  if (r <= 0)
    return r;
  if (!strcmp(key, "discard"))
    return parse_flag(val, &d->discard) < 0 ? source_bad_value(&so, key, val, err, errlen) : 0;
  if (!val)
    return source_unknown_option(&so, key, err, errlen);
  if (!strcmp(key, "queues")) {
    if (parse_uint(val, 1, VHOST_MAX_QUEUES, &v) < 0) {
      snprintf(err, errlen, "'%s': queues must be from 1 to %d", d->socket ? d->socket : "", VHOST_MAX_QUEUES);
      return -EINVAL;
    }
    d->queues = (unsigned)v;
    return 0;
  }
  if (!strcmp(key, "serial")) {
    r = check_serial(d, val, err, errlen);
    return r < 0 ? r : text_set(&d->serial, val, err, errlen);
  }
  if (!strcmp(key, "source") || !strcmp(key, "path"))
    return text_set(&d->source, val, err, errlen);
  return source_unknown_option(&so, key, err, errlen);
}

/* A socket path as given: not empty, clean text, short enough for sun_path. */
static int check_socket(const char *path, char *err, size_t errlen)
{
  char shown[256];

  if (!*path) {
    snprintf(err, errlen, "empty socket path");
    return -EINVAL;
  }
  if (!text_is_clean(path, strlen(path))) {
    snprintf(err, errlen, "socket path '%s' is not valid UTF-8 or holds control characters",
             text_escape(path, strlen(path), shown, sizeof shown));
    return -EINVAL;
  }
  if (strlen(path) >= 108) {
    snprintf(err, errlen, "socket path '%s': too long for a unix socket (107 bytes at most)", path);
    return -ENAMETOOLONG;
  }
  return 0;
}

/* vhost_dev_set_option for the option lists of specs and config files. */
static int set_dev_option(void *d, const char *key, const char *val, char *err, size_t errlen)
{
  return vhost_dev_set_option(d, key, val, err, errlen);
}

int vhost_config_add_spec(struct vhost_config *cfg, const char *spec, char *err, size_t errlen)
{
  const char *eq = strchr(spec, '=');
  char *rest, *opts;
  struct vhost_dev_config *d;
  int r = 0;

  if (!eq || eq == spec || !eq[1] || eq[1] == ',') {
    snprintf(err, errlen, "'%s': expected SOCKET=SOURCE[,OPTION]...", spec);
    return -EINVAL;
  }
  if (!(d = add_dev(cfg)) || !(d->socket = strndup(spec, (size_t)(eq - spec))) || !(rest = strdup(eq + 1))) {
    snprintf(err, errlen, "out of memory");
    return -ENOMEM;
  }
  if ((r = check_socket(d->socket, err, errlen)) < 0) {
    free(rest);
    return r;
  }
  if ((opts = strchr(rest, ',')))
    *opts++ = '\0';
  r = text_set(&d->source, rest, err, errlen);
  if (r == 0 && opts)
    r = parse_option_list(opts, set_dev_option, d, err, errlen);
  free(rest);
  return r;
}

int vhost_config_set_key(struct vhost_config *cfg, const char *key, const char *val,
                         char *err, size_t errlen)
{
  const struct proc_options po = {
    .threads = &cfg->threads, .arena = &cfg->arena, .stats_path = &cfg->stats_path, .log_level = &cfg->log_level,
    .qos = &cfg->qos,   /* no qos-key: a device is one flow, there is no key to choose */
  };
  int r = proc_set_key(&po, key, val, err, errlen);

  if (r <= 0)
    return r;
  if (!strcmp(key, "device") || !strcmp(key, "vhost"))
    return vhost_config_add_spec(cfg, val, err, errlen);
  if (!strcmp(key, "socket-mode")) {
    if (parse_mode(val, &cfg->socket_mode) < 0 || cfg->socket_mode == 0)
      return proc_bad_value(key, val, err, errlen);
    return 0;
  }
  return proc_unknown_key(key, err, errlen);
}

static int vconfig_dev(void *cfg, const char *sock, void **item, char *msg, size_t msglen)
{
  struct vhost_dev_config *d;
  int r;

  if ((r = check_socket(sock, msg, msglen)) < 0)
    return r;
  if (!(d = add_dev(cfg)) || !(d->socket = strdup(sock))) {
    snprintf(msg, msglen, "out of memory");
    return -ENOMEM;
  }
  *item = d;
  return 0;
}

static int vconfig_server_key(void *cfg, const char *key, const char *val, char *msg, size_t msglen)
{
  return vhost_config_set_key(cfg, key, val, msg, msglen);
}

int vhost_config_load_file(struct vhost_config *cfg, const char *path, char *err, size_t errlen)
{
  static const struct ini_layout layout = { .kind = "vhost", .name_what = "SOCKET", .item = vconfig_dev,
                                            .item_key = set_dev_option, .server_key = vconfig_server_key };

  return ini_load_layout(path, &layout, cfg, err, errlen);
}

int vhost_config_check(const struct vhost_config *cfg, char *err, size_t errlen)
{
  for (size_t i = 0; i < cfg->ndevs; i++) {
    const struct vhost_dev_config *d = &cfg->devs[i];
    if (!d->source || !*d->source) {
      snprintf(err, errlen, "'%s': no source (SOCKET=SOURCE, or source = in its section)", d->socket);
      return -EINVAL;
    }
    bool rbd = d->backend && !strcmp(d->backend, "rbd");
    if (!rbd && backend_rbd_options_set(&d->rbd)) {
      snprintf(err, errlen, "'%s': ceph-conf, ceph-id, ceph-cluster and lock are options of backend=rbd", d->socket);
      return -EINVAL;
    }
    if (rbd && vhost_source_is_uri(d->source)) {
      snprintf(err, errlen, "'%s': backend=rbd takes POOL/IMAGE[@SNAP], not a URI", d->socket);
      return -EINVAL;
    }
    if (vhost_source_is_uri(d->source) && qos_flow_options_set(&d->qos)) {
      snprintf(err, errlen, "'%s': weight=, reserve-iops=, limit-iops= and limit-bw= schedule a local "
               "device; %s is remote", d->socket, d->source);
      return -EINVAL;
    }
    for (size_t j = 0; j < i; j++)
      if (!strcmp(cfg->devs[j].socket, d->socket)) {
        snprintf(err, errlen, "socket '%s' given twice", d->socket);
        return -EINVAL;
      }
  }
  return 0;
}
