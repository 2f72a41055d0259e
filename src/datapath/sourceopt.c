/* sourceopt.c: the options exports and vhost devices share (sourceopt.h). */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "common/parse.h"
#include "common/text.h"
#include "datapath/datapath.h"
#include "datapath/qosopt.h"
#include "datapath/sourceopt.h"

static const char *name_of(const struct source_options *o)
{
  return o->name ? o->name : "";
}

int source_bad_value(const struct source_options *o, const char *key, const char *val,
                     char *err, size_t errlen)
{
  return text_refuse(-EINVAL, err, errlen, "%s'%s': bad value '%s' for option '%s'", o->kind, name_of(o),
                     val ? val : "", key);
}

int source_unknown_option(const struct source_options *o, const char *key, char *err, size_t errlen)
{
  return text_refuse(-EINVAL, err, errlen, "%s'%s': unknown option '%s'", o->kind, name_of(o), key);
}

static bool listed(const char *const *list, const char *s)
{
  for (; *list; list++)
    if (!strcmp(*list, s))
      return true;
  return false;
}

int source_set_option(const struct source_options *o, const char *key, const char *val,
                      char *err, size_t errlen)
{
  char who[160];
  int r;

  if (!strcmp(key, "ro") || !strcmp(key, "readonly") || !strcmp(key, "read-only"))
    return parse_flag(val, o->read_only) < 0 ? source_bad_value(o, key, val, err, errlen) : 0;
  if (!strcmp(key, "rw") && !val) {
    *o->read_only = false;
    return 0;
  }
  snprintf(who, sizeof who, "%s'%s'", o->kind, name_of(o));
  if ((r = backend_rbd_set_option(o->rbd, key, val, who, err, errlen)) <= 0)
    return r;
  switch (qos_set_flow_option(o->qos, key, val)) {
  case 0: return 0;
  case -EINVAL: return source_bad_value(o, key, val, err, errlen);
  default: break;   /* not a scheduler option */
  }
  if (!val)
    return 1;
  if (!strcmp(key, "backend"))
    return listed(o->backends, val) ? text_set(o->backend, val, err, errlen)
                                    : source_bad_value(o, key, val, err, errlen);
  if (!strcmp(key, "datapath"))
    return datapath_find(val) || !strcmp(val, "auto") ? text_set(o->datapath, val, err, errlen)
                                                      : source_bad_value(o, key, val, err, errlen);
  return 1;
}
