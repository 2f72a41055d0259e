/* serve.c: `shunt serve`, the NBD server's command line.  Parses options and
 * export specs into a server_config (src/server/config.h) and runs it. */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/log.h"
#include "common/parse.h"
#include "server/config.h"
#include "server/server.h"
#include "tools/cli.h"
#include "tools/commands.h"
#include "tools/serve_process.h"

static void serve_usage(FILE *f)
{
  fprintf(f,
"usage: shunt serve [OPTION]... NAME=PATH[,OPTION]...\n"
"       shunt serve [OPTION]... PATH[,OPTION]     (one export, the empty name)\n"
"       shunt serve [OPTION]...                   (exports from the default config)\n"
"\n"
"Serve files, block devices or RAM disks over the NBD protocol (fixed newstyle\n"
"handshake; structured replies, extended headers, base:allocation, multi-conn).\n"
"\n"
"Options:\n"
"  -l, --listen HOST:PORT   listen on TCP (repeatable; IPv4 or [IPv6]; HOST may be\n"
"                           empty for all addresses, PORT 0 for any free port).\n"
"                           Default: port 10809 on all addresses, unless --unix,\n"
"                           --stdio or socket activation.  A bare number is a\n"
"                           port on all addresses (--listen 10810)\n"
"  -p, --port PORT          listen on PORT on all addresses (as --listen :PORT)\n"
"  -U, --unix PATH          listen on a unix socket (repeatable); PATH may be a\n"
"                           stale socket, not a live one or another file\n"
"  -s, --stdio              serve one client on stdin/stdout, then exit (inetd,\n"
"                           libnbd's nbd_connect_command)\n"
"  -c, --config FILE        read settings and exports from FILE (docs/config.md);\n"
"                           without it and without exports, " SHUNT_DEFAULT_CONFIG "\n"
"                           ($SHUNT_CONFIG when set) is read if it exists\n"
"  -r, --readonly           serve every export read-only\n"
"  -t, --threads N          io_uring worker threads (default: one per CPU)\n"
"      --max-inflight SIZE  per-connection cap on buffered request data\n"
"                           (default 64M; reading pauses above it)\n"
"      --handshake-timeout SECONDS\n"
"                           close a client that has not finished the handshake\n"
"                           within SECONDS (default 10; 0: no limit); clients\n"
"                           idle after the handshake are never cut off\n"
"      --max-connections N  serve at most N connections at once; more are\n"
"                           closed as soon as accepted, with a log line\n"
"                           (default 1000; 0: no limit)\n"
"      --send-timeout SECONDS\n"
"                           cut a connection that holds buffers (replies it does\n"
"                           not read, a WRITE payload it does not finish) without\n"
"                           any progress for SECONDS (default 60; 0: never)\n"
"      --memory-budget SIZE cap on the request buffers of all connections\n"
"                           together (default: half of the memory the process\n"
"                           may use, at least 256M);\n"
"                           above it a connection with more than 2 MiB in\n"
"                           flight stops reading requests until memory frees\n"
"      --chunk SIZE         reads and writes larger than this are split into\n"
"                           chunks read/written at once and sent as each is\n"
"                           ready (default 256K; 4K..32M, a multiple of 4K)\n"
"      --arena SIZE         registered buffer arena per worker for the direct\n"
"                           path (default 64M; hugepages when there are any)\n"
"      --stats FILE         write per-export statistics as JSON to FILE on\n"
"                           SIGUSR1 and at exit (format: docs/design.md)\n"
"      --qos=on|off         a scheduler in front of each device, shared by every\n"
"                           export on it: per-flow shares by weight=, floors by\n"
"                           reserve-iops=, ceilings by limit-iops=/limit-bw=\n"
"                           (default on; docs/qos.md)\n"
"      --qos-key=conn|addr|tls  what one flow is: a connection (default), the\n"
"                           connections of one client address, or of one TLS\n"
"                           identity (then a multi-conn client is one flow)\n"
"      --device-iops N, --device-bw SIZE  the devices' capacity when known\n"
"                           (default: estimated from completions)\n"
"  -P, --pidfile FILE       write the server's pid to FILE once listening\n"
"      --fork               go to the background once listening: the command\n"
"                           returns 0 when clients can connect (or the server's\n"
"                           failure status); stdin and stdout go to /dev/null\n"
"      --run 'CMD'          once listening, run CMD with sh -c, $uri, $port\n"
"                           (TCP) and $unixsocket (unix) set as nbdkit does;\n"
"                           stop when it exits and exit with its status\n"
"      --exit-with-parent   stop (as on SIGTERM) when the parent process exits\n"
"  -u, --user USER          after binding, run as USER (name or number)\n"
"  -g, --group GROUP        after binding, run as GROUP (default: USER's)\n"
"      --log=syslog|stderr  where log lines go (default stderr; under systemd's\n"
"                           journal, with priority prefixes); also a level:\n"
"                           --log=error|warning|info|debug\n"
"      --control PATH       control socket for `shunt stats` (mode 0600 unless\n"
"                           --control-mode MODE, octal)\n"
"      --metrics HOST:PORT  serve GET /metrics (Prometheus text format) over\n"
"                           plain HTTP; off by default (docs/metrics.md)\n"
"  -v, --verbose            one level more logging per -v: the default (info:\n"
"                           listening, exports, errors, refusals) becomes debug\n"
"                           (every connection, every refused request)\n"
"  -q, --quiet              errors only\n"
"  -V, --version            print the version\n"
"      --tls=off|on|require STARTTLS: off (default); on (offered); require (every\n"
"                           option but STARTTLS and ABORT is refused before TLS)\n"
"      --tls-certificates DIR  X.509: DIR/ca-cert.pem, server-cert.pem, server-key.pem\n"
"      --tls-psk FILE       PSK: FILE holds identity:hexkey lines\n"
"      --tls-priority STRING  GnuTLS priority string (ciphers, versions; PSK\n"
"                           key exchanges are added with --tls-psk); default:\n"
"                           the system's NORMAL, the server's cipher order,\n"
"                           AES-128-GCM first (ChaCha20 without AES instructions)\n"
"      --tls-verify-peer    require client certificates signed by DIR/ca-cert.pem\n"
"      --tls-allow-dn PATTERN  accept only client certificates whose DN matches\n"
"                           the glob PATTERN (repeatable; implies --tls-verify-peer)\n"
"  -h, --help               this text\n"
"\n"
"Exports: NAME=PATH[,OPTION]...\n"
"  PATH is a regular file or block device; with backend=memory it is a size\n"
"  (e.g. 64M) of a sparse RAM disk; with backend=rbd POOL/IMAGE[@SNAP], a Ceph\n"
"  RBD image (a snapshot read-only).  An empty export name selects the first\n"
"  export.  Options after the path, separated by commas:\n"
"    ro                 read-only: writes, trims and zeroes get EPERM\n"
"    desc=TEXT          description sent with NBD_INFO_DESCRIPTION (no commas)\n"
"    backend=file|memory|rbd  storage behind the export (default file)\n"
"    datapath=PATH      how bytes move between storage and socket:\n"
"                         auto    the default: chosen per request; a read whose\n"
"                                 pages are cached as mmap, an uncached one as\n"
"                                 direct; writes O_DIRECT, or buffered when\n"
"                                 another export of the file writes that way\n"
"                                 (a memory backend: copy)\n"
"                         copy    read into a buffer, then send\n"
"                         splice  file -> pipe -> socket, no copy, page cache kept\n"
"                         direct  O_DIRECT into a registered arena + SEND_ZC,\n"
"                                 no copy, no page cache\n"
"                         mmap    page-cached reads sent from a mapping of the\n"
"                                 file (one kernel copy), the rest as splice\n"
"                       a fixed path forces one way for every request: mmap or\n"
"                       splice to serve from the page cache (auto never fills\n"
"                       it), direct to keep every read on the disk\n"
"    chunk=SIZE         this export's chunk size (see --chunk)\n"
"    weight=N           each flow's share of the device while it is busy\n"
"                       (1..10000, default 100)\n"
"    reserve-iops=N     requests per second each flow gets first (a floor)\n"
"    limit-iops=N, limit-bw=SIZE  each flow's ceiling, per second\n"
"    max-memory=SIZE    backend=memory: at most SIZE of pages; writes beyond\n"
"                       get ENOSPC (default: the size, or half of the memory\n"
"                       the process may use with allow-overcommit)\n"
"    allow-overcommit   backend=memory: allow a size larger than the memory\n"
"                       the process may use (RAM, ulimit, cgroup)\n"
"    ceph-conf=FILE     backend=rbd: the ceph.conf (default: $CEPH_CONF,\n"
"                       /etc/ceph/CLUSTER.conf, ...)\n"
"    ceph-id=USER       backend=rbd: the client name without client. (admin)\n"
"    ceph-cluster=NAME  backend=rbd: the cluster's name (default ceph)\n"
"    lock=exclusive     backend=rbd: take the image's exclusive lock and keep\n"
"                       it; writes fail (EPERM) while another client holds it\n"
"    allow=WHO, allow-ro=WHO, deny=WHO   access rules, first match wins; with\n"
"                       rules, unmatched clients are refused.  WHO: all, unix,\n"
"                       tls, ADDR[/BITS] (IPv4/IPv6), dn:GLOB, psk:GLOB\n"
"\n"
"Fixed limits: option data 64 KiB (larger options get NBD_REP_ERR_TOO_BIG),\n"
"request payload 32 MiB.\n"
"\n"
"Systemd socket activation (LISTEN_PID/LISTEN_FDS) is used when present;\n"
"with NOTIFY_SOCKET set (Type=notify) READY=1 is sent once listening and\n"
"STOPPING=1 when shutdown begins.\n"
"SIGINT/SIGTERM: stop accepting, finish in-flight requests, flush, exit 0.\n"
"SIGUSR1: write --stats.  SIGHUP: read the config file again (exports added,\n"
"removed or changed; open connections keep theirs; server-wide settings are\n"
"not reloaded).  SIGUSR2: logged and ignored.\n"
"\n"
"Example:\n"
"  shunt serve --listen 127.0.0.1:10809 disk=/srv/disk.img logs=/srv/logs.img,ro\n"
"  nbdinfo nbd://127.0.0.1:10809/disk\n"
"  shunt serve -r -p 10810 /srv/disk.img --run 'qemu-img convert \"$uri\" disk.qcow2'\n");
}

