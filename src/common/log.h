/* log.h: leveled logging, one line per call, safe from any thread.  Lines
 * say where they come from: the client's address and the export.  They go to
 * stderr (with journald priority prefixes when stderr is the journal) or to
 * syslog. */
#ifndef SHUNT_COMMON_LOG_H
#define SHUNT_COMMON_LOG_H

enum log_level { LOG_NOTICE = -1 /* always shown, no level tag */, LOG_ERROR = 0, LOG_WARN = 1, LOG_INFO = 2, LOG_DEBUG = 3 };

/* Where lines go: stderr (the default; "<N>" priority prefixes are added when
 * $JOURNAL_STREAM names stderr, i.e. systemd connected it to the journal),
 * or syslog(3) with identity "shunt". */
enum log_target { LOG_TO_STDERR, LOG_TO_SYSLOG };

/* The current threshold: messages above it are dropped. Default LOG_INFO. */
extern int log_threshold;

/* Log one line "shunt: [level: ][client] [export] message" at the given
 * level.  client and export may be NULL.  The line is written with one
 * write(2) (or one syslog(3) call). */
void log_msg(int level, const char *client, const char *export, const char *fmt, ...)
  __attribute__((format(printf, 4, 5)));

/* Send every later line to target. */
void log_set_target(enum log_target target);

/* Parse a target name ("stderr", "syslog"); returns 0 or -EINVAL. */
int log_parse_target(const char *name, enum log_target *target);

/* Parse a level name (error, warning, info, debug) as the --log option and
 * the config files' log key take it.  Returns 0 or -EINVAL. */
int log_parse_level(const char *name, int *level);

#define log_enabled(level) ((level) <= log_threshold)

#endif
