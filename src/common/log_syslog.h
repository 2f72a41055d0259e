/* log_syslog.h: the syslog(3) side of log.c, kept apart because <syslog.h>
 * defines LOG_INFO and LOG_DEBUG, names log.h uses for its own levels. */
#ifndef SHUNT_COMMON_LOG_SYSLOG_H
#define SHUNT_COMMON_LOG_SYSLOG_H

/* Open the log (identity "shunt", with the pid, facility daemon). */
void log_syslog_open(void);

/* Send one line at a log.h level (LOG_NOTICE..LOG_DEBUG, as an int). */
void log_syslog_line(int level, const char *line);

#endif
