/* log_syslog.c: log.c's lines through syslog(3) (see log_syslog.h). */
#include <syslog.h>

#include "common/log_syslog.h"

void log_syslog_open(void)
{
  openlog("shunt", LOG_PID | LOG_NDELAY, LOG_DAEMON);
}

void log_syslog_line(int level, const char *line)
{
  /* log.h's levels, from -1 (notice) to 3 (debug). */
  static const int prio[] = { LOG_NOTICE, LOG_ERR, LOG_WARNING, LOG_INFO, LOG_DEBUG };
  if (level < -1) level = -1;
  if (level > 3) level = 3;
  syslog(prio[level + 1], "%s", line);
}
