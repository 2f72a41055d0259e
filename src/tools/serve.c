/* serve.c: `shunt serve`, the NBD server's command line.  Parses options and
 * export specs into a server_config (src/server/config.h) and runs it. */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/log.h"
#include "common/parse.h"
#include "server/config.h"
#include "server/server.h"
#include "tools/commands.h"

static void serve_usage(FILE *f)
{
  fprintf(f,
"usage: shunt serve [OPTION]... NAME=PATH[,OPTION]...\n"
"\n"
"Serve files, block devices or RAM disks over the NBD protocol (fixed newstyle\n"
"handshake; structured replies, extended headers, base:allocation, multi-conn).\n"
"\n"
"Options:\n"
"  -l, --listen HOST:PORT   listen on TCP (repeatable; IPv4 or [IPv6]; HOST may be\n"
"                           empty for all addresses, PORT 0 for any free port).\n"
"                           Default: port 10809 on all addresses, unless --unix,\n"
"                           --stdio or socket activation\n"
"  -U, --unix PATH          listen on a unix socket (repeatable); PATH may be a\n"
"                           stale socket, not a live one or another file\n"
"  -s, --stdio              serve one client on stdin/stdout, then exit (inetd,\n"
"                           libnbd's nbd_connect_command)\n"
"  -c, --config FILE        read settings and exports from FILE (docs/config.md)\n"
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
"  -v, --verbose            one level more logging per -v: the default (info:\n"
"                           connections, exports) becomes debug (every refused\n"
"                           request)\n"
"  -q, --quiet              errors only\n"
"      --tls=off|on|require STARTTLS: off (default); on (offered); require (every\n"
"                           option but STARTTLS and ABORT is refused before TLS)\n"
"      --tls-certificates DIR  X.509: DIR/ca-cert.pem, server-cert.pem, server-key.pem\n"
"      --tls-psk FILE       PSK: FILE holds identity:hexkey lines\n"
"      --tls-verify-peer    require client certificates signed by DIR/ca-cert.pem\n"
"      --tls-allow-dn PATTERN  accept only client certificates whose DN matches\n"
"                           the glob PATTERN (repeatable; implies --tls-verify-peer)\n"
"  -h, --help               this text\n"
"\n"
"Exports: NAME=PATH[,OPTION]...\n"
"  PATH is a regular file or block device; with backend=memory it is a size\n"
"  (e.g. 64M) of a sparse RAM disk.  An empty export name selects the first\n"
"  export.  Options after the path, separated by commas:\n"
"    ro                 read-only: writes, trims and zeroes get EPERM\n"
"    desc=TEXT          description sent with NBD_INFO_DESCRIPTION (no commas)\n"
"    backend=file|memory  storage behind the export (default file)\n"
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
"    allow=WHO, allow-ro=WHO, deny=WHO   access rules, first match wins; with\n"
"                       rules, unmatched clients are refused.  WHO: all, unix,\n"
"                       tls, ADDR[/BITS] (IPv4/IPv6), dn:GLOB, psk:GLOB\n"
"\n"
"Fixed limits: option data 64 KiB (larger options get NBD_REP_ERR_TOO_BIG),\n"
"request payload 32 MiB.\n"
"\n"
"Systemd socket activation (LISTEN_PID/LISTEN_FDS) is used when present.\n"
"SIGINT/SIGTERM: stop accepting, finish in-flight requests, flush, exit 0.\n"
"SIGUSR1: write --stats.  SIGHUP, SIGUSR2: logged and ignored.\n"
"\n"
"Example:\n"
"  shunt serve --listen 127.0.0.1:10809 disk=/srv/disk.img logs=/srv/logs.img,ro\n"
"  nbdinfo nbd://127.0.0.1:10809/disk\n");
}

enum { OPT_CHUNK = 1000, OPT_ARENA, OPT_STATS, OPT_SEND_TIMEOUT, OPT_MEMORY_BUDGET, OPT_QOS, OPT_QOS_KEY,
       OPT_DEVICE_IOPS, OPT_DEVICE_BW };   /* long options without a letter */

/* The long name of the option whose getopt value is c. */
static const char *option_key(const struct option *opts, int c)
{
  for (; opts->name; opts++)
    if (opts->val == c)
      return opts->name;
  return "?";
}

