/* procopt.c: the process-wide keys serve and vhost share (procopt.h). */
#include <errno.h>
#include <string.h>

#include "common/log.h"
#include "common/parse.h"
#include "common/text.h"
#include "datapath/procopt.h"
#include "datapath/qosopt.h"

int proc_bad_value(const char *key, const char *val, char *err, size_t errlen)
{
  return text_refuse(-EINVAL, err, errlen, "bad value '%s' for '%s'", val, key);
}

int proc_unknown_key(const char *key, char *err, size_t errlen)
{
  return text_refuse(-EINVAL, err, errlen, "unknown server key '%s'", key);
}

/* log=LEVEL, or log=TARGET where o takes one. */
static int set_log(const struct proc_options *o, const char *val)
{
  enum log_target target;

  if (o->log_target && log_parse_target(val, &target) == 0) {
    *o->log_target = (int)target;
    return 0;
  }
  return log_parse_level(val, o->log_level);
}

int proc_set_key(const struct proc_options *o, const char *key, const char *val, char *err, size_t errlen)
{
  uint64_t v;
  int r;

  if (!strcmp(key, "threads")) {
    if (parse_uint(val, 1, 1024, &v) < 0)
      return proc_bad_value(key, val, err, errlen);
    *o->threads = (unsigned)v;
    return 0;
  }
  if (!strcmp(key, "arena")) {
    if (parse_size(val, &v) < 0 || v < (1u << 20) || v > (UINT64_C(64) << 30))
      return proc_bad_value(key, val, err, errlen);
    *o->arena = v;
    return 0;
  }
  if (!strcmp(key, "stats"))
    return text_set(o->stats_path, val, err, errlen);
  if (!strcmp(key, "log"))
    return set_log(o, val) < 0 ? proc_bad_value(key, val, err, errlen) : 0;
  if (!strcmp(key, "qos-key") && !o->qos_key)
    return 1;
  r = qos_set_server_key(o->qos, key, val);
  if (r == -EINVAL)
    return proc_bad_value(key, val, err, errlen);
  return r == 0 ? 0 : 1;
}