enum {   /* long options without a letter */
  OPT_CHUNK = 1000, OPT_ARENA, OPT_STATS, OPT_SEND_TIMEOUT, OPT_MEMORY_BUDGET, OPT_VERIFY_PEER,
  OPT_FORK, OPT_RUN, OPT_EXIT_WITH_PARENT, OPT_LOG, OPT_MAX_INFLIGHT, OPT_HANDSHAKE_TIMEOUT,
  OPT_MAX_CONNECTIONS, OPT_TLS, OPT_TLS_CERTIFICATES, OPT_TLS_PSK, OPT_TLS_ALLOW_DN,
  OPT_TLS_PRIORITY,
  OPT_QOS, OPT_QOS_KEY, OPT_DEVICE_IOPS, OPT_DEVICE_BW,
  OPT_CONTROL, OPT_CONTROL_MODE, OPT_METRICS,
};

/* The config file to read: --config FILE, or, when the command line names
 * no export either, the default one if it exists ($SHUNT_CONFIG, else
 * SHUNT_DEFAULT_CONFIG).  NULL: none.  A first pass over the options, quiet:
 * the second one reports mistakes. */
static const char *config_path(int argc, char **argv, const char *shortopts, const struct option *opts)
{
  const char *file = cli_config_option(argc, argv, shortopts, opts), *dflt;

  if (file || optind < argc)
    return file;
  dflt = getenv("SHUNT_CONFIG");
  if (!dflt || !*dflt)
    dflt = SHUNT_DEFAULT_CONFIG;
  return access(dflt, F_OK) == 0 ? dflt : NULL;
}

