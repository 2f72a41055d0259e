/* export.h: exports as the user describes them (NAME=PATH[,OPTION]...) and as
 * the running server holds them (open backend, chosen data path, and the
 * proto_export the protocol code reads). */
#ifndef SHUNT_SERVER_EXPORT_H
#define SHUNT_SERVER_EXPORT_H

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
};

/* A running export: its configuration and its storage side. */
struct export {
  struct export_config cfg;
  struct dp_export dp;
};

struct export_table {
  struct export *exports;
  struct proto_export *proto;   /* parallel array, handed to the handshake */
  size_t n;
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

/* Open every export's backend and fill the table; takes ownership of the
 * configs' strings (cfgs are left zeroed).  Returns 0 or -errno + message. */
int export_table_open(struct export_table *t, struct export_config *cfgs, size_t n,
                      char *err, size_t errlen);

/* Re-read the size of every export whose storage may change size (rbd), so
 * that a new connection is told the current one. */
void export_table_refresh(struct export_table *t);

/* Flush (synchronously) and close every export. */
void export_table_close(struct export_table *t);

#endif
