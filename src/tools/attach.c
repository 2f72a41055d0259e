/* attach.c: `shunt attach`, `shunt detach` and `shunt list`: negotiate in userspace
 * (libshunt), hand the connected sockets to the Linux kernel nbd driver over generic
 * netlink (tools/nbd-netlink.h), and with --persist stay as a monitor that reconnects
 * with backoff and gives the kernel new sockets before its dead-connection timeout. */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "common/log.h"
#include "proto/nbd-protocol.h"
#include "tools/cli.h"
#include "tools/commands.h"
#include "tools/connect.h"
#include "tools/nbd-netlink.h"

/* What negotiation hands to the kernel. */
struct attach_session {
  uint64_t size;
  uint16_t eflags;                 /* NBD transmission flags */
  uint32_t min_block, pref_block;  /* the server's block size constraints (0: none) */
  int fds[NBD_NL_MAX_SOCKETS];     /* connected sockets in the transmission phase */
  unsigned nfds;
};

/* ---- Negotiation: the one step that speaks NBD, done by libshunt ---- */

#include "shunt/shunt.h"

struct attach_opts {
  const char *uri;
  struct tools_failover failover;  /* --failover: other URIs of the export */
  unsigned cur;                    /* the URI in use: 0 for uri, k for failover.uris[k-1] */
  int32_t index;
  unsigned conns;
  uint64_t timeout_s, dead_timeout_s, block_size;
  bool persist, quiet;
};

static unsigned attach_nuris(const struct attach_opts *o)
{
  return 1 + o->failover.n;
}

static const char *attach_uri(const struct attach_opts *o, unsigned k)
{
  return k == 0 ? o->uri : o->failover.uris[k - 1];
}

/* Connect with up to conns connections and take their sockets: to URI first
 * of o's list, else the others in round-robin order from there (libshunt's
 * failover list); o->cur becomes the one that answered.  The kernel driver
 * parses simple replies only, so structured replies, extended headers and
 * meta contexts are not negotiated. */
static int attach_negotiate(struct attach_opts *o, unsigned first, unsigned conns,
                            struct attach_session *s, char *err, size_t errlen)
{
  struct tools_failover rest = { .n = 0 };
  unsigned n = attach_nuris(o);
  for (unsigned i = 1; i < n; i++)
    rest.uris[rest.n++] = attach_uri(o, (first + i) % n);
  const char *uri = attach_uri(o, first);
  struct tools_conn_opts co = { .connections = conns, .no_structured = true,
                                .no_extended = true, .no_block_status = true,
                                .failover = &rest };
  struct shunt_handle *h;
  int e = tools_connect(&h, uri, &co, err, errlen);
  if (e)
    return e;
  for (unsigned k = 0; k < n; k++)
    if (!strcmp(attach_uri(o, k), shunt_get_uri(h)))
      o->cur = k;
  uri = attach_uri(o, o->cur);
  if (shunt_get_flag(h, SHUNT_HAS_STRUCTURED_REPLIES) == 1 ||
      shunt_get_flag(h, SHUNT_HAS_EXTENDED_HEADERS) == 1) {
    snprintf(err, errlen, "%s: negotiated structured replies, which the kernel cannot parse", uri);
    shunt_close(h);
    return -EPROTO;
  }
  s->size = (uint64_t)shunt_get_size(h);
  s->eflags = (uint16_t)shunt_get_transmission_flags(h);
  s->min_block = (uint32_t)shunt_get_block_size(h, SHUNT_BLOCK_MIN);
  s->pref_block = (uint32_t)shunt_get_block_size(h, SHUNT_BLOCK_PREFERRED);
  e = shunt_release_fds(h, s->fds, NBD_NL_MAX_SOCKETS);
  shunt_close(h);
  if (e < 0) {
    snprintf(err, errlen, "%s: cannot take the sockets: %s", uri, strerror(-e));
    return e;
  }
  s->nfds = (unsigned)e;
  return 0;
}

