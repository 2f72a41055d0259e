/* main.c: the `shunt` command's entry point; dispatches to one subcommand.
 * Subcommands live in their own files (serve.c, info.c, ...). */
#include <stdio.h>
#include <string.h>

#include "tools/commands.h"

static const struct shunt_command commands[] = {
  { "serve", cmd_serve, "serve files, block devices and RAM disks over NBD" },
  { "info", cmd_info, "show an NBD export's size, flags, block sizes (--list, --map)" },
  { "copy", cmd_copy, "copy between files, block devices and NBD URIs, sparse-aware" },
  { "bench", cmd_bench, "load-test an NBD export: IOPS, throughput, latency percentiles" },
  { "attach", cmd_attach, "attach an NBD export as /dev/nbdN (kernel nbd driver)" },
  { "detach", cmd_detach, "detach /dev/nbdN" },
  { "list", cmd_list, "list attached nbd devices" },
  { "vhost", cmd_vhost, "serve files to virtual machines as vhost-user-blk disks" },
#ifdef SHUNT_HAVE_FUSE   /* meson -Dfuse */
  { "fuse", cmd_fuse, "expose an NBD export as a file through FUSE (for losetup)" },
#endif
  { NULL, NULL, NULL },
};

static void usage(FILE *f)
{
  fprintf(f, "usage: shunt COMMAND [ARGS]...\n\ncommands:\n");
  for (const struct shunt_command *c = commands; c->name; c++)
    fprintf(f, "  %-10s %s\n", c->name, c->summary);
  fprintf(f, "\n'shunt COMMAND --help' describes each command.\n");
}

int main(int argc, char **argv)
{
  if (argc < 2) {
    usage(stderr);
    return 2;
  }
  if (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h") || !strcmp(argv[1], "help")) {
    usage(stdout);
    return 0;
  }
  if (!strcmp(argv[1], "--version") || !strcmp(argv[1], "-V")) {
    printf("shunt %s\n", SHUNT_VERSION);
    return 0;
  }
  for (const struct shunt_command *c = commands; c->name; c++)
    if (!strcmp(argv[1], c->name))
      return c->run(argc - 1, argv + 1);
  fprintf(stderr, "shunt: error: unknown command '%s'\nTry 'shunt --help' for the list of commands.\n",
          argv[1]);
  return 2;
}