int cmd_serve(int argc, char **argv)
{
  static const struct option opts[] = {
    { "listen", required_argument, NULL, 'l' },
    { "unix", required_argument, NULL, 'U' },
    { "stdio", no_argument, NULL, 's' },
    { "config", required_argument, NULL, 'c' },
    { "threads", required_argument, NULL, 't' },
    { "max-inflight", required_argument, NULL, 'M' },
    { "handshake-timeout", required_argument, NULL, 'H' },
    { "max-connections", required_argument, NULL, 'm' },
    { "send-timeout", required_argument, NULL, OPT_SEND_TIMEOUT },
    { "memory-budget", required_argument, NULL, OPT_MEMORY_BUDGET },
    { "chunk", required_argument, NULL, OPT_CHUNK },
    { "arena", required_argument, NULL, OPT_ARENA },
    { "stats", required_argument, NULL, OPT_STATS },
    { "qos", required_argument, NULL, OPT_QOS },
    { "qos-key", required_argument, NULL, OPT_QOS_KEY },
    { "device-iops", required_argument, NULL, OPT_DEVICE_IOPS },
    { "device-bw", required_argument, NULL, OPT_DEVICE_BW },
    { "verbose", no_argument, NULL, 'v' },
    { "quiet", no_argument, NULL, 'q' },
    { "help", no_argument, NULL, 'h' },
    { "tls", required_argument, NULL, 'T' },
    { "tls-certificates", required_argument, NULL, 'C' },
    { "tls-psk", required_argument, NULL, 'P' },
    { "tls-verify-peer", no_argument, NULL, 'V' },
    { "tls-allow-dn", required_argument, NULL, 'D' },
    { NULL, 0, NULL, 0 },
  };
  struct server_config cfg;
  char err[512];
  int c, verbose = 0, quiet = 0, status;
  const char *config_file = NULL;

  config_init(&cfg);
  /* The config file is read first so that the command line adds to it. */
  for (int i = 1; i < argc; i++) {
    if ((!strcmp(argv[i], "--config") || !strcmp(argv[i], "-c")) && i + 1 < argc)
      config_file = argv[i + 1];
    else if (!strncmp(argv[i], "--config=", 9))
      config_file = argv[i] + 9;
  }
  if (config_file && config_load_file(&cfg, config_file, err, sizeof err) < 0) {
    fprintf(stderr, "shunt serve: %s\n", err);
    config_free(&cfg);
    return 2;
  }
  optind = 1;
  while ((c = getopt_long(argc, argv, "l:U:sc:t:vqh", opts, NULL)) != -1) {
    switch (c) {
    case 'l':
      config_add_listen(&cfg, optarg);
      break;
    case 'U':
      config_add_unix(&cfg, optarg);
      break;
    case 's':
      cfg.stdio = true;
      break;
    case 'c':
      break;   /* read above */
    case 't': case 'M': case OPT_CHUNK: case OPT_ARENA: case OPT_STATS:
    case OPT_QOS: case OPT_QOS_KEY: case OPT_DEVICE_IOPS: case OPT_DEVICE_BW:
    case OPT_SEND_TIMEOUT: case OPT_MEMORY_BUDGET:
    case 'H': case 'm': case 'T': case 'C': case 'P': case 'V': case 'D': {
      /* Valued options are config-file keys: one parser validates both. */
      const char *key = option_key(opts, c);
      if (config_set_server_key(&cfg, key, c == 'V' ? "yes" : optarg, err, sizeof err) < 0) {
        fprintf(stderr, "shunt serve: --%s: %s\n", key, err);
        config_free(&cfg);
        return 2;
      }
      break;
    }
    case 'v':
      verbose++;
      break;
    case 'q':
      quiet = 1;
      break;
    case 'h':
      serve_usage(stdout);
      config_free(&cfg);
      return 0;
    default:
      serve_usage(stderr);
      config_free(&cfg);
      return 2;
    }
  }
  if (quiet)
    cfg.log_level = LOG_ERROR;
  else if (cfg.log_level + verbose > LOG_DEBUG)
    cfg.log_level = LOG_DEBUG;
  else
    cfg.log_level += verbose;
  for (int i = optind; i < argc; i++)
    if (config_add_export_spec(&cfg, argv[i], err, sizeof err) < 0) {
      fprintf(stderr, "shunt serve: %s\n", err);
      config_free(&cfg);
      return 2;
    }
  if (cfg.nexports == 0) {
    fprintf(stderr, "shunt serve: no exports given\n");
    serve_usage(stderr);
    config_free(&cfg);
    return 2;
  }
  if (cfg.stdio && (cfg.nlisten || cfg.nunix)) {
    fprintf(stderr, "shunt serve: --stdio cannot be combined with --listen or --unix\n");
    config_free(&cfg);
    return 2;
  }
  status = server_run(&cfg);
  config_free(&cfg);
  return status;
}
