/* vhost_user.h: the vhost-user wire format, in one place (the back-end's and
 * the front-end's side alike).
 *
 * Layouts and numbers from the vhost-user protocol specification
 * (docs/interop/vhost-user.rst in qemu).  All fields are in the machine's
 * native byte order.  A message is a 12-byte header followed by `size` bytes
 * of payload, with no padding in between: receive and send it as two pieces
 * (struct vu_msg_hdr, then the first hdr.size bytes of union vu_payload), so
 * that every payload field is naturally aligned in memory.  File descriptors
 * travel in SCM_RIGHTS ancillary data, at most VU_MAX_FDS per message.
 *
 * The virtio layouts and bits (rings, virtio-blk requests and config space,
 * VIRTIO_F_*, VIRTIO_RING_F_*, VIRTIO_BLK_F_*) are Linux's uapi headers,
 * included here; this header defines only what the vhost-user protocol adds. */
#ifndef SHUNT_VIRTIO_VHOST_USER_H
#define SHUNT_VIRTIO_VHOST_USER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <linux/vhost_types.h>
#include <linux/virtio_blk.h>
#include <linux/virtio_config.h>
#include <linux/virtio_ring.h>

/* ---- Header ("Header") ---- */

/* flags: the lower 2 bits are the protocol version, always 1. */
#define VU_VERSION          0x1u
#define VU_VERSION_MASK     0x3u
/* flags: set on every reply from the back-end. */
#define VU_FLAG_REPLY       0x4u
/* flags: the sender wants an acknowledgement (REPLY_ACK protocol feature): the
 * back-end answers with a u64, 0 for success, non-zero for failure, unless
 * the request already has a reply of its own. */
#define VU_FLAG_NEED_REPLY  0x8u

struct vu_msg_hdr {
  uint32_t request;   /* enum vu_request (or vu_backend_request on the back-end channel) */
  uint32_t flags;     /* VU_VERSION | VU_FLAG_* */
  uint32_t size;      /* payload bytes that follow the header */
};
#define VU_HDR_SIZE 12u

/* ---- Request codes, front-end to back-end ("Front-end message types") ---- */
enum vu_request {
  VU_GET_FEATURES = 1,           /* -> u64 */
  VU_SET_FEATURES = 2,           /* u64 */
  VU_SET_OWNER = 3,
  VU_RESET_OWNER = 4,            /* deprecated */
  VU_SET_MEM_TABLE = 5,          /* struct vu_memory + one fd per region */
  VU_SET_LOG_BASE = 6,           /* struct vu_log + fd (LOG_SHMFD) */
  VU_SET_LOG_FD = 7,             /* fd */
  VU_SET_VRING_NUM = 8,          /* struct vhost_vring_state */
  VU_SET_VRING_ADDR = 9,         /* struct vhost_vring_addr */
  VU_SET_VRING_BASE = 10,        /* struct vhost_vring_state */
  VU_GET_VRING_BASE = 11,        /* struct vhost_vring_state -> struct vhost_vring_state */
  VU_SET_VRING_KICK = 12,        /* u64 (VU_VRING_IDX_MASK | VU_VRING_NOFD) + fd unless NOFD */
  VU_SET_VRING_CALL = 13,        /* likewise */
  VU_SET_VRING_ERR = 14,         /* likewise */
  VU_GET_PROTOCOL_FEATURES = 15, /* -> u64 */
  VU_SET_PROTOCOL_FEATURES = 16, /* u64 */
  VU_GET_QUEUE_NUM = 17,         /* -> u64 */
  VU_SET_VRING_ENABLE = 18,      /* struct vhost_vring_state (num 0 or 1) */
  VU_SEND_RARP = 19,             /* u64 (net only) */
  VU_NET_SET_MTU = 20,           /* u64 (net only) */
  VU_SET_BACKEND_REQ_FD = 21,    /* fd: the back-end's request channel (spec: SET_SLAVE_REQ_FD) */
  VU_IOTLB_MSG = 22,             /* struct vhost_iotlb_msg -> u64 */
  VU_SET_VRING_ENDIAN = 23,      /* struct vhost_vring_state */
  VU_GET_CONFIG = 24,            /* struct vu_config -> struct vu_config (same size) */
  VU_SET_CONFIG = 25,            /* struct vu_config */
  VU_CREATE_CRYPTO_SESSION = 26, /* crypto only */
  VU_CLOSE_CRYPTO_SESSION = 27,  /* crypto only */
  VU_POSTCOPY_ADVISE = 28,       /* -> userfault fd */
  VU_POSTCOPY_LISTEN = 29,
  VU_POSTCOPY_END = 30,          /* -> u64 */
  VU_GET_INFLIGHT_FD = 31,       /* struct vu_inflight -> struct vu_inflight + fd */
  VU_SET_INFLIGHT_FD = 32,       /* struct vu_inflight + fd */
  VU_GPU_SET_SOCKET = 33,        /* gpu only */
  VU_RESET_DEVICE = 34,
  VU_VRING_KICK = 35,            /* struct vhost_vring_state (in-band notifications) */
  VU_GET_MAX_MEM_SLOTS = 36,     /* -> u64 */
  VU_ADD_MEM_REG = 37,           /* struct vu_mem_reg + fd */
  VU_REM_MEM_REG = 38,           /* struct vu_mem_reg (a stray fd is tolerated and closed) */
  VU_SET_STATUS = 39,            /* u64 */
  VU_GET_STATUS = 40,            /* -> u64 */
  VU_GET_SHARED_OBJECT = 41,
  VU_SET_DEVICE_STATE_FD = 42,
  VU_CHECK_DEVICE_STATE = 43,
  VU_REQUEST_MAX = 44,           /* one past the highest code known here */
};

