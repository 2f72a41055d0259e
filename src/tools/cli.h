/* cli.h: what every subcommand's command line shares: option parsing whose
 * mistakes cost one line and a hint (not the whole --help), -V/--version,
 * and the one message prefix ("shunt: ", from common/log.c). */
#ifndef SHUNT_TOOLS_CLI_H
#define SHUNT_TOOLS_CLI_H

#include <getopt.h>

/* getopt_long() for a subcommand (argv[0] is its name).  An unknown option
 * or a missing argument prints "shunt: error: ..." and "Try 'shunt CMD
 * --help' ..." and returns '?'; otherwise as getopt_long. */
int cli_getopt(int argc, char **argv, const char *shortopts, const struct option *longopts);

/* Report a usage mistake in command cmd (one line and the hint); returns 2,
 * the exit status of a usage error. */
int cli_usage_error(const char *cmd, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* The long name of the option in longopts whose value is val ("?" if none). */
const char *cli_option_name(const struct option *longopts, int val);

/* Print "shunt VERSION" on stdout; returns 0. */
int cli_version(void);

#endif
