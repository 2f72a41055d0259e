/* log.c: leveled stderr logging (see log.h). One write(2) per line keeps lines
 * from different worker threads whole.  Control characters and bytes that are
 * not UTF-8 are escaped (\xNN), whatever their source (an export name, bytes
 * a client sent): one call is always exactly one line. */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "common/log.h"
#include "common/text.h"

int log_threshold = LOG_INFO;

static const char *const level_names[] = { "error", "warning", "info", "debug" };

void log_msg(int level, const char *client, const char *export, const char *fmt, ...)
{
  char line[1024], out[1024];
  int n;
  va_list ap;

  if (!log_enabled(level))
    return;
  if (level > LOG_DEBUG) level = LOG_DEBUG;
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
  text_escape(line, (size_t)n, out, sizeof out - 1);
  n = (int)strlen(out);
  out[n++] = '\n';
  if (write(STDERR_FILENO, out, n) < 0) {
    /* Nowhere left to report it. */
  }
}