/* Request codes, back-end to front-end, on the channel of SET_BACKEND_REQ_FD
 * ("Back-end message types"). */
enum vu_backend_request {
  VU_BACKEND_IOTLB_MSG = 1,
  VU_BACKEND_CONFIG_CHANGE_MSG = 2,
  VU_BACKEND_VRING_HOST_NOTIFIER_MSG = 3,
  VU_BACKEND_VRING_CALL = 4,
  VU_BACKEND_VRING_ERR = 5,
};

/* ---- Feature bits (64-bit masks: use VU_BIT(n)) ---- */
#define VU_BIT(n) (UINT64_C(1) << (n))

/* Device feature bit 30 (unused by virtio) says the back-end speaks
 * GET/SET_PROTOCOL_FEATURES.  Once negotiated, rings start disabled and
 * SET_VRING_ENABLE enables them ("Ring states"). */
#define VU_F_PROTOCOL_FEATURES 30
/* Also relevant from the uapi headers: VIRTIO_F_VERSION_1 (32),
 * VIRTIO_RING_F_INDIRECT_DESC (28), VIRTIO_RING_F_EVENT_IDX (29),
 * VIRTIO_F_RING_PACKED (34), VHOST_F_LOG_ALL (26), and VIRTIO_BLK_F_SEG_MAX (2),
 * _RO (5), _BLK_SIZE (6), _FLUSH (9), _CONFIG_WCE (11), _MQ (12), _DISCARD
 * (13), _WRITE_ZEROES (14). */

/* Protocol feature bits ("Protocol features"). */
#define VU_PROTOCOL_F_MQ                    0
#define VU_PROTOCOL_F_LOG_SHMFD             1
#define VU_PROTOCOL_F_RARP                  2
#define VU_PROTOCOL_F_REPLY_ACK             3
#define VU_PROTOCOL_F_MTU                   4
#define VU_PROTOCOL_F_BACKEND_REQ           5   /* spec: SLAVE_REQ */
#define VU_PROTOCOL_F_CROSS_ENDIAN          6
#define VU_PROTOCOL_F_CRYPTO_SESSION        7
#define VU_PROTOCOL_F_PAGEFAULT             8
#define VU_PROTOCOL_F_CONFIG                9
#define VU_PROTOCOL_F_BACKEND_SEND_FD       10  /* spec: SLAVE_SEND_FD */
#define VU_PROTOCOL_F_HOST_NOTIFIER         11
#define VU_PROTOCOL_F_INFLIGHT_SHMFD        12
#define VU_PROTOCOL_F_RESET_DEVICE          13
#define VU_PROTOCOL_F_INBAND_NOTIFICATIONS  14
#define VU_PROTOCOL_F_CONFIGURE_MEM_SLOTS   15
#define VU_PROTOCOL_F_STATUS                16
#define VU_PROTOCOL_F_XEN_MMAP              17
#define VU_PROTOCOL_F_SHARED_OBJECT         18
#define VU_PROTOCOL_F_DEVICE_STATE          19

