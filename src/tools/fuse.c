/* fuse.c: `shunt fuse URI MOUNTPOINT`: connect with libshunt, mount a FUSE file
 * system holding the export as one regular file (fuse_disk.c serves it), run the
 * multi-threaded FUSE loop until unmount or SIGTERM, and print what was served. */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/units.h"
#include "common/log.h"
#include "tools/cli.h"
#include "tools/connect.h"
#include "tools/commands.h"
#include "tools/fuse_disk.h"

static void fuse_usage(FILE *f)
{
  fprintf(f,
"usage: shunt fuse [OPTION]... URI MOUNTPOINT\n"
"\n"
"Expose an NBD export as one regular file through FUSE, so that losetup(8) can make\n"
"a block device of it where the kernel nbd driver is missing:\n"
"\n"
"  shunt fuse nbd://server/disk /mnt/nbd && losetup --direct-io=on -f --show /mnt/nbd/disk\n"
"\n"
"MOUNTPOINT is a directory (the file is MOUNTPOINT/disk, see --name) or an existing\n"
"regular file (then MOUNTPOINT itself is the export).  Reads and writes bypass the\n"
"page cache (direct I/O) and go to the server from many threads at once; fsync is\n"
"NBD FLUSH; fallocate ZERO_RANGE is WRITE_ZEROES, PUNCH_HOLE (discard from a loop\n"
"device) is WRITE_ZEROES that may deallocate, or TRIM with --discard=trim.\n"
"Read-only exports mount read-only.  Unmount with `fusermount3 -u MOUNTPOINT`,\n"
"umount(8) or SIGTERM/SIGINT.\n"
"\n"
"Options:\n"
"  -f, --foreground         stay in the foreground (default: daemon once mounted)\n"
"  -C, --connections N      connections when the server allows multi-conn (default 1)\n"
"  -t, --threads N          FUSE worker threads, i.e. requests in flight (default 16)\n"
"  -n, --name NAME          the file's name in a directory mount point (default disk)\n"
"  -r, --read-only          mount read-only even if the export is writable\n"
"      --discard=zero|trim  what PUNCH_HOLE sends (default zero: later reads see\n"
"                           zeros, as PUNCH_HOLE promises; trim: contents undefined)\n"
"      --max-io SIZE        largest FUSE read/write request (default 1M; the kernel\n"
"                           may grant less)\n"
"      --reconnect N        after a dropped connection, reconnect up to N times and\n"
"                           resend the requests in flight\n"
"  -o OPTIONS               extra FUSE mount options (e.g. allow_other)\n"
"  -d, --debug              FUSE debug output (implies -f)\n"
"  -q, --quiet              no summary line at unmount\n"
"  -V, --version            print the version\n"
"  -h, --help               this text\n");
}

struct fuse_cli {
  const char *uri, *mountpoint, *name, *mount_opts;
  bool foreground, debug, quiet, read_only;
  unsigned connections, threads, reconnect;
  uint64_t max_io;
  enum fuse_discard discard;
};

