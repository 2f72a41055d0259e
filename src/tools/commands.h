/* commands.h: the subcommands of the `shunt` tool.
 * Each subcommand lives in its own file and is listed in main.c. */
#ifndef SHUNT_TOOLS_COMMANDS_H
#define SHUNT_TOOLS_COMMANDS_H

/* A subcommand's entry point: argv[0] is the subcommand's name.
 * Returns the process exit status (0 success, 1 error, 2 usage). */
typedef int (*shunt_command_fn)(int argc, char **argv);

struct shunt_command {
  const char *name;
  shunt_command_fn run;
  const char *summary;
};

/* The subcommands (one file each). */
int cmd_serve(int argc, char **argv);   /* serve.c */

#endif
