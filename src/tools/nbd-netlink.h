/* nbd-netlink.h: configure the Linux kernel nbd driver over generic netlink
 * (family "nbd", <linux/nbd-netlink.h>): connect, disconnect, reconfigure, status,
 * and the LINK_DEAD notifications a reconnecting monitor waits for.
 *
 * A small netlink layer of our own rather than libnl-genl-3: the driver needs five
 * commands made of flat u32/u64 attributes and one nested list of socket fds, which
 * fits in a few hundred lines. Building the messages by hand keeps encoding and parsing
 * pure functions (no socket, no allocation driven by what the kernel sends) that the
 * unit tests check byte by byte, every length the kernel sends is checked here rather
 * than trusted to a library's iterator, and the `shunt` binary that VM guests run needs
 * no extra shared libraries.
 *
 * All functions return 0 or a negative errno. */
#ifndef SHUNT_TOOLS_NBD_NETLINK_H
#define SHUNT_TOOLS_NBD_NETLINK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Client flags of NBD_ATTR_CLIENT_FLAGS (values of <linux/nbd.h>, which cannot be
 * included next to proto/nbd-protocol.h: both define the NBD_FLAG_* names). */
#define NBD_NL_CFLAG_DESTROY_ON_DISCONNECT (1u << 0) /* free the device on disconnect */
#define NBD_NL_CFLAG_DISCONNECT_ON_CLOSE   (1u << 1) /* disconnect when the last opener closes */

/* The most sockets one CONNECT or RECONFIGURE carries (the kernel has no fixed limit;
 * this bounds the message we build). */
#define NBD_NL_MAX_SOCKETS 64
/* The longest backend identifier we send, terminating NUL included. */
#define NBD_NL_MAX_BACKEND 1024

/* What NBD_CMD_CONNECT or NBD_CMD_RECONFIGURE tells the kernel. A zero field is not
 * sent (the kernel keeps its default or current value), except where noted. */
struct nbd_nl_config {
  int32_t index;                /* /dev/nbdINDEX, or -1: any free device (CONNECT only) */
  uint64_t size_bytes;          /* export size (CONNECT: required) */
  uint64_t block_size;          /* block size: a power of two >= 512 (the kernel accepts up
                                   to its page size); 0: the kernel default, 1024 */
  uint64_t server_flags;        /* the export's NBD transmission flags (NBD_FLAG_*) */
  uint64_t client_flags;        /* NBD_NL_CFLAG_* */
  bool send_client_flags;       /* RECONFIGURE: send client_flags even when zero */
  uint64_t timeout_s;           /* per-request timeout, seconds */
  uint64_t dead_conn_timeout_s; /* how long I/O waits for RECONFIGURE when all links died */
  const int *fds;               /* connected sockets, negotiation done */
  size_t nfds;                  /* CONNECT: 1..NBD_NL_MAX_SOCKETS; RECONFIGURE: 0.. */
  const char *backend;          /* NBD_ATTR_BACKEND_IDENTIFIER (e.g. the URI) or NULL */
};

/* One device of a STATUS reply. */
struct nbd_nl_device {
  uint32_t index;
  bool connected;
};

/* What nbd_nl_parse() found in a buffer of netlink messages. */
struct nbd_nl_reply {
  bool acked;               /* the NLMSG_ERROR (or NLMSG_DONE) answering our seq arrived */
  int error;                /* its error: 0 or a negative errno */
  bool has_index;           /* a CONNECT reply or a LINK_DEAD event named a device */
  uint32_t index;
  bool link_dead;           /* an NBD_CMD_LINK_DEAD event was among the messages */
  uint16_t family_id;       /* from a CTRL_CMD_GETFAMILY reply, else 0 */
  uint32_t mcast_group;     /* id of "nbd_mc_group", else 0 */
  struct nbd_nl_device *devs; /* caller's array for STATUS replies, or NULL */
  size_t max_devs;          /* its capacity */
  size_t ndevs;             /* devices in the reply (may exceed max_devs: not all stored) */
};

/* ---- Pure message encoding and parsing (no I/O) ---- */