/* ---- Helpers ---- */

/* "/dev/nbd3", "nbd3" or "3" -> 3. */
static int parse_device(const char *s, int32_t *index)
{
  if (!strncmp(s, "/dev/", 5))
    s += 5;
  if (!strncmp(s, "nbd", 3))
    s += 3;
  if (*s < '0' || *s > '9')
    return -EINVAL;
  char *end;
  errno = 0;
  unsigned long v = strtoul(s, &end, 10);
  if (errno || *end || v > INT32_MAX)
    return -EINVAL;
  *index = (int32_t)v;
  return 0;
}

static int parse_u64(const char *s, uint64_t max, uint64_t *out)
{
  char *end;
  if (*s < '0' || *s > '9')
    return -EINVAL;
  errno = 0;
  unsigned long long v = strtoull(s, &end, 10);
  if (errno || *end || v > max)
    return -EINVAL;
  *out = v;
  return 0;
}

/* The kernel's logical block size: a power of two in 512..4096 that the server's minimum
 * allows, its preferred size when that fits. */
static int pick_block_size(const struct attach_session *s, uint64_t *bs)
{
  uint64_t b = 512;
  while (b < s->min_block && b < 4096)
    b <<= 1;
  if (s->min_block > b)
    return -EINVAL;
  while (b < 4096 && b < s->pref_block)
    b <<= 1;
  *bs = b;
  return 0;
}

static void close_fds(struct attach_session *s)
{
  for (unsigned i = 0; i < s->nfds; i++)
    close(s->fds[i]);
  s->nfds = 0;
}

/* The kernel drives the sockets itself and blocks on them; it wants them blocking. */
static void make_blocking(struct attach_session *s)
{
  for (unsigned i = 0; i < s->nfds; i++) {
    int fl = fcntl(s->fds[i], F_GETFL);
    if (fl >= 0 && (fl & O_NONBLOCK))
      (void)fcntl(s->fds[i], F_SETFL, fl & ~O_NONBLOCK);
  }
}

static const char *nl_error(int e)
{
  if (e == -ENOENT)
    return "the kernel has no nbd driver loaded: modprobe nbd, or where there is no such "
           "module, 'shunt fuse URI DIR' gives the export as a file (losetup it for a block device)";
  if (e == -EPERM)
    return "configuring nbd devices needs CAP_SYS_ADMIN (run as root)";
  return strerror(-e);
}

/* Whether /dev/nbdINDEX is still connected (the monitor ends when it is not). */
static int device_connected(struct nbd_nl *nl, uint32_t index, bool *connected)
{
  struct nbd_nl_device d;
  size_t n;
  int e = nbd_nl_status(nl, (int32_t)index, &d, 1, &n);
  if (e)
    return e;
  *connected = n >= 1 && d.index == index && d.connected;
  return 0;
}

static void sleep_ms(unsigned ms)
{
  struct timespec ts = { .tv_sec = ms / 1000, .tv_nsec = (long)(ms % 1000) * 1000000 };
  while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
    ;
}

/* ---- shunt attach ---- */


static volatile sig_atomic_t monitor_stop;
static void on_stop(int sig) { (void)sig; monitor_stop = 1; }

/* After LINK_DEAD: negotiate as many connections as died and give them to the kernel,
 * retrying with backoff (100 ms doubling to 5 s) until it works or the device is gone. */
