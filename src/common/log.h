/* log.h: leveled logging on stderr, one line per call, safe from any thread.
 * Lines say where they come from: the client's address and the export. */
#ifndef SHUNT_COMMON_LOG_H
#define SHUNT_COMMON_LOG_H

enum log_level { LOG_NOTICE = -1 /* always shown, no level tag */, LOG_ERROR = 0, LOG_WARN = 1, LOG_INFO = 2, LOG_DEBUG = 3 };

/* The current threshold: messages above it are dropped. Default LOG_INFO. */
extern int log_threshold;

/* Log one line "shunt: [client] [export] message" at the given level.
 * client and export may be NULL. The line is written with one write(2). */
void log_msg(int level, const char *client, const char *export, const char *fmt, ...)
  __attribute__((format(printf, 4, 5)));

#define log_enabled(level) ((level) <= log_threshold)

#endif