/* Encode CTRL_CMD_GETFAMILY for "nbd" into buf; *len is the message length. */
int nbd_nl_encode_getfamily(void *buf, size_t cap, uint32_t seq, size_t *len);

/* Encode NBD_CMD_CONNECT. -EINVAL if the config is incomplete (no size, no sockets,
 * too many sockets, bad block size, negative fd), -ENOBUFS if cap is too small. */
int nbd_nl_encode_connect(void *buf, size_t cap, uint16_t family, uint32_t seq,
                          const struct nbd_nl_config *cfg, size_t *len);

/* Encode NBD_CMD_RECONFIGURE for cfg->index (required): new sockets replacing dead
 * ones, and the timeouts and client flags when set. */
int nbd_nl_encode_reconfigure(void *buf, size_t cap, uint16_t family, uint32_t seq,
                              const struct nbd_nl_config *cfg, size_t *len);

/* Encode NBD_CMD_DISCONNECT (index >= 0) or NBD_CMD_STATUS (index -1: all devices). */
int nbd_nl_encode_disconnect(void *buf, size_t cap, uint16_t family, uint32_t seq,
                             uint32_t index, size_t *len);
int nbd_nl_encode_status(void *buf, size_t cap, uint16_t family, uint32_t seq,
                         int32_t index, size_t *len);

/* Parse every message in buf[0..len) (one recv's worth), accumulating into *r: the ack
 * or error for seq, a family reply, a CONNECT reply's index, a STATUS device list,
 * LINK_DEAD events (for family, any seq). Messages for other seqs are skipped.
 * -EBADMSG if a length or attribute is malformed. */
int nbd_nl_parse(const void *buf, size_t len, uint32_t seq, uint16_t family,
                 struct nbd_nl_reply *r);

/* ---- The kernel, through a netlink socket ---- */

/* A generic-netlink socket with the nbd family resolved. */
struct nbd_nl {
  int fd;
  uint16_t family;
  uint32_t mcast_group;
  uint32_t seq;
};

/* Open a socket and resolve the "nbd" family. -ENOENT: the nbd module is not loaded
 * (or the kernel has no nbd driver). */
int nbd_nl_open(struct nbd_nl *nl);

/* Close the socket (safe on a handle whose open failed or that was closed). */
void nbd_nl_close(struct nbd_nl *nl);

/* Hand the sockets of cfg to the kernel: /dev/nbdN appears with cfg's size and flags.
 * *index receives N. The caller may close its copies of the fds afterwards. -EBUSY:
 * that device is in use; -EINVAL: the kernel refused the parameters (for instance more
 * than one socket without NBD_FLAG_CAN_MULTI_CONN). Needs CAP_SYS_ADMIN (-EPERM). */
int nbd_nl_connect(struct nbd_nl *nl, const struct nbd_nl_config *cfg, uint32_t *index);

/* Replace dead sockets of device cfg->index with cfg->fds, and update timeouts and
 * client flags that are set. Sockets beyond the number of dead ones are ignored. If the
 * CONNECT carried a backend identifier, cfg->backend must repeat it: the kernel refuses
 * (-EINVAL) a reconfigure without it or with another one. */
int nbd_nl_reconfigure(struct nbd_nl *nl, const struct nbd_nl_config *cfg);

/* Disconnect /dev/nbdINDEX (in-flight requests fail, the sockets are shut down). */
int nbd_nl_disconnect(struct nbd_nl *nl, uint32_t index);

/* List devices (index -1: all, else just that one) into devs[0..max); *n receives the
 * number the kernel reported, which may exceed max. */
int nbd_nl_status(struct nbd_nl *nl, int32_t index, struct nbd_nl_device *devs,
                  size_t max, size_t *n);

/* Join the driver's multicast group on this handle, so nbd_nl_next_event() sees
 * LINK_DEAD. Use a handle of its own for events: replies to requests are not mixed in. */
int nbd_nl_subscribe(struct nbd_nl *nl);

/* Wait up to timeout_ms (-1: forever) for a LINK_DEAD event; *index receives the device
 * whose connection died. -ETIMEDOUT when none came. */
int nbd_nl_next_event(struct nbd_nl *nl, int timeout_ms, uint32_t *index);

#endif
