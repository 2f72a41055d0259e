/* commands.h: the subcommands of the `shunt` tool.
 * Each subcommand lives in its own file and is listed in main.c. */
#ifndef SHUNT_TOOLS_COMMANDS_H
#define SHUNT_TOOLS_COMMANDS_H

/* The kernel nbd driver (attach.c): attach a URI, detach a device, list devices. */
int cmd_attach(int argc, char **argv);
int cmd_detach(int argc, char **argv);
int cmd_list(int argc, char **argv);

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
/* Client tools (libshunt): info.c, copy.c, bench.c. */
int cmd_info(int argc, char **argv);
int cmd_copy(int argc, char **argv);
int cmd_bench(int argc, char **argv);
/* vhost-user-blk disks for virtual machines (vhost.c, src/vhost/). */
int cmd_vhost(int argc, char **argv);
/* FUSE: the export as one file, for losetup (fuse.c, fuse_disk.c; built when
 * SHUNT_HAVE_FUSE is defined, meson -Dfuse). */
int cmd_fuse(int argc, char **argv);

#endif
