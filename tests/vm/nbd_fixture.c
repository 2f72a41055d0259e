/* nbd_fixture.c: a guest-side test fixture for tools/nbd-netlink.c. It serves a
 * memory disk over socketpairs whose other ends it hands to the kernel nbd driver with
 * NBD_CMD_CONNECT (no handshake: the kernel only speaks the transmission phase), and
 * reconnects through LINK_DEAD + NBD_CMD_RECONFIGURE when told to drop its links.
 *
 *   nbd-fixture status                   one line per device: "nbdN connected|free"
 *   nbd-fixture disconnect N
 *   nbd-fixture connect-fail SIZE_MIB [-i N] [-c CONNS] [-F FLAGS]   expect a refusal;
 *                                        prints the errno name
 *   nbd-fixture serve SIZE_MIB [-i N] [-c CONNS] [-F FLAGS] [-t S] [-d S] [-b BS]
 *       prints "device nbdN", serves until the kernel disconnects, then prints counters.
 *       SIGUSR1 drops every link (shutdown of our ends); the kernel reports LINK_DEAD,
 *       the fixture answers with RECONFIGURE and new sockets, and prints "reconfigured".
 */
#include <endian.h>
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "tools/nbd-netlink.h"
#include "proto/nbd-protocol.h"

static uint8_t *disk;
static uint64_t disk_size;
static atomic_ulong n_reads, n_writes, n_fua, n_flushes, n_trims;
static atomic_int links_alive;
static atomic_int links_ended_by_kernel;
static volatile sig_atomic_t drop_requested;

struct link {
  int fd;
  pthread_t thread;
};

static int read_full(int fd, void *buf, size_t n)
{
  uint8_t *p = buf;
  while (n) {
    ssize_t r = read(fd, p, n);
    if (r < 0 && errno == EINTR)
      continue;
    if (r <= 0)
      return -1;
    p += r;
    n -= (size_t)r;
  }
  return 0;
}

static int write_full(int fd, const void *buf, size_t n)
{
  const uint8_t *p = buf;
  while (n) {
    ssize_t r = write(fd, p, n);
    if (r < 0 && errno == EINTR)
      continue;
    if (r <= 0)
      return -1;
    p += r;
    n -= (size_t)r;
  }
  return 0;
}

/* Serve one link until NBD_CMD_DISC, EOF or a protocol error. */
static void *serve_link(void *arg)
{
  struct link *l = arg;
  uint8_t *scratch = malloc(NBD_DEFAULT_MAX_PAYLOAD);
  bool by_kernel = false;
  for (;;) {
    struct nbd_request rq;
    if (read_full(l->fd, &rq, sizeof rq))
      break;
    uint16_t type = be16toh(rq.type), flags = be16toh(rq.flags);
    uint64_t off = be64toh(rq.offset);
    uint32_t len = be32toh(rq.count);
    if (be32toh(rq.magic) != NBD_REQUEST_MAGIC) {
      fprintf(stderr, "fixture: bad request magic\n");
      break;
    }
    if (type == NBD_CMD_DISC) {
      by_kernel = true;
      break;
    }
    struct nbd_simple_reply rp = { .magic = htobe32(NBD_SIMPLE_REPLY_MAGIC), .cookie = rq.cookie };
    bool in_range = len <= NBD_DEFAULT_MAX_PAYLOAD && off <= disk_size && len <= disk_size - off;
    const void *data = NULL;
    if (type == NBD_CMD_WRITE) {
      if (len > NBD_DEFAULT_MAX_PAYLOAD || read_full(l->fd, scratch, len))
        break;
      if (in_range) {
        memcpy(disk + off, scratch, len);
        n_writes++;
        if (flags & NBD_CMD_FLAG_FUA)
          n_fua++;
      }
    } else if (type == NBD_CMD_READ) {
      if (in_range) {
        data = disk + off;
        n_reads++;
      }
    } else if (type == NBD_CMD_TRIM || type == NBD_CMD_WRITE_ZEROES) {
      if (in_range) {
        memset(disk + off, 0, len);
        n_trims++;
      }
    } else if (type == NBD_CMD_FLUSH) {
      n_flushes++;
      in_range = true;
    } else {
      rp.error = htobe32(NBD_EINVAL);
    }
    if (!in_range)
      rp.error = htobe32(NBD_EINVAL);
    if (write_full(l->fd, &rp, sizeof rp) || (data && !rp.error && write_full(l->fd, data, len)))
      break;
  }
  free(scratch);
  if (by_kernel || !drop_requested)
    links_ended_by_kernel++;
  links_alive--;
  return NULL;
}

/* Make n socketpairs: links[i] keeps our end, kfds[i] gets the kernel's. */
static int make_links(struct link *links, int *kfds, int n)
{
  for (int i = 0; i < n; i++) {
    int sv[2];
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0)
      return -errno;
    links[i].fd = sv[0];
    kfds[i] = sv[1];
  }
  return 0;
}

static void start_links(struct link *links, int *kfds, int n)
{
  for (int i = 0; i < n; i++) {
    close(kfds[i]); /* the kernel holds its own reference now */
    links_alive++;
    pthread_create(&links[i].thread, NULL, serve_link, &links[i]);
  }
}

