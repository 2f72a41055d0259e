/* vhost.c: `shunt vhost`, the vhost-user-blk back end's command line.
 * Parses options and device specs into a vhost_config (src/vhost/vconfig.h)
 * and runs it (src/vhost/vhost.h). */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/log.h"
#include "tools/cli.h"
#include "tools/commands.h"
#include "vhost/vconfig.h"
#include "vhost/vhost.h"

static void vhost_usage(FILE *f)
{
  fprintf(f,
"usage: shunt vhost [OPTION]... SOCKET=SOURCE[,OPTION]...\n"
"\n"
"Serve files and block devices to virtual machines as vhost-user-blk disks:\n"
"the VMM (qemu, cloud-hypervisor) connects to SOCKET and hands over the guest's\n"
"memory and virtqueues; requests move between SOURCE and guest pages with no\n"
"VMM on the data path.  One socket per disk; one frontend at a time on each.\n"
"\n"
"Options:\n"
"  -c, --config FILE        read settings and devices from FILE: a [server]\n"
"                           part (threads, stats, log, arena) and one\n"
"                           [vhost SOCKET] section per device (source = ...,\n"
"                           and the device options below as KEY = VALUE)\n"
"  -t, --threads N          io_uring worker threads (default: one per CPU)\n"
"      --arena SIZE         registered buffer arena per worker (default 64M)\n"
"      --stats FILE         write per-device statistics as JSON to FILE on\n"
"                           SIGUSR1 and at exit\n"
"  -u, --user USER          once the sockets and sources are open, run as USER\n"
"                           (name or number), who then owns the sockets\n"
"  -g, --group GROUP        ... and as GROUP (default: USER's), the sockets' group\n"
"      --socket-mode OCTAL  the sockets' file mode (default 0600: the user\n"
"                           shunt vhost runs as; 0660 lets the socket's group,\n"
"                           e.g. the VMM's, connect)\n"
"      --qos=on|off         a scheduler in front of each storage device, shared\n"
"                           by every device on it (each is one flow): shares by\n"
"                           weight=, floors by reserve-iops=, ceilings by\n"
"                           limit-iops=/limit-bw= (default on; docs/qos.md)\n"
"      --device-iops N, --device-bw SIZE  the storage devices' capacity when known\n"
"  -v, --verbose            more logging (debug: every refused request)\n"
"  -q, --quiet              errors only\n"
"  -h, --help               this text\n"
"  -V, --version            the version\n"
"\n"
"Devices: SOCKET=SOURCE[,OPTION]...\n"
"  SOCKET is the path of the unix socket to create (a stale socket there is\n"
"  replaced; a live one or any other file is refused).  SOURCE is a regular\n"
"  file or block device, or an NBD URI (nbd://HOST[:PORT]/EXPORT, nbds://...,\n"
"  nbd+unix:///EXPORT?socket=PATH): one connection per queue, reconnected when\n"
"  it drops; reads land in guest pages with no copy; or with backend=rbd a Ceph\n"
"  RBD image POOL/IMAGE[@SNAP] (a snapshot needs ro).  Options:\n"
"    ro                 read-only: the guest sees a read-only disk (VIRTIO_BLK_F_RO)\n"
"    queues=N           virtqueues offered (1..64; default: one per worker)\n"
"    datapath=PATH      direct (default: O_DIRECT straight into guest pages),\n"
"                       copy, splice, mmap or auto, as for shunt serve (files)\n"
"    serial=TEXT        the disk's serial number (GET_ID; 20 bytes at most)\n"
"    discard=on|off     offer DISCARD and WRITE_ZEROES (default on)\n"
"    backend=file|rbd   what SOURCE names (default file)\n"
"    ceph-conf=FILE, ceph-id=USER, ceph-cluster=NAME, lock=exclusive\n"
"                       backend=rbd: as for shunt serve\n"
"    weight=N           the device's share of its storage device while busy\n"
"                       (1..10000, default 100)\n"
"    reserve-iops=N     requests per second it gets first (a floor)\n"
"    limit-iops=N, limit-bw=SIZE  its ceiling, per second\n"
"                       (these four: refused for NBD URIs)\n"
"\n"
"SIGINT/SIGTERM: stop serving, finish in-flight requests, exit 0.\n"
"SIGUSR1: write --stats.\n"
"\n"
"Example:\n"
"  shunt vhost /run/vm1.sock=/srv/vm1.img,queues=2 /run/vm2.sock=nbd://10.0.0.5/vm2\n"
"  qemu-system-x86_64 -object memory-backend-memfd,id=mem,size=1G,share=on \\\n"
"      -numa node,memdev=mem -chardev socket,id=vu,path=/run/vm1.sock \\\n"
"      -device vhost-user-blk-pci,chardev=vu,num-queues=2 ...\n");
}

