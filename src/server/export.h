/* export.h: exports as the user describes them (NAME=PATH[,OPTION]...) and as
 * the running server holds them (open backend, chosen data path, and the
 * proto_export the protocol code reads). */
#ifndef SHUNT_SERVER_EXPORT_H
#define SHUNT_SERVER_EXPORT_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>

#include "backend/backend.h"
#include "datapath/dpexport.h"
#include "proto/session.h"
#include "server/access.h"

/* What the command line or config file says about one export. */
struct export_config {
  char *name;
  char *path;          /* file path, a size for backend=memory, POOL/IMAGE[@SNAP] for rbd */
  char *description;   /* NULL when none */
  char *backend;       /* "file" (default), "memory" or "rbd" */
  char *datapath;      /* copy (default), splice, direct, mmap, auto */
  uint64_t chunk;      /* chunk size of split reads/writes; 0 = the server's default */
  bool read_only;
  bool allow_overcommit;       /* memory: a size beyond the machine's memory */
  uint64_t max_memory;         /* memory: cap on allocated bytes; 0 = default */
  struct backend_rbd_options rbd;  /* rbd: ceph-conf, ceph-id, ceph-cluster, lock */
  struct access_list access;   /* allow/allow-ro/deny rules, in order */
  struct sched_params qos;     /* weight, reserve-iops, limit-iops, limit-bw of each flow */
  /* The options other than the path and the scheduler's, as given
   * ("key=value" lines, in order; NULL: none): what export_config_same
   * compares, so that an option added later takes part without a change
   * here. */
  char *settings;
};

/* A running export: its configuration, its storage side and what the
 * protocol sees of it.  Counted: the export table that lists it holds a
 * reference, and so does each connection in transmission on it, so that an
 * export a reload removed or replaced stays open for the connections still
 * using it and is flushed and closed after the last one. */
struct export {
  struct export_config cfg;
  struct dp_export dp;
  struct proto_export proto;
  atomic_uint refs;
};

/* The exports the server offers, as one snapshot: a reload publishes a new
 * table (server.h) and never changes one in place.  Counted too: a
 * connection in its handshake holds the table it started with. */
struct export_table {
  struct export **exports;
  struct proto_export *proto;   /* parallel copies of exports[i]->proto, handed to the handshake */
  size_t n;
  atomic_uint refs;
};

/* Parse "NAME=PATH[,OPTION]..." (options: ro, rw, desc=TEXT, backend=KIND,
 * datapath=PATH, chunk=SIZE, allow=RULE, allow-ro=RULE, deny=RULE,
 * allow-overcommit, max-memory=SIZE, ceph-conf=FILE, ceph-id=USER, ceph-cluster=NAME,
 * lock=exclusive).  Returns 0 or -EINVAL with a message in err. */
int export_parse_spec(const char *spec, struct export_config *cfg, char *err, size_t errlen);

/* 0 if name may be an export name (valid UTF-8, no control characters: a
 * newline would forge log lines), else -EINVAL with a message in err. */
int export_check_name(const char *name, char *err, size_t errlen);

/* Set one "key=value" (or bare "ro") option on cfg; shared by the command
 * line and the config file.  Returns 0 or -EINVAL with a message. */
int export_set_option(struct export_config *cfg, const char *key, const char *value,
                      char *err, size_t errlen);

/* Free the strings of a config. */
void export_config_free(struct export_config *cfg);

/* True when a and b describe the same export but perhaps for the
 * scheduler's settings (weight=, reserve-iops=, limit-iops=, limit-bw=,
 * which a running export takes at once): same name, path, read-only flag
 * and the other options as given (export_config.settings). */
bool export_config_same(const struct export_config *a, const struct export_config *b);

/* Open one export from cfg (its backend, data path, scheduler); takes
 * ownership of cfg's strings (cfg is left zeroed) whether it succeeds or
 * not.  *out holds one reference.  Returns 0 or -errno with a message. */
int export_open(struct export_config *cfg, struct export **out, char *err, size_t errlen);

/* One more reference to ex. */
struct export *export_get(struct export *ex);

/* Drop a reference; the last one flushes (synchronously) and closes ex. */
void export_put(struct export *ex);

/* A new table of n exports' room (t->n 0, one reference), NULL on ENOMEM. */
struct export_table *export_table_new(size_t n);

/* Append ex to t (taking over the caller's reference to it), unless an
 * export of that name is already there: -EINVAL with a message (ex put). */
int export_table_add(struct export_table *t, struct export *ex, char *err, size_t errlen);

/* The index of export name in t, or -1. */
long export_table_find(const struct export_table *t, const char *name);

/* Open every export of cfgs into a new table (*out); takes ownership of
 * the configs' strings (cfgs are left zeroed).  Returns 0 or -errno with a
 * message (nothing left open). */
int export_table_open(struct export_table **out, struct export_config *cfgs, size_t n,
                      char *err, size_t errlen);

/* One more reference to t. */
struct export_table *export_table_get(struct export_table *t);

/* Drop a reference to t (NULL: nothing); the last one drops t's
 * references to its exports. */
void export_table_put(struct export_table *t);

/* Re-read the size of every export of t whose storage may change size
 * (rbd), so that a new connection is told the current one. */
void export_table_refresh(struct export_table *t);

#endif
