/* log.c: leveled logging to stderr or syslog (see log.h). One write(2) per
 * line keeps lines from different worker threads whole.  Control characters and bytes that are
 * not UTF-8 are escaped (\xNN), whatever their source (an export name, bytes
 * a client sent): one call is always exactly one line. */
#include <errno.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/log.h"
#include "common/log_syslog.h"
#include "common/text.h"

int log_threshold = LOG_INFO;

/* What happens to a line: not decided yet, stderr as is, stderr with
 * journald's "<N>" priority prefix, syslog. */
enum { SINK_UNSET, SINK_STDERR, SINK_JOURNAL, SINK_SYSLOG };
static atomic_int sink = SINK_UNSET;

/* Is stderr the journal?  systemd sets JOURNAL_STREAM=DEV:INODE for the
 * stream it connects; a child whose stderr was redirected elsewhere inherits
 * the variable but not the stream, hence the comparison (as sd_journal's
 * own documentation asks). */
static bool stderr_is_journal(void)
{
  const char *js = getenv("JOURNAL_STREAM");
  unsigned long long dev, ino;
  struct stat st;

  if (!js || sscanf(js, "%llu:%llu", &dev, &ino) != 2 || fstat(STDERR_FILENO, &st) < 0)
    return false;
  return (unsigned long long)st.st_dev == dev && (unsigned long long)st.st_ino == ino;
}

void log_set_target(enum log_target target)
{
  if (target == LOG_TO_SYSLOG) {
    log_syslog_open();
    atomic_store(&sink, SINK_SYSLOG);
  } else {
    atomic_store(&sink, stderr_is_journal() ? SINK_JOURNAL : SINK_STDERR);
  }
}

int log_parse_target(const char *name, enum log_target *target)
{
  if (!strcmp(name, "stderr"))
    *target = LOG_TO_STDERR;
  else if (!strcmp(name, "syslog"))
    *target = LOG_TO_SYSLOG;
  else
    return -EINVAL;
  return 0;
}

static const char *const level_names[] = { "error", "warning", "info", "debug" };

int log_parse_level(const char *name, int *level)
{
  for (int i = LOG_ERROR; i <= LOG_DEBUG; i++)
    if (!strcmp(name, level_names[i])) {
      *level = i;
      return 0;
    }
  return -EINVAL;
}

void log_msg(int level, const char *client, const char *export, const char *fmt, ...)
{
  /* journald's priorities for LOG_NOTICE..LOG_DEBUG (sd-daemon.h's SD_*). */
  static const char *const journal_prefix[] = { "<5>", "<3>", "<4>", "<6>", "<7>" };
  char line[1024], out[1024];
  int n, k;
  va_list ap;

  if (!log_enabled(level))
    return;
  if (level > LOG_DEBUG) level = LOG_DEBUG;
  if (level < LOG_NOTICE) level = LOG_NOTICE;
  if ((k = atomic_load(&sink)) == SINK_UNSET) {
    log_set_target(LOG_TO_STDERR);
    k = atomic_load(&sink);
  }
  if (level < LOG_ERROR)
    n = snprintf(line, sizeof line, "shunt: ");
  else
    n = snprintf(line, sizeof line, "shunt: %s: ", level_names[level]);
  if (client && n < (int)sizeof line)
    n += snprintf(line + n, sizeof line - n, "client %s: ", client);
  if (export && n < (int)sizeof line)
    n += snprintf(line + n, sizeof line - n, "export '%s': ", export);
  if (n < (int)sizeof line) {
    va_start(ap, fmt);
    n += vsnprintf(line + n, sizeof line - n, fmt, ap);
    va_end(ap);
  }
  if (n >= (int)sizeof line)
    n = sizeof line - 1;
  if (k == SINK_JOURNAL) {
    memcpy(out, journal_prefix[level + 1], 3);
    text_escape(line, (size_t)n, out + 3, sizeof out - 4);
  } else {
    text_escape(line, (size_t)n, out, sizeof out - 1);
  }
  if (k == SINK_SYSLOG) {
    /* syslog names the program itself: the line without "shunt: ". */
    log_syslog_line(level, out + strlen("shunt: "));
    return;
  }
  n = (int)strlen(out);
  out[n++] = '\n';
  if (write(STDERR_FILENO, out, n) < 0) {
    /* Nowhere left to report it. */
  }
}
