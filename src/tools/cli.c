/* cli.c: the command-line conventions every subcommand shares (see cli.h). */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
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

const char *cli_config_option(int argc, char **argv, const char *shortopts, const struct option *longopts)
{
  const char *file = NULL;
  char **copy = malloc(((size_t)argc + 1) * sizeof *copy);
  int c;

  /* On a copy: getopt_long moves the operands of the array it scans behind
   * the options, which would let the real pass take an operand as the value
   * of an option given last without one. */
  if (!copy)
    return NULL;
  memcpy(copy, argv, ((size_t)argc + 1) * sizeof *copy);
  opterr = 0;
  optind = 0;
  while ((c = getopt_long(argc, copy, shortopts, longopts, NULL)) != -1)
    if (c == 'c')
      file = optarg;
  free(copy);
  return file;
}

int cli_log_level(int base, int verbose, bool quiet)
{
  if (quiet)
    return LOG_ERROR;
  return base + verbose > LOG_DEBUG ? LOG_DEBUG : base + verbose;
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