static void on_usr1(int sig) { (void)sig; drop_requested = 1; }

static void die(const char *what, int e)
{
  fprintf(stderr, "fixture: %s: %s\n", what, strerror(-e));
  exit(1);
}

int main(int argc, char **argv)
{
  if (argc < 2)
    return 2;
  struct nbd_nl nl;
  int e = nbd_nl_open(&nl);
  if (e)
    die("open nbd netlink family", e);
  const char *cmd = argv[1];

  if (!strcmp(cmd, "status")) {
    struct nbd_nl_device devs[256];
    size_t n;
    if ((e = nbd_nl_status(&nl, -1, devs, 256, &n)))
      die("status", e);
    for (size_t i = 0; i < n && i < 256; i++)
      printf("nbd%u %s\n", devs[i].index, devs[i].connected ? "connected" : "free");
    return 0;
  }
  if (!strcmp(cmd, "disconnect") && argc == 3) {
    if ((e = nbd_nl_disconnect(&nl, (uint32_t)atoi(argv[2]))))
      die("disconnect", e);
    return 0;
  }
  if (strcmp(cmd, "serve") && strcmp(cmd, "connect-fail"))
    return 2;

  struct nbd_nl_config cfg = {
    .index = -1,
    .server_flags = NBD_FLAG_HAS_FLAGS | NBD_FLAG_SEND_FLUSH | NBD_FLAG_SEND_FUA |
                    NBD_FLAG_SEND_TRIM | NBD_FLAG_CAN_MULTI_CONN,
    .backend = "shunt-fixture",
  };
  int nconn = 1;
  disk_size = (argc > 2 ? strtoull(argv[2], NULL, 0) : 16) << 20;
  int opt;
  optind = 3;
  while ((opt = getopt(argc, argv, "i:c:F:t:d:b:")) != -1) {
    switch (opt) {
    case 'i': cfg.index = atoi(optarg); break;
    case 'c': nconn = atoi(optarg); break;
    case 'F': cfg.server_flags = strtoull(optarg, NULL, 0); break;
    case 't': cfg.timeout_s = strtoull(optarg, NULL, 0); break;
    case 'd': cfg.dead_conn_timeout_s = strtoull(optarg, NULL, 0); break;
    case 'b': cfg.block_size = strtoull(optarg, NULL, 0); break;
    default: return 2;
    }
  }
  if (nconn < 1 || nconn > 16)
    return 2;
  cfg.size_bytes = disk_size;
  disk = calloc(1, disk_size);
  struct link links[16];
  int kfds[16];
  if (!disk || (e = make_links(links, kfds, nconn)))
    die("setup", e ? e : -ENOMEM);
  cfg.fds = kfds;
  cfg.nfds = (size_t)nconn;

  /* Subscribe before connecting, so no LINK_DEAD can be missed. */
  struct nbd_nl ev;
  if ((e = nbd_nl_open(&ev)) || (e = nbd_nl_subscribe(&ev)))
    die("subscribe to nbd events", e);

  uint32_t index;
  e = nbd_nl_connect(&nl, &cfg, &index);
  if (!strcmp(cmd, "connect-fail")) {
    printf("%s\n", e ? strerrorname_np(-e) : "connected");
    return e ? 0 : 1;
  }
  if (e)
    die("connect", e);
  printf("device nbd%u\n", index);
  fflush(stdout);
  signal(SIGUSR1, on_usr1);
  signal(SIGPIPE, SIG_IGN); /* a dropped link is an error return, not a death */
  start_links(links, kfds, nconn);

  while (links_ended_by_kernel < nconn) {
    if (drop_requested == 1) {
      drop_requested = 2;
      for (int i = 0; i < nconn; i++)
        shutdown(links[i].fd, SHUT_RDWR);
    }
    uint32_t dead;
    e = nbd_nl_next_event(&ev, 100, &dead);
    if (e == -ETIMEDOUT)
      continue;
    if (e)
      die("wait for events", e);
    if (dead != index)
      continue;
    printf("link dead nbd%u\n", dead);
    fflush(stdout);
    if (drop_requested != 2)
      continue; /* not ours to repair */
    while (links_alive)
      usleep(10000);
    for (int i = 0; i < nconn; i++) {
      pthread_join(links[i].thread, NULL);
      close(links[i].fd);
    }
    if ((e = make_links(links, kfds, nconn)))
      die("new sockets", e);
    struct nbd_nl_config re = { .index = (int32_t)index, .fds = kfds, .nfds = (size_t)nconn,
                                .backend = cfg.backend };
    if ((e = nbd_nl_reconfigure(&nl, &re)))
      die("reconfigure", e);
    drop_requested = 0;
    start_links(links, kfds, nconn);
    printf("reconfigured nbd%u\n", index);
    fflush(stdout);
  }
  for (int i = 0; i < nconn; i++)
    pthread_join(links[i].thread, NULL);
  printf("done reads=%lu writes=%lu fua=%lu flushes=%lu trims=%lu\n", (unsigned long)n_reads,
         (unsigned long)n_writes, (unsigned long)n_fua, (unsigned long)n_flushes,
         (unsigned long)n_trims);
  return 0;
}