/* The export arguments: NAME=PATH[,OPTION]..., or one bare PATH[,OPTION]...
 * served under the default (empty) name, as nbdkit's and qemu-nbd's file
 * argument.  Returns 0 or an exit status (reported). */
static int add_exports(struct server_config *cfg, int argc, char **argv, int first)
{
  char err[512], *spec = NULL;
  int r;

  for (int i = first; i < argc; i++) {
    const char *a = argv[i];
    if (strchr(a, '=')) {
      r = config_add_export_spec(cfg, a, err, sizeof err);
    } else if (argc - first > 1) {
      return cli_usage_error("serve", "'%s': with several exports each needs a name (NAME=%s)", a, a);
    } else {
      /* The spec parser wants a name: parse under a placeholder, then
       * give the export the empty name. */
      if (asprintf(&spec, "default=%s", a) < 0)
        return 1;
      r = config_add_export_spec(cfg, spec, err, sizeof err);
      free(spec);
      if (r == 0)
        cfg->exports[cfg->nexports - 1].name[0] = '\0';
    }
    if (r < 0) {
      log_msg(LOG_ERROR, NULL, NULL, "%s", err);
      return 2;
    }
  }
  return 0;
}

static const struct option opts[] = {
  { "listen", required_argument, NULL, 'l' },
  { "port", required_argument, NULL, 'p' },
  { "unix", required_argument, NULL, 'U' },
  { "stdio", no_argument, NULL, 's' },
  { "config", required_argument, NULL, 'c' },
  { "readonly", no_argument, NULL, 'r' },
  { "read-only", no_argument, NULL, 'r' },
  { "threads", required_argument, NULL, 't' },
  { "max-inflight", required_argument, NULL, OPT_MAX_INFLIGHT },
  { "handshake-timeout", required_argument, NULL, OPT_HANDSHAKE_TIMEOUT },
  { "max-connections", required_argument, NULL, OPT_MAX_CONNECTIONS },
  { "send-timeout", required_argument, NULL, OPT_SEND_TIMEOUT },
  { "memory-budget", required_argument, NULL, OPT_MEMORY_BUDGET },
  { "chunk", required_argument, NULL, OPT_CHUNK },
  { "arena", required_argument, NULL, OPT_ARENA },
  { "stats", required_argument, NULL, OPT_STATS },
  { "qos", required_argument, NULL, OPT_QOS },
  { "qos-key", required_argument, NULL, OPT_QOS_KEY },
  { "device-iops", required_argument, NULL, OPT_DEVICE_IOPS },
  { "device-bw", required_argument, NULL, OPT_DEVICE_BW },
  { "pidfile", required_argument, NULL, 'P' },
  { "fork", no_argument, NULL, OPT_FORK },
  { "run", required_argument, NULL, OPT_RUN },
  { "exit-with-parent", no_argument, NULL, OPT_EXIT_WITH_PARENT },
  { "user", required_argument, NULL, 'u' },
  { "group", required_argument, NULL, 'g' },
  { "log", required_argument, NULL, OPT_LOG },
  { "control", required_argument, NULL, OPT_CONTROL },
  { "control-mode", required_argument, NULL, OPT_CONTROL_MODE },
  { "metrics", required_argument, NULL, OPT_METRICS },
  { "verbose", no_argument, NULL, 'v' },
  { "quiet", no_argument, NULL, 'q' },
  { "version", no_argument, NULL, 'V' },
  { "help", no_argument, NULL, 'h' },
  { "tls", required_argument, NULL, OPT_TLS },
  { "tls-certificates", required_argument, NULL, OPT_TLS_CERTIFICATES },
  { "tls-psk", required_argument, NULL, OPT_TLS_PSK },
  { "tls-priority", required_argument, NULL, OPT_TLS_PRIORITY },
  { "tls-verify-peer", no_argument, NULL, OPT_VERIFY_PEER },
  { "tls-allow-dn", required_argument, NULL, OPT_TLS_ALLOW_DN },
  { NULL, 0, NULL, 0 },
};
static const char shortopts[] = "l:p:U:sc:rt:P:u:g:vqVh";