/* ---- Payloads ---- */

/* SET_VRING_KICK/CALL/ERR's u64: bits 0-7 the ring index, bit 8 "no fd in the
 * ancillary data" (poll instead); every other bit must be 0. */
#define VU_VRING_IDX_MASK   UINT64_C(0xff)
#define VU_VRING_NOFD       (UINT64_C(1) << 8)

/* One region of the guest's memory ("Memory regions description"): the fd
 * sent with it, mapped at mmap_offset, holds guest physical addresses
 * [guest_addr, guest_addr + size), which the front-end's process sees at
 * [user_addr, user_addr + size) (ring addresses are user addresses). */
struct vu_mem_region {
  uint64_t guest_addr;
  uint64_t size;
  uint64_t user_addr;
  uint64_t mmap_offset;
};

/* SET_MEM_TABLE: at most VU_MEMORY_MAX_NREGIONS regions; the message carries
 * offsetof(struct vu_memory, regions) + nregions * sizeof(struct vu_mem_region)
 * bytes and nregions fds, in the regions' order. */
#define VU_MEMORY_MAX_NREGIONS 8
struct vu_memory {
  uint32_t nregions;
  uint32_t padding;
  struct vu_mem_region regions[VU_MEMORY_MAX_NREGIONS];
};

/* ADD_MEM_REG and REM_MEM_REG ("Single memory region description"). */
struct vu_mem_reg {
  uint64_t padding;
  struct vu_mem_region region;
};

/* The largest number of memory slots this implementation offers in answer to
 * GET_MAX_MEM_SLOTS (the front-end caps it further). */
#define VU_MEM_SLOTS_MAX 32

/* SET_LOG_BASE ("Log description"). */
struct vu_log {
  uint64_t mmap_size;
  uint64_t mmap_offset;
};

/* GET_CONFIG and SET_CONFIG ("Virtio device config space"): the message
 * carries VU_CONFIG_HDR_SIZE + size bytes; offset + size <= VU_CONFIG_SPACE_MAX.
 * GET_CONFIG's reply has the request's size; a reply of size 0 means failure. */
#define VU_CONFIG_SPACE_MAX 256
#define VU_CONFIG_HDR_SIZE 12u
#define VU_CONFIG_F_WRITABLE  0   /* flags: guest writes to writable fields */
#define VU_CONFIG_F_MIGRATION 1   /* flags: live migration */
struct vu_config {
  uint32_t offset;
  uint32_t size;
  uint32_t flags;
  uint8_t region[VU_CONFIG_SPACE_MAX];
};

/* GET_INFLIGHT_FD and SET_INFLIGHT_FD ("Inflight description"): the area
 * that tracks in-flight requests across a back-end restart, layout in
 * virtio/inflight.h.  24 bytes on the wire (the C layout, padding included). */
struct vu_inflight {
  uint64_t mmap_size;
  uint64_t mmap_offset;
  uint16_t num_queues;
  uint16_t queue_size;
  uint32_t padding;
};

/* Every payload this implementation reads or writes.  The ring structs are
 * the vhost uapi's: struct vhost_vring_state {u32 index; u32 num} (8 bytes)
 * and struct vhost_vring_addr {u32 index; u32 flags; u64 desc_user_addr,
 * used_user_addr, avail_user_addr, log_guest_addr} (40 bytes); flags bit
 * VHOST_VRING_F_LOG says log_guest_addr is valid. */