static int reconnect(struct attach_opts *o, struct nbd_nl *nl, uint32_t index,
                     uint64_t size, unsigned ndead)
{
  unsigned delay = 100;
  for (unsigned attempt = 1; !monitor_stop; attempt++) {
    bool connected;
    int e = device_connected(nl, index, &connected);
    if (e)
      return e;
    if (!connected)
      return -ENODEV;
    struct attach_session s = { 0 };
    char err[512] = "";
    /* The next URI first: the one in use just failed. */
    e = attach_negotiate(o, (o->cur + 1) % attach_nuris(o), ndead, &s, err, sizeof err);
    if (!e && s.size != size) {
      snprintf(err, sizeof err, "%s: export size changed from %" PRIu64 " to %" PRIu64
               ": not the same export", attach_uri(o, o->cur), size, s.size);
      close_fds(&s);
      e = -EIO;
    }
    if (!e) {
      make_blocking(&s);
      struct nbd_nl_config c = { .index = (int32_t)index, .fds = s.fds, .nfds = s.nfds,
                                 .backend = o->uri };
      e = nbd_nl_reconfigure(nl, &c);
      close_fds(&s);
      if (!e) {
        log_msg(LOG_INFO, NULL, NULL, "/dev/nbd%u: reconnected to %s (attempt %u)", index,
                attach_uri(o, o->cur), attempt);
        return 0;
      }
      snprintf(err, sizeof err, "/dev/nbd%u: NBD_CMD_RECONFIGURE: %s", index, nl_error(e));
    }
    log_msg(LOG_WARN, NULL, NULL, "reconnect attempt %u failed: %s; retrying in %u ms",
            attempt, err, delay);
    sleep_ms(delay);
    delay = delay >= 2500 ? 5000 : delay * 2;
  }
  return -EINTR;
}

/* --persist: wait for LINK_DEAD on our device and repair it; end when it is detached. */
static int monitor(struct attach_opts *o, struct nbd_nl *nl, struct nbd_nl *ev,
                   uint32_t index, uint64_t size)
{
  signal(SIGTERM, on_stop);
  signal(SIGINT, on_stop);
  signal(SIGPIPE, SIG_IGN);
  while (!monitor_stop) {
    uint32_t dead;
    int e = nbd_nl_next_event(ev, 1000, &dead);
    if (e == -ETIMEDOUT || e == -EINTR) {
      bool connected;
      if ((e = device_connected(nl, index, &connected)))
        return e;
      if (!connected)
        return 0;
      continue;
    }
    unsigned ndead = 1;
    if (e == -ENOBUFS) {
      /* Events were lost: assume ours were among them; a RECONFIGURE with sockets
       * that replace nothing is harmless (the kernel ignores them). */
      ndead = o->conns;
    } else if (e) {
      return e;
    } else if (dead != index) {
      continue;
    }
    /* Every dead socket sends its own event: collect them for a moment, so one
     * negotiation replaces them all. */
    while (ndead < o->conns && nbd_nl_next_event(ev, 200, &dead) == 0)
      ndead += dead == index;
    log_msg(LOG_WARN, NULL, NULL, "/dev/nbd%u: %u connection(s) to %s died; reconnecting",
            index, ndead, attach_uri(o, o->cur));
    e = reconnect(o, nl, index, size, ndead);
    if (e == -ENODEV)
      return 0;
    if (e && e != -EINTR)
      return e;
  }
  return 0;
}

static void attach_usage(FILE *f)
{
  fprintf(f,
    "usage: shunt attach URI [/dev/nbdN] [options]\n"
    "Negotiate with the NBD server at URI and give the connection(s) to the kernel's nbd\n"
    "driver; prints the device (/dev/nbdN; the first free one unless given).\n\n"
    "  -C, --connections N   connections (multi-conn; the server must allow it) [1]\n"
    "      --timeout S       per-request timeout in seconds (0: none) [0; 10 with --persist]\n"
    "      --dead-timeout S  how long I/O waits for a reconnect when every connection\n"
    "                        died [0; 60 with --persist]\n"
    "  -b, --block-size B    logical block size, 512..4096 [from the server's preference]\n"
    "      --persist         stay in the foreground as a monitor: when connections die,\n"
    "                        reconnect with backoff and give the kernel the new sockets\n"
    "                        (NBD_CMD_RECONFIGURE); ends when the device is detached\n"
    "                        (SIGTERM ends the monitor and leaves the device attached)\n"
    "      --failover URI    another URI of the same export (another gateway of a\n"
    "                        shared disk; repeat for more): tried when URI does not\n"
    "                        answer, and with --persist, reconnects go to the next\n"
    "                        URI, round robin (the export's size must not change)\n"
    "  -q, --quiet           print only the device\n"
    "  -V, --version         print the version\n"
    "  -h, --help            this text\n"
    "The nbd kernel module must be loaded (modprobe nbd); configuring it needs\n"
    "root.  Without the module, 'shunt fuse' serves the export as a file.\n");
}

