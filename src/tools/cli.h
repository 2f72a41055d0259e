/* cli.h: what every subcommand's command line shares: option parsing whose
 * mistakes cost one line and a hint (not the whole --help), -V/--version,
 * and the one message prefix ("shunt: ", from common/log.c). */
#ifndef SHUNT_TOOLS_CLI_H
#define SHUNT_TOOLS_CLI_H

#include <getopt.h>
#include <stdbool.h>

/* getopt_long() for a subcommand (argv[0] is its name).  An unknown option
 * or a missing argument prints "shunt: error: ..." and "Try 'shunt CMD
 * --help' ..." and returns '?'; otherwise as getopt_long. */
int cli_getopt(int argc, char **argv, const char *shortopts, const struct option *longopts);

/* Report a usage mistake in command cmd (one line and the hint); returns 2,
 * the exit status of a usage error. */
int cli_usage_error(const char *cmd, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* The long name of the option in longopts whose value is val ("?" if none). */
const char *cli_option_name(const struct option *longopts, int val);

/* The value of the last -c/--config FILE, from a first pass over the
 * options that reports nothing (the real pass, after optind = 0, reports
 * the mistakes), so that a config file is read before the command line adds
 * to it.  NULL when none is given (or no memory to scan).  argv is left as
 * it is; on return optind is the number of options and their values (the
 * index of the first operand, were they in front).  shortopts must spell -c
 * as "c:". */
const char *cli_config_option(int argc, char **argv, const char *shortopts, const struct option *longopts);

/* The log level after verbose -v (one level more each, up to debug) and -q
 * (errors only) over base (the config file's, or the default). */
int cli_log_level(int base, int verbose, bool quiet);

/* Print "shunt VERSION" on stdout; returns 0. */
int cli_version(void);

#endif
