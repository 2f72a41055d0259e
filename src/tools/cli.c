/* cli.c: the command-line conventions every subcommand shares (see cli.h). */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "common/log.h"
#include "tools/cli.h"

int cli_usage_error(const char *cmd, const char *fmt, ...)
{
  char msg[512];
  va_list ap;

  va_start(ap, fmt);
  vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  log_msg(LOG_ERROR, NULL, NULL, "%s", msg);
  fprintf(stderr, "Try 'shunt %s --help' for more information.\n", cmd);
  return 2;
}

int cli_getopt(int argc, char **argv, const char *shortopts, const struct option *longopts)
{
  char spec[128];
  int c;

  /* A leading ':' makes getopt return ':' for a missing argument and stay
   * quiet: the message is ours.  It goes after a leading '+' or '-'. */
  if (shortopts[0] == '+' || shortopts[0] == '-')
    snprintf(spec, sizeof spec, "%c:%s", shortopts[0], shortopts + 1);
  else
    snprintf(spec, sizeof spec, ":%s", shortopts);
  opterr = 0;
  c = getopt_long(argc, argv, spec, longopts, NULL);
  if (c == '?' || c == ':') {
    const char *arg = optind > 0 && optind <= argc ? argv[optind - 1] : "";
    int len = (int)strcspn(arg, "=");
    if (strncmp(arg, "--", 2) != 0) {
      cli_usage_error(argv[0], c == ':' ? "option '-%c' needs a value" : "unknown option '-%c'", optopt);
    } else if (c == ':') {
      cli_usage_error(argv[0], "option '%.*s' needs a value", len, arg);
    } else if (optopt) {
      cli_usage_error(argv[0], "option '%.*s' takes no value", len, arg);
    } else {
      cli_usage_error(argv[0], "unknown option '%.*s'", len, arg);
    }
    return '?';
  }
  return c;
}

const char *cli_option_name(const struct option *longopts, int val)
{
  for (; longopts->name; longopts++)
    if (longopts->val == val)
      return longopts->name;
  return "?";
}

int cli_version(void)
{
  printf("shunt %s\n", SHUNT_VERSION);
  return 0;
}