int cmd_attach(int argc, char **argv)
{
  static const struct option lopts[] = {
    { "connections", required_argument, NULL, 'C' }, { "timeout", required_argument, NULL, 't' },
    { "dead-timeout", required_argument, NULL, 'd' }, { "block-size", required_argument, NULL, 'b' },
    { "persist", no_argument, NULL, 'p' }, { "quiet", no_argument, NULL, 'q' },
    { "failover", required_argument, NULL, 'F' },
    { "version", no_argument, NULL, 'V' },
    { "help", no_argument, NULL, 'h' }, { NULL, 0, NULL, 0 },
  };
  struct attach_opts o = { .index = -1, .conns = 1 };
  bool have_timeout = false, have_dead = false;
  uint64_t v;
  int opt;
  optind = 1;
  /* --timeout, --dead-timeout and --persist have no letter: -t, -d and -p
   * mean threads, debug and port across the subcommands (docs/cli.md). */
  while ((opt = cli_getopt(argc, argv, "C:b:qVh", lopts)) != -1) {
    switch (opt) {
    case 'C':
      if (parse_u64(optarg, NBD_NL_MAX_SOCKETS, &v) || v == 0) {
        return cli_usage_error("attach", "--connections wants 1..%d, not '%s'", NBD_NL_MAX_SOCKETS, optarg);
      }
      o.conns = (unsigned)v;
      break;
    case 't':
    case 'd':
      if (parse_u64(optarg, 365ull * 86400, &v)) {
        return cli_usage_error("attach", "--%s: bad number of seconds '%s'", cli_option_name(lopts, opt), optarg);
      }
      if (opt == 't')
        o.timeout_s = v, have_timeout = true;
      else
        o.dead_timeout_s = v, have_dead = true;
      break;
    case 'b':
      if (parse_u64(optarg, 4096, &v) || v < 512 || (v & (v - 1))) {
        return cli_usage_error("attach", "--block-size wants a power of two 512..4096, not '%s'", optarg);
      }
      o.block_size = v;
      break;
    case 'p': o.persist = true; break;
    case 'F':
      if (tools_failover_add(&o.failover, "attach", "--failover", optarg))
        return 2;
      break;
    case 'q': o.quiet = true; break;
    case 'V': return cli_version();
    case 'h': attach_usage(stdout); return 0;
    default: return 2;
    }
  }
  if (optind >= argc || argc - optind > 2)
    return cli_usage_error("attach", "expected URI [/dev/nbdN]");
  o.uri = argv[optind];
  if (argc - optind == 2 && parse_device(argv[optind + 1], &o.index)) {
    return cli_usage_error("attach", "'%s' is not an nbd device (/dev/nbdN)", argv[optind + 1]);
  }
  if (strlen(o.uri) >= NBD_NL_MAX_BACKEND) {
    log_msg(LOG_ERROR, NULL, NULL, "URI too long");
    return 2;
  }
  /* Without a request timeout, a request in flight on a dead connection waits forever
   * (the kernel only requeues it when it times out), so persist implies one. */
  if (o.persist && !have_timeout)
    o.timeout_s = 10;
  if (o.persist && !have_dead)
    o.dead_timeout_s = 60;

  struct nbd_nl nl, ev = { .fd = -1 };
  int e = nbd_nl_open(&nl);
  if (e) {
    log_msg(LOG_ERROR, NULL, NULL, "%s", nl_error(e));
    return 1;
  }
  /* Subscribe before connecting, so no LINK_DEAD can slip between the two. */
  if (o.persist && ((e = nbd_nl_open(&ev)) || (e = nbd_nl_subscribe(&ev)))) {
    log_msg(LOG_ERROR, NULL, NULL, "cannot watch nbd events: %s", nl_error(e));
    nbd_nl_close(&nl);
    return 1;
  }

  struct attach_session s = { 0 };
  char err[512] = "";
  e = attach_negotiate(&o, 0, o.conns, &s, err, sizeof err);
  if (e) {
    log_msg(LOG_ERROR, NULL, NULL, "%s", err[0] ? err : strerror(-e));
    goto fail;
  }
  uint64_t bs = o.block_size;
  if (!bs && pick_block_size(&s, &bs)) {
    log_msg(LOG_ERROR, NULL, NULL, "%s: the server's minimum block size %" PRIu32
            " exceeds what the kernel supports (4096)", attach_uri(&o, o.cur), s.min_block);
    e = -EINVAL;
    goto fail;
  }
  if (s.nfds < o.conns && !o.quiet)
    log_msg(LOG_ERROR, NULL, NULL, "%s: %u of %u connections (the server does not allow "
            "multi-conn)", attach_uri(&o, o.cur), s.nfds, o.conns);
  make_blocking(&s);
  struct nbd_nl_config c = {
    .index = o.index, .size_bytes = s.size, .block_size = bs, .server_flags = s.eflags,
    .timeout_s = o.timeout_s, .dead_conn_timeout_s = o.dead_timeout_s,
    .fds = s.fds, .nfds = s.nfds, .backend = o.uri,
  };
  uint32_t index;
  e = nbd_nl_connect(&nl, &c, &index);
  close_fds(&s); /* the kernel holds its own references */
  if (e) {
    if (e == -EBUSY)
      log_msg(LOG_ERROR, NULL, NULL, "/dev/nbd%d is in use", o.index);
    else
      log_msg(LOG_ERROR, NULL, NULL, "NBD_CMD_CONNECT: %s", nl_error(e));
    goto fail;
  }
  printf("/dev/nbd%u\n", index);
  fflush(stdout);
  if (!o.quiet)
    log_msg(LOG_INFO, NULL, NULL, "/dev/nbd%u: %s, %" PRIu64 " bytes, %u connection(s), "
            "block size %" PRIu64 "%s", index, attach_uri(&o, o.cur), s.size, (unsigned)c.nfds, bs,
            (s.eflags & NBD_FLAG_READ_ONLY) ? ", read-only" : "");
  if (o.persist) {
    e = monitor(&o, &nl, &ev, index, s.size);
    if (e)
      log_msg(LOG_ERROR, NULL, NULL, "/dev/nbd%u: monitor: %s", index, nl_error(e));
  }
  nbd_nl_close(&ev);
  nbd_nl_close(&nl);
  return e ? 1 : 0;

fail:
  close_fds(&s);
  nbd_nl_close(&ev);
  nbd_nl_close(&nl);
  return 1;
}

