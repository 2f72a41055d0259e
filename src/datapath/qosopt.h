/* qosopt.h: the scheduler's options as users write them, on a command line
 * or in a config file, for every front end that has devices to schedule
 * (`shunt serve`'s exports, `shunt vhost`'s devices): one parser, so that
 * both accept exactly the same spellings and ranges (docs/qos.md). */
#ifndef SHUNT_DATAPATH_QOSOPT_H
#define SHUNT_DATAPATH_QOSOPT_H

#include "datapath/iosched.h"
#include "datapath/qos.h"

/* Set one per-flow option on p: weight=N (1..10000), reserve-iops=N,
 * limit-iops=N (0..100000000), limit-bw=SIZE.  Returns 0, -EINVAL when
 * the value is bad, or -ENOENT when key is none of these (the caller tries
 * its own options). */
int qos_set_flow_option(struct sched_params *p, const char *key, const char *val);

/* True when p asks for anything (a weight, a reservation or a limit). */
bool qos_flow_options_set(const struct sched_params *p);

/* Set one process-wide key on q: qos=on|off, qos-key=conn|addr|tls,
 * device-iops=N, device-bw=SIZE.  Returns 0, -EINVAL when the value is
 * bad, or -ENOENT when key is none of these. */
int qos_set_server_key(struct dp_qos_config *q, const char *key, const char *val);

#endif