/* 0, or the exit status to return (after printing why). */
static int fuse_parse(int argc, char **argv, struct fuse_cli *c)
{
  enum { OPT_DISCARD = 256, OPT_MAX_IO, OPT_RECONNECT };
  static const struct option longopts[] = {
    { "foreground", no_argument, NULL, 'f' },
    { "connections", required_argument, NULL, 'C' },
    { "threads", required_argument, NULL, 't' },
    { "name", required_argument, NULL, 'n' },
    { "read-only", no_argument, NULL, 'r' },
    { "readonly", no_argument, NULL, 'r' },
    { "version", no_argument, NULL, 'V' },
    { "discard", required_argument, NULL, OPT_DISCARD },
    { "max-io", required_argument, NULL, OPT_MAX_IO },
    { "reconnect", required_argument, NULL, OPT_RECONNECT },
    { "debug", no_argument, NULL, 'd' },
    { "quiet", no_argument, NULL, 'q' },
    { "help", no_argument, NULL, 'h' },
    { NULL, 0, NULL, 0 },
  };
  *c = (struct fuse_cli){ .name = "disk", .connections = 1, .threads = 16,
                          .max_io = 1u << 20 };
  int ch;
  char *end;
  unsigned long v;
  while ((ch = cli_getopt(argc, argv, "+fC:t:n:ro:dqVh", longopts)) != -1) {
    switch (ch) {
    case 'f': c->foreground = true; break;
    case 'd': c->debug = c->foreground = true; break;
    case 'q': c->quiet = true; break;
    case 'r': c->read_only = true; break;
    case 'o': c->mount_opts = optarg; break;
    case 'n':
      if (!*optarg || strchr(optarg, '/') || !strcmp(optarg, ".") || !strcmp(optarg, "..")) {
        return cli_usage_error("fuse", "--name '%s': not a file name", optarg);
      }
      c->name = optarg;
      break;
    case 'C': case 't': case OPT_RECONNECT:
      errno = 0;
      v = strtoul(optarg, &end, 10);
      if (errno || *end || !*optarg || v > 1024 || (v == 0 && ch != OPT_RECONNECT)) {
        return cli_usage_error("fuse", "--%s: bad number '%s' (1..1024)", cli_option_name(longopts, ch), optarg);
      }
      if (ch == 'C')
        c->connections = (unsigned)v;
      else if (ch == 't')
        c->threads = (unsigned)v;
      else
        c->reconnect = (unsigned)v;
      break;
    case OPT_DISCARD:
      if (!strcmp(optarg, "zero"))
        c->discard = FUSE_DISCARD_ZERO;
      else if (!strcmp(optarg, "trim"))
        c->discard = FUSE_DISCARD_TRIM;
      else {
        return cli_usage_error("fuse", "--discard '%s': zero or trim", optarg);
      }
      break;
    case OPT_MAX_IO:
      if (units_parse_size(optarg, &c->max_io) || c->max_io < 4096 || c->max_io > (32u << 20)) {
        return cli_usage_error("fuse", "--max-io '%s': a size from 4K to 32M", optarg);
      }
      break;
    case 'V': cli_version(); return -1;
    case 'h': fuse_usage(stdout); return -1;
    default: return 2;
    }
  }
  if (argc - optind != 2)
    return cli_usage_error("fuse", "expected URI and MOUNTPOINT");
  c->uri = argv[optind];
  c->mountpoint = argv[optind + 1];
  return 0;
}

/* The arguments fuse_session_new() parses: mount options only. */
static int fuse_build_args(const struct fuse_cli *c, const struct fuse_disk *d,
                           struct fuse_args *args)
{
  char opts[512];
  /* fsname shows in /proc/mounts; subtype makes the type "fuse.shunt". */
  int n = snprintf(opts, sizeof opts, "fsname=shunt,subtype=shunt,default_permissions%s%s%s",
                   d->read_only ? ",ro" : "", c->mount_opts ? "," : "",
                   c->mount_opts ? c->mount_opts : "");
  if (n < 0 || (size_t)n >= sizeof opts)
    return -E2BIG;
  if (fuse_opt_add_arg(args, "shunt-fuse") || fuse_opt_add_arg(args, "-o") ||
      fuse_opt_add_arg(args, opts) || (c->debug && fuse_opt_add_arg(args, "-d")))
    return -ENOMEM;
  return 0;
}

static void fuse_summary(const struct fuse_cli *c, const struct fuse_disk *d)
{
  if (c->quiet)
    return;
  const struct fuse_disk_stats *s = &d->st;
  fprintf(stderr,
          "shunt fuse: %s unmounted (kernel requests up to %u bytes, %s direct I/O): %" PRIu64 " reads (%" PRIu64 " bytes, largest %" PRIu64
          "), %" PRIu64 " writes (%" PRIu64 " bytes, largest %" PRIu64 ", %" PRIu64
          " read-modify-write), %" PRIu64 " flushes, %" PRIu64 " zeroes, %" PRIu64
          " trims, %" PRIu64 " errors\n",
          c->mountpoint, d->max_write, d->async_dio ? "asynchronous" : "synchronous",
          (uint64_t)s->reads, (uint64_t)s->bytes_read, (uint64_t)s->max_read,
          (uint64_t)s->writes, (uint64_t)s->bytes_written, (uint64_t)s->max_write,
          (uint64_t)s->rmw, (uint64_t)s->flushes, (uint64_t)s->zeroes, (uint64_t)s->trims,
          (uint64_t)s->errors);
}

