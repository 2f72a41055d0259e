/* reload.c: reading the configuration again on SIGHUP and publishing the
 * new export table (reload.h).  The table is a snapshot (export.h): a new
 * one is built beside the old, sharing the exports that did not change,
 * then swapped in under the locks that its readers take (handshakes through
 * server_exports_get, the statistics under stats_lock); connections keep
 * what they hold. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "backend/backend.h"
#include "common/log.h"
#include "datapath/datapath.h"
#include "datapath/qos.h"
#include "server/config.h"
#include "server/export.h"
#include "server/reload.h"
#include "server/server.h"

void reload_log_export(const struct export *ex)
{
  log_msg(LOG_INFO, NULL, ex->cfg.name, "%s backend on %s, %llu bytes%s, data path %s, chunk %u",
          ex->dp.backend->ops->name, ex->cfg.path, (unsigned long long)ex->proto.size,
          ex->proto.read_only ? ", read-only" : "", ex->dp.datapath->name, ex->dp.chunk);
}

static bool same_qos(const struct sched_params *a, const struct sched_params *b)
{
  return a->weight == b->weight && a->reserve_iops == b->reserve_iops && a->limit_iops == b->limit_iops
         && a->limit_bw == b->limit_bw;
}

/* A kept export's scheduler settings, when the new configuration changed
 * them: its open flows take them at once. */
static void apply_qos(struct export *ex, const struct sched_params *p)
{
  if (same_qos(&ex->cfg.qos, p))
    return;
  ex->cfg.qos = *p;
  dp_qos_set(&ex->dp, p);
  log_msg(LOG_INFO, NULL, ex->cfg.name, "scheduler settings changed, open flows included: weight=%u "
          "reserve-iops=%llu limit-iops=%llu limit-bw=%llu", p->weight ? p->weight : SCHED_DEFAULT_WEIGHT,
          (unsigned long long)p->reserve_iops, (unsigned long long)p->limit_iops,
          (unsigned long long)p->limit_bw);
}

/* The table for new's exports: old's where they did not change (want[i]:
 * the scheduler settings the i-th should get), opened anew otherwise.
 * NULL when any export cannot be opened (each problem logged). */
static struct export_table *build(const struct export_table *old, struct server_config *new,
                                  struct sched_params *want, const char *file)
{
  struct export_table *t = export_table_new(new->nexports);
  unsigned problems = 0;
  char err[512];

  if (!t) {
    log_msg(LOG_ERROR, NULL, NULL, "SIGHUP: out of memory");
    return NULL;
  }
  for (size_t i = 0; i < new->nexports; i++) {
    struct export_config *cfg = &new->exports[i];
    struct export *ex;
    long j = export_table_find(old, cfg->name);

    if (export_table_find(t, cfg->name) >= 0) {
      log_msg(LOG_ERROR, NULL, NULL, "SIGHUP: %s: export '%s' defined twice", file, cfg->name);
      problems++;
      continue;
    }
    want[t->n] = cfg->qos;
    if (j >= 0 && export_config_same(&old->exports[j]->cfg, cfg)) {
      ex = export_get(old->exports[j]);
    } else if (export_open(cfg, &ex, err, sizeof err) < 0) {
      log_msg(LOG_ERROR, NULL, NULL, "SIGHUP: %s: %s", file, err);
      problems++;
      continue;
    }
    if (export_table_add(t, ex, err, sizeof err) < 0) {
      log_msg(LOG_ERROR, NULL, NULL, "SIGHUP: %s: %s", file, err);
      problems++;
    }
  }
  if (problems) {
    log_msg(LOG_ERROR, NULL, NULL, "SIGHUP: %u problem%s in %s: the configuration in use is kept whole",
            problems, problems > 1 ? "s" : "", file);
    export_table_put(t);   /* closes what it opened */
    return NULL;
  }
  return t;
}

/* Log what the swap from old to t changed; apply the kept exports' new
 * scheduler settings. */
static void report(const struct export_table *old, struct export_table *t, const struct sched_params *want,
                   const char *file)
{
  unsigned added = 0, changed = 0, removed = 0, kept = 0;

  for (size_t i = 0; i < t->n; i++) {
    struct export *ex = t->exports[i];
    long j = export_table_find(old, ex->cfg.name);
    if (j >= 0 && old->exports[j] == ex) {
      kept++;
      apply_qos(ex, &want[i]);
      continue;
    }
    j >= 0 ? changed++ : added++;
    log_msg(LOG_INFO, NULL, ex->cfg.name, "%s by the reload", j >= 0 ? "changed: new connections get the new "
            "settings, open ones keep the old until they close" : "added");
    reload_log_export(ex);
  }
  for (size_t j = 0; j < old->n; j++)
    if (export_table_find(t, old->exports[j]->cfg.name) < 0) {
      removed++;
      log_msg(LOG_INFO, NULL, old->exports[j]->cfg.name, "removed by the reload: new connections are refused, "
              "open ones are served until they close");
    }
  log_msg(LOG_INFO, NULL, NULL, "SIGHUP: reloaded %s: %zu exports (%u added, %u removed, %u changed, %u kept)",
          file, t->n, added, removed, changed, kept);
}

int server_reload(struct server *srv)
{
  struct server_config *cur = srv->cfg, new;
  const char *file = cur->config_file, *keys[32];
  struct export_table *old, *t, *prev;
  struct sched_params *want;
  char err[512];
  size_t nkeys;
  int r = 0;

  if (!file || !cur->reload) {
    log_msg(LOG_WARN, NULL, NULL, "SIGHUP: the exports were given on the command line, not in a "
            "configuration file: nothing to reload");
    return 0;
  }
  log_msg(LOG_INFO, NULL, NULL, "SIGHUP: reading %s again", file);
  config_init(&new);
  if ((r = cur->reload(&new, cur->reload_arg, err, sizeof err)) < 0) {
    log_msg(LOG_ERROR, NULL, NULL, "SIGHUP: %s; the configuration in use is kept whole", err);
    config_free(&new);
    return r;
  }
  if (new.nexports == 0) {
    log_msg(LOG_ERROR, NULL, NULL, "SIGHUP: %s names no export; the configuration in use is kept whole", file);
    config_free(&new);
    return -EINVAL;
  }
  if (!(want = calloc(new.nexports, sizeof *want))) {
    log_msg(LOG_ERROR, NULL, NULL, "SIGHUP: out of memory");
    config_free(&new);
    return -ENOMEM;
  }
  old = server_exports_get(srv);
  if (!(t = build(old, &new, want, file))) {
    r = -EINVAL;
    goto out;
  }
  nkeys = config_server_diff(cur, &new, keys, sizeof keys / sizeof keys[0]);
  for (size_t i = 0; i < nkeys && i < sizeof keys / sizeof keys[0]; i++)
    log_msg(LOG_WARN, NULL, NULL, "SIGHUP: %s: '%s' differs from the running server's; server-wide settings are "
            "not reloaded (restart shunt serve to apply it)", file, keys[i]);
  report(old, t, want, file);
  /* Publish: handshakes from now on get t; the statistics walk t. */
  pthread_mutex_lock(&srv->stats_lock);
  pthread_mutex_lock(&srv->exports_lock);
  prev = srv->exports;
  srv->exports = t;
  pthread_mutex_unlock(&srv->exports_lock);
  pthread_mutex_unlock(&srv->stats_lock);
  export_table_put(prev);   /* the server's reference; a removed export closes with its last connection */
out:
  export_table_put(old);
  free(want);
  config_free(&new);
  return r;
}
