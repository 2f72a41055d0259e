/* procopt.h: the process-wide keys both front ends take, in the [server]
 * part of their config files and as long options (`shunt serve`, `shunt
 * vhost`): threads, arena, stats, log, and the scheduler's qos, qos-key,
 * device-iops, device-bw (qosopt.h).  One parser, so that both accept the
 * same values and refuse them in the same words: "bad value 'VAL' for
 * 'KEY'", "unknown server key 'KEY'". */
#ifndef SHUNT_DATAPATH_PROCOPT_H
#define SHUNT_DATAPATH_PROCOPT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "datapath/qos.h"

/* Where the keys of one front end go. */
struct proc_options {
  unsigned *threads;              /* threads=N: 1..1024 */
  uint64_t *arena;                /* arena=SIZE: 1M..64G */
  char **stats_path;              /* stats=FILE: an owned string, replaced when set */
  int *log_level;                 /* log=error|warning|info|debug */
  int *log_target;                /* log=stderr|syslog (enum log_target); NULL: log takes a level only */
  struct dp_qos_config *qos;      /* qos=on|off, device-iops=N, device-bw=SIZE */
  bool qos_key;                   /* qos-key= is taken too (serve's flows are clients or
                                   * exports; a vhost device is one flow: no key to choose) */
};

/* Set key to val when key is one of the shared keys.  Returns 0 when set;
 * -EINVAL with "bad value 'VAL' for 'KEY'" in err when the value is bad;
 * -ENOMEM with "out of memory"; 1 when key is none of them (the caller
 * tries its own keys, then refuses with proc_unknown_key). */
int proc_set_key(const struct proc_options *o, const char *key, const char *val, char *err, size_t errlen);

/* "bad value 'VAL' for 'KEY'" in err; returns -EINVAL. */
int proc_bad_value(const char *key, const char *val, char *err, size_t errlen);

/* "unknown server key 'KEY'" in err; returns -EINVAL. */
int proc_unknown_key(const char *key, char *err, size_t errlen);

#endif