/* Mount, serve until unmounted or signalled, unmount.  0 or -errno. */
static int fuse_serve(const struct fuse_cli *c, struct fuse_disk *d)
{
  struct fuse_args args = FUSE_ARGS_INIT(0, NULL);
  int r = fuse_build_args(c, d, &args);
  if (r) {
    fuse_opt_free_args(&args);
    return r;
  }
  struct fuse_session *se = fuse_session_new(&args, &fuse_disk_ops, sizeof fuse_disk_ops, d);
  fuse_opt_free_args(&args);
  if (!se)
    return -EINVAL; /* libfuse printed why */
  r = -EIO;
  if (fuse_set_signal_handlers(se))
    goto out_destroy;
  if (fuse_session_mount(se, c->mountpoint))
    goto out_signals;
  if (!c->quiet)
    log_msg(LOG_INFO, NULL, NULL, "%s%s%s: %" PRIu64 " bytes from %s over %u connection%s%s",
            c->mountpoint, d->file_root ? "" : "/", d->file_root ? "" : d->name, d->size,
            shunt_get_uri(d->h), shunt_get_connections(d->h),
            shunt_get_connections(d->h) == 1 ? "" : "s",
            d->read_only ? ", read-only" : "");
  fuse_daemonize(c->foreground); /* after the mount, so its errors reach the terminal */
  struct fuse_loop_config *cfg = fuse_loop_cfg_create();
  if (!cfg)
    goto out_unmount;
  fuse_loop_cfg_set_max_threads(cfg, c->threads);
  fuse_loop_cfg_set_idle_threads(cfg, c->threads); /* keep them: no churn under load */
  fuse_loop_cfg_set_clone_fd(cfg, 1);               /* one /dev/fuse fd per thread */
  r = fuse_session_loop_mt(se, cfg);
  fuse_loop_cfg_destroy(cfg);
  /* fuse_session_loop_mt() returns 0 on unmount, or the signal number (SIGTERM) that
   * stopped it; both are a clean end. */
  r = r < 0 ? r : 0;
out_unmount:
  fuse_session_unmount(se);
out_signals:
  fuse_remove_signal_handlers(se);
out_destroy:
  fuse_session_destroy(se);
  return r;
}

int cmd_fuse(int argc, char **argv)
{
  struct fuse_cli c;
  int r = fuse_parse(argc, argv, &c);
  if (r)
    return r < 0 ? 0 : r;

  struct stat st;
  if (stat(c.mountpoint, &st)) {
    log_msg(LOG_ERROR, NULL, NULL, "%s: %s", c.mountpoint, strerror(errno));
    return 1;
  }
  if (!S_ISDIR(st.st_mode) && !S_ISREG(st.st_mode)) {
    log_msg(LOG_ERROR, NULL, NULL, "%s: neither a directory nor a regular file", c.mountpoint);
    return 1;
  }

  struct tools_conn_opts o = { .connections = c.connections, .reconnect = c.reconnect };
  char err[512];
  struct fuse_disk d = { .name = c.name, .discard = c.discard, .max_io = (unsigned)c.max_io,
                         .file_root = S_ISREG(st.st_mode) };
  r = tools_connect(&d.h, c.uri, &o, err, sizeof err);
  if (r) {
    log_msg(LOG_ERROR, NULL, NULL, "%s", err);
    return 1;
  }
  d.size = (uint64_t)shunt_get_size(d.h);
  d.align = (uint32_t)shunt_get_block_size(d.h, SHUNT_BLOCK_MIN);
  d.pref_block = (uint32_t)shunt_get_block_size(d.h, SHUNT_BLOCK_PREFERRED);
  d.read_only = c.read_only || shunt_get_flag(d.h, SHUNT_IS_READ_ONLY) == 1;
  d.can_flush = shunt_get_flag(d.h, SHUNT_CAN_FLUSH) == 1;
  d.can_trim = shunt_get_flag(d.h, SHUNT_CAN_TRIM) == 1;
  d.can_zero = shunt_get_flag(d.h, SHUNT_CAN_ZERO) == 1;
  d.block_status = shunt_can_meta_context(d.h, "base:allocation") == 1;
  clock_gettime(CLOCK_REALTIME, &d.mtime);
  r = fuse_disk_init(&d);
  if (r) {
    log_msg(LOG_ERROR, NULL, NULL, "%s", strerror(-r));
    shunt_close(d.h);
    return 1;
  }
  r = fuse_serve(&c, &d);
  if (r)
    log_msg(LOG_ERROR, NULL, NULL, "%s: cannot serve: %s", c.mountpoint, strerror(-r));
  else
    fuse_summary(&c, &d);
  fuse_disk_fini(&d);
  shunt_close(d.h);
  return r ? 1 : 0;
}
