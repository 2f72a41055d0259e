/* qosopt.c: parsing the scheduler's options (see qosopt.h). */
#include <errno.h>
#include <string.h>

#include "common/parse.h"
#include "datapath/qosopt.h"

int qos_set_flow_option(struct sched_params *p, const char *key, const char *val)
{
  uint64_t v;

  if (strcmp(key, "weight") && strcmp(key, "reserve-iops") && strcmp(key, "limit-iops") &&
      strcmp(key, "limit-bw"))
    return -ENOENT;
  if (!val)
    return -EINVAL;
  if (!strcmp(key, "weight")) {
    if (parse_uint(val, 1, 10000, &v) < 0)
      return -EINVAL;
    p->weight = (uint32_t)v;
  } else if (!strcmp(key, "limit-bw")) {
    if (parse_size(val, &v) < 0)
      return -EINVAL;
    p->limit_bw = v;
  } else {
    if (parse_uint(val, 0, 100000000, &v) < 0)
      return -EINVAL;
    *(key[0] == 'r' ? &p->reserve_iops : &p->limit_iops) = v;
  }
  return 0;
}

bool qos_flow_options_set(const struct sched_params *p)
{
  return p->weight || p->reserve_iops || p->limit_iops || p->limit_bw;
}

int qos_set_server_key(struct dp_qos_config *q, const char *key, const char *val)
{
  uint64_t v;
  bool b;

  if (!strcmp(key, "qos")) {
    if (parse_bool(val, &b) < 0)
      return -EINVAL;
    q->off = !b;
    return 0;
  }
  if (!strcmp(key, "qos-key")) {
    if (!strcmp(val, "conn")) q->key = DP_QOS_KEY_CONN;
    else if (!strcmp(val, "addr")) q->key = DP_QOS_KEY_ADDR;
    else if (!strcmp(val, "tls")) q->key = DP_QOS_KEY_TLS;
    else return -EINVAL;
    return 0;
  }
  if (!strcmp(key, "device-iops")) {
    if (parse_uint(val, 0, UINT64_C(1000000000), &v) < 0)
      return -EINVAL;
    q->dev.device_iops = v;
    return 0;
  }
  if (!strcmp(key, "device-bw")) {
    if (parse_size(val, &v) < 0)
      return -EINVAL;
    q->dev.device_bw = v;
    return 0;
  }
  return -ENOENT;
}