enum { OPT_ARENA = 1000, OPT_STATS, OPT_SOCKET_MODE, OPT_QOS, OPT_DEVICE_IOPS, OPT_DEVICE_BW };

int cmd_vhost(int argc, char **argv)
{
  static const struct option opts[] = {
    { "config", required_argument, NULL, 'c' },
    { "threads", required_argument, NULL, 't' },
    { "arena", required_argument, NULL, OPT_ARENA },
    { "stats", required_argument, NULL, OPT_STATS },
    { "socket-mode", required_argument, NULL, OPT_SOCKET_MODE },
    { "user", required_argument, NULL, 'u' },
    { "group", required_argument, NULL, 'g' },
    { "qos", required_argument, NULL, OPT_QOS },
    { "device-iops", required_argument, NULL, OPT_DEVICE_IOPS },
    { "device-bw", required_argument, NULL, OPT_DEVICE_BW },
    { "verbose", no_argument, NULL, 'v' },
    { "quiet", no_argument, NULL, 'q' },
    { "help", no_argument, NULL, 'h' },
    { "version", no_argument, NULL, 'V' },
    { NULL, 0, NULL, 0 },
  };
  struct vhost_config cfg;
  char err[512];
  int c, verbose = 0, quiet = 0, status;
  static const char shortopts[] = "c:t:u:g:vqhV";
  const char *config_file;

  vhost_config_init(&cfg);
  /* The config file is read first so that the command line adds to it. */
  config_file = cli_config_option(argc, argv, shortopts, opts);
  if (config_file && vhost_config_load_file(&cfg, config_file, err, sizeof err) < 0) {
    vhost_config_free(&cfg);
    return cli_usage_error("vhost", "%s", err);
  }
  optind = 0;   /* glibc: start over after cli_config_option's pass */
  while ((c = cli_getopt(argc, argv, shortopts, opts)) != -1) {
    switch (c) {
    case 'c':
      break;   /* read above */
    case 't': case OPT_ARENA: case OPT_STATS: case OPT_SOCKET_MODE: case OPT_QOS: case OPT_DEVICE_IOPS: case OPT_DEVICE_BW: {
      const char *key = cli_option_name(opts, c);
      if (vhost_config_set_key(&cfg, key, optarg, err, sizeof err) < 0) {
        vhost_config_free(&cfg);
        return cli_usage_error("vhost", "--%s: %s", key, err);
      }
      break;
    }
    case 'u':
      cfg.privs.user = optarg;
      break;
    case 'g':
      cfg.privs.group = optarg;
      break;
    case 'v':
      verbose++;
      break;
    case 'q':
      quiet = 1;
      break;
    case 'h':
      vhost_usage(stdout);
      vhost_config_free(&cfg);
      return 0;
    case 'V':
      vhost_config_free(&cfg);
      return cli_version();
    default:   /* cli_getopt said what was wrong */
      vhost_config_free(&cfg);
      return 2;
    }
  }
  cfg.log_level = cli_log_level(cfg.log_level, verbose, quiet);
  for (int i = optind; i < argc; i++)
    if (vhost_config_add_spec(&cfg, argv[i], err, sizeof err) < 0) {
      vhost_config_free(&cfg);
      return cli_usage_error("vhost", "%s", err);
    }
  if (cfg.ndevs == 0) {
    vhost_config_free(&cfg);
    return cli_usage_error("vhost", "no devices given: name one as SOCKET=SOURCE, or in --config FILE");
  }
  if (vhost_config_check(&cfg, err, sizeof err) < 0 || privs_resolve(&cfg.privs, err, sizeof err) < 0) {
    vhost_config_free(&cfg);
    return cli_usage_error("vhost", "%s", err);
  }
  status = vhost_run(&cfg);
  vhost_config_free(&cfg);
  return status;
}