union vu_payload {
  uint64_t u64;
  struct vhost_vring_state state;
  struct vhost_vring_addr addr;
  struct vu_memory memory;
  struct vu_mem_reg mem_reg;
  struct vu_log log;
  struct vhost_iotlb_msg iotlb;
  struct vu_config config;
  struct vu_inflight inflight;
};

/* The largest payload of any message: a receiver refuses (and disconnects)
 * before reading a payload whose header says more. */
#define VU_MAX_PAYLOAD (sizeof(union vu_payload))
/* The most fds one message carries (SET_MEM_TABLE: one per region). */
#define VU_MAX_FDS VU_MEMORY_MAX_NREGIONS

/* A message in memory: the header, then the payload (hdr.size bytes of it
 * valid).  Not the wire image: see the top of this file. */
struct vu_msg {
  struct vu_msg_hdr hdr;
  union vu_payload payload;
};

/* The largest virtqueue (split ring) the protocol allows. */
#define VU_QUEUE_SIZE_MAX 32768

_Static_assert(sizeof(struct vu_msg_hdr) == VU_HDR_SIZE, "vhost-user header is 12 bytes");
_Static_assert(sizeof(struct vhost_vring_state) == 8, "vring state is 8 bytes");
_Static_assert(sizeof(struct vhost_vring_addr) == 40, "vring address is 40 bytes");
_Static_assert(sizeof(struct vu_mem_region) == 32, "memory region is 32 bytes");
_Static_assert(offsetof(struct vu_memory, regions) == 8, "memory table header is 8 bytes");
_Static_assert(sizeof(struct vu_mem_reg) == 40, "single memory region is 40 bytes");
_Static_assert(offsetof(struct vu_config, region) == VU_CONFIG_HDR_SIZE, "config header is 12 bytes");
_Static_assert(sizeof(struct vu_inflight) == 24, "inflight description is 24 bytes");

/* ---- Checks (vhost_user.c) ---- */

/* Is a received front-end request well formed?  msg->hdr and the first
 * msg->hdr.size bytes of msg->payload were received (hdr.size <=
 * VU_MAX_PAYLOAD, which the receiver checks before reading the payload), with
 * nfds file descriptors.  Checks the version and flags, the payload size for
 * the request code (exact, or bounded for SET_MEM_TABLE and the config
 * messages, whose inner counts must agree with it), the number of fds, and
 * the structural bounds the payload states about itself (nregions <= 8,
 * config offset + size <= VU_CONFIG_SPACE_MAX, the kick/call u64's unused
 * bits).  It does not know the device: queue indices, feature negotiation and
 * memory addresses are the handler's to check.
 * Returns 0, or -EPROTO for a malformed message (the connection should be
 * dropped), or -EOPNOTSUPP for a request code this implementation does not
 * serve (unknown, or of another device type or an unsupported feature: the
 * handler answers a NEED_REPLY with failure, or drops the connection).  On
 * failure writes a one-line reason naming the request and the wrong value
 * into err (errlen bytes, always terminated) when err is not NULL. */
int vu_msg_check(const struct vu_msg *msg, size_t nfds, char *err, size_t errlen);

/* Is a reply to the request `request` well formed (the front-end's side)?
 * Checks the version, the REPLY flag, that hdr.request matches, and the
 * payload size: a u64 for GET_FEATURES, GET_PROTOCOL_FEATURES,
 * GET_QUEUE_NUM, GET_MAX_MEM_SLOTS, GET_STATUS and for acknowledgements
 * (need_ack true); a vring state for GET_VRING_BASE; for GET_CONFIG
 * VU_CONFIG_HDR_SIZE + the size asked (config_size) or 0 (failure); an
 * inflight description and one fd for GET_INFLIGHT_FD.  Returns 0 or -EPROTO
 * with the reason in err as vu_msg_check() does. */
int vu_reply_check(uint32_t request, bool need_ack, uint32_t config_size,
                   const struct vu_msg *reply, size_t nfds, char *err, size_t errlen);

/* The request code's name as the specification spells it ("SET_MEM_TABLE"),
 * or "UNKNOWN". */
const char *vu_request_name(uint32_t request);

#endif