/* ---- shunt detach ---- */

int cmd_detach(int argc, char **argv)
{
  int32_t index;
  static const struct option lopts[] = {
    { "version", no_argument, NULL, 'V' }, { "help", no_argument, NULL, 'h' }, { NULL, 0, NULL, 0 },
  };
  int opt;
  optind = 1;
  while ((opt = cli_getopt(argc, argv, "Vh", lopts)) != -1) {
    switch (opt) {
    case 'V': return cli_version();
    case 'h':
      printf("usage: shunt detach /dev/nbdN\nDisconnect an nbd device (a --persist monitor "
             "then ends).\n  -V, --version   print the version\n  -h, --help      this text\n");
      return 0;
    default: return 2;
    }
  }
  if (argc - optind != 1 || parse_device(argv[optind], &index))
    return cli_usage_error("detach", "expected one device, /dev/nbdN");
  struct nbd_nl nl;
  int e = nbd_nl_open(&nl);
  if (e) {
    log_msg(LOG_ERROR, NULL, NULL, "%s", nl_error(e));
    return 1;
  }
  bool connected = false;
  e = device_connected(&nl, (uint32_t)index, &connected);
  if (!e && !connected) {
    log_msg(LOG_ERROR, NULL, NULL, "/dev/nbd%d is not attached", index);
    nbd_nl_close(&nl);
    return 1;
  }
  if (!e)
    e = nbd_nl_disconnect(&nl, (uint32_t)index);
  /* The kernel tears the device down asynchronously; wait until it says so. */
  for (int i = 0; !e && connected && i < 100; i++) {
    e = device_connected(&nl, (uint32_t)index, &connected);
    if (!e && connected)
      sleep_ms(50);
  }
  nbd_nl_close(&nl);
  if (e) {
    log_msg(LOG_ERROR, NULL, NULL, "/dev/nbd%d: %s", index, nl_error(e));
    return 1;
  }
  if (connected) {
    log_msg(LOG_ERROR, NULL, NULL, "/dev/nbd%d: still connected after 5 s", index);
    return 1;
  }
  return 0;
}