/* The options (after the config file's settings, over them): into cfg,
 * and the process's (pid file, --fork, ...) into proc; -r into *read_only.
 * Returns -1 to go on (optind at the first export argument), else the exit
 * status (reported, or -V/-h done). */
static int parse_options(struct server_config *cfg, struct serve_process *proc, int argc, char **argv,
                         bool *read_only)
{
  char err[512], listen[32];
  int c, verbose = 0, quiet = 0;

  optind = 0;   /* glibc: start over after config_path's pass */
  while ((c = cli_getopt(argc, argv, shortopts, opts)) != -1) {
    switch (c) {
    case 'l':
      config_add_listen(cfg, optarg);
      break;
    case 'p':
      if (!optarg[0] || strspn(optarg, "0123456789") != strlen(optarg) || strlen(optarg) > 5)
        return cli_usage_error("serve", "--port '%s': expected a port number", optarg);
      snprintf(listen, sizeof listen, ":%s", optarg);
      config_add_listen(cfg, listen);
      break;
    case 'U':
      config_add_unix(cfg, optarg);
      break;
    case 's':
      cfg->stdio = true;
      break;
    case 'c':
      break;   /* read above */
    case 'r':
      *read_only = true;
      break;
    case 'P': proc->pidfile = optarg; break;
    case OPT_FORK: proc->fork = true; break;
    case OPT_RUN: proc->run = optarg; break;
    case OPT_EXIT_WITH_PARENT: proc->exit_with_parent = true; break;
    case 'u': proc->user = optarg; break;
    case 'g': proc->group = optarg; break;
    case 't': case OPT_MAX_INFLIGHT: case OPT_CHUNK: case OPT_ARENA: case OPT_STATS:
    case OPT_SEND_TIMEOUT: case OPT_MEMORY_BUDGET: case OPT_LOG:
    case OPT_QOS: case OPT_QOS_KEY: case OPT_DEVICE_IOPS: case OPT_DEVICE_BW:
    case OPT_HANDSHAKE_TIMEOUT: case OPT_MAX_CONNECTIONS: case OPT_TLS:
    case OPT_TLS_CERTIFICATES: case OPT_TLS_PSK: case OPT_VERIFY_PEER: case OPT_TLS_ALLOW_DN:
    case OPT_TLS_PRIORITY:
    case OPT_CONTROL: case OPT_CONTROL_MODE: case OPT_METRICS: {
      /* Valued options are config-file keys: one parser validates both. */
      const char *key = cli_option_name(opts, c);
      if (config_set_server_key(cfg, key, c == OPT_VERIFY_PEER ? "yes" : optarg, err, sizeof err) < 0)
        return cli_usage_error("serve", "--%s: %s", key, err);
      break;
    }
    case 'v':
      verbose++;
      break;
    case 'q':
      quiet = 1;
      break;
    case 'V':
      return cli_version();
    case 'h':
      serve_usage(stdout);
      return 0;
    default:
      return 2;
    }
  }
  cfg->log_level = cli_log_level(cfg->log_level, verbose, quiet);
  return -1;
}

