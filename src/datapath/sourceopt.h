/* sourceopt.h: the options a source of blocks takes in both front ends (an
 * export of `shunt serve`, a device of `shunt vhost`), on a command line or
 * in a config file: ro, rw, backend=KIND, datapath=PATH, the options of
 * backend=rbd (backend.h) and the scheduler's (qosopt.h).  One parser, so
 * that both accept the same spellings and refuse them in the same words:
 * every message starts with what the source is, "export 'NAME'" or
 * "'SOCKET'". */
#ifndef SHUNT_DATAPATH_SOURCEOPT_H
#define SHUNT_DATAPATH_SOURCEOPT_H

#include <stdbool.h>
#include <stddef.h>

#include "backend/backend.h"
#include "datapath/iosched.h"

/* Where the options of one source go, and how it is named. */
struct source_options {
  const char *kind;               /* before the name in messages: "export " or "" */
  const char *name;               /* the export's name or the device's socket; NULL: "" */
  const char *const *backends;    /* the backend= values taken, NULL-terminated */
  bool *read_only;
  char **backend;                 /* owned strings, replaced when set */
  char **datapath;
  struct backend_rbd_options *rbd;
  struct sched_params *qos;
};

/* Set key (val NULL for a bare KEY) when it is one of the shared options:
 * ro, readonly, read-only (a flag), a bare rw, backend=KIND (one of
 * o->backends), datapath=PATH (a data path's name or auto), ceph-conf,
 * ceph-id, ceph-cluster, lock, weight, reserve-iops, limit-iops, limit-bw.
 * Returns 0 when set; -errno with the reason in err when the value is bad;
 * 1 when key is none of them, or is backend or datapath without a value
 * (the caller tries its own options, and then calls a bare key left over an
 * unknown option). */
int source_set_option(const struct source_options *o, const char *key, const char *val,
                      char *err, size_t errlen);

/* "KIND'NAME': bad value 'VAL' for option 'KEY'" in err; returns -EINVAL. */
int source_bad_value(const struct source_options *o, const char *key, const char *val,
                     char *err, size_t errlen);

/* "KIND'NAME': unknown option 'KEY'" in err; returns -EINVAL. */
int source_unknown_option(const struct source_options *o, const char *key, char *err, size_t errlen);

#endif