/* ---- shunt list ---- */

/* Read a one-line sysfs attribute of nbdN into buf (empty if absent). */
static void sysfs_line(uint32_t index, const char *attr, char *buf, size_t len)
{
  char path[64];
  snprintf(path, sizeof path, "/sys/block/nbd%u/%s", index, attr);
  buf[0] = 0;
  FILE *f = fopen(path, "r");
  if (!f)
    return;
  if (fgets(buf, (int)len, f))
    buf[strcspn(buf, "\n")] = 0;
  fclose(f);
}

int cmd_list(int argc, char **argv)
{
  static const struct option lopts[] = {
    { "all", no_argument, NULL, 'a' }, { "version", no_argument, NULL, 'V' },
    { "help", no_argument, NULL, 'h' }, { NULL, 0, NULL, 0 },
  };
  bool all = false;
  int opt;
  optind = 1;
  while ((opt = cli_getopt(argc, argv, "aVh", lopts)) != -1) {
    switch (opt) {
    case 'a': all = true; break;
    case 'V': return cli_version();
    case 'h':
      printf("usage: shunt list [--all]\nList attached nbd devices: device, size in bytes, "
             "server (--all: free devices too).\n  -V, --version   print the version\n"
             "  -h, --help      this text\n");
      return 0;
    default: return 2;
    }
  }
  if (optind != argc)
    return cli_usage_error("list", "unexpected argument '%s'", argv[optind]);
  struct nbd_nl nl;
  int e = nbd_nl_open(&nl);
  if (e) {
    log_msg(LOG_ERROR, NULL, NULL, "%s", nl_error(e));
    return 1;
  }
  size_t max = 256, n = 0;
  struct nbd_nl_device *devs = NULL;
  for (;;) {
    free(devs);
    devs = calloc(max, sizeof *devs);
    if (!devs) {
      e = -ENOMEM;
      break;
    }
    e = nbd_nl_status(&nl, -1, devs, max, &n);
    if (e || n <= max || max >= 65536)
      break;
    max = n;
  }
  nbd_nl_close(&nl);
  if (e) {
    free(devs);
    log_msg(LOG_ERROR, NULL, NULL, "%s", nl_error(e));
    return 1;
  }
  for (size_t i = 0; i < n && i < max; i++) {
    if (!devs[i].connected && !all)
      continue;
    char sectors[32], backend[NBD_NL_MAX_BACKEND];
    sysfs_line(devs[i].index, "size", sectors, sizeof sectors);
    sysfs_line(devs[i].index, "backend", backend, sizeof backend);
    unsigned long long bytes = strtoull(sectors, NULL, 10) * 512ull;
    if (devs[i].connected)
      printf("/dev/nbd%u\t%llu\t%s\n", devs[i].index, bytes, backend[0] ? backend : "-");
    else
      printf("/dev/nbd%u\tfree\n", devs[i].index);
  }
  free(devs);
  return 0;
}