/* What SIGHUP reads again: the config file, then the same command line. */
struct serve_reload {
  int argc;
  char **argv;
  const char *file;
};

/* server_config.reload: the configuration as cmd_serve built it at start,
 * from the file as it is now. */
static int serve_reload(struct server_config *out, void *arg, char *err, size_t errlen)
{
  struct serve_reload *rl = arg;
  struct serve_process proc = { 0 };
  bool read_only = false;
  int r = config_load_file(out, rl->file, err, errlen);

  if (r < 0)
    return r;
  /* The command line was valid at start: it still is. */
  if (parse_options(out, &proc, rl->argc, rl->argv, &read_only) >= 0
      || add_exports(out, rl->argc, rl->argv, optind) != 0) {
    snprintf(err, errlen, "the command line cannot be read again");
    return -EINVAL;
  }
  if (read_only)
    for (size_t i = 0; i < out->nexports; i++)
      out->exports[i].read_only = true;
  return 0;
}

int cmd_serve(int argc, char **argv)
{
  struct server_config cfg;
  struct serve_process proc = { 0 };
  struct serve_reload rl = { argc, argv, NULL };
  char err[512];
  int status;
  bool read_only = false;

  config_init(&cfg);
  /* The config file is read first so that the command line adds to it. */
  rl.file = config_path(argc, argv, shortopts, opts);
  if (rl.file && config_load_file(&cfg, rl.file, err, sizeof err) < 0) {
    log_msg(LOG_ERROR, NULL, NULL, "%s", err);
    config_free(&cfg);
    return 2;
  }
  if ((status = parse_options(&cfg, &proc, argc, argv, &read_only)) >= 0) {
    config_free(&cfg);
    return status;
  }
  if ((status = add_exports(&cfg, argc, argv, optind)) != 0) {
    config_free(&cfg);
    return status;
  }
  if (cfg.nexports == 0) {
    config_free(&cfg);
    return cli_usage_error("serve", "no exports given: name one as NAME=PATH or PATH, or in --config FILE%s",
                           access(SHUNT_DEFAULT_CONFIG, F_OK) == 0 ? "" : " (" SHUNT_DEFAULT_CONFIG " does not exist)");
  }
  if (cfg.stdio && (cfg.nlisten || cfg.nunix)) {
    config_free(&cfg);
    return cli_usage_error("serve", "--stdio cannot be combined with --listen or --unix");
  }
  if (read_only)
    for (size_t i = 0; i < cfg.nexports; i++)
      cfg.exports[i].read_only = true;
  if ((status = serve_process_check(&proc, cfg.stdio)) != 0 ||
      (status = serve_process_start(&proc)) >= 0) {
    config_free(&cfg);
    return status;
  }
  cfg.on_ready = serve_process_ready;
  cfg.on_ready_arg = &proc;
  cfg.config_file = rl.file;
  cfg.reload = serve_reload;
  cfg.reload_arg = &rl;
  status = server_run(&cfg);
  status = serve_process_finish(&proc, status);
  config_free(&cfg);
  return status;
}
