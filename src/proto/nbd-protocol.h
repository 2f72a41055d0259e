/* nbd-protocol.h: the NBD wire format, in one place.
 *
 * Constants and on-the-wire struct layouts from the NBD protocol specification
 * (doc/proto.md in NetworkBlockDevice/nbd, including the extension-ext-header
 * branch for extended headers).  All multi-byte fields are big-endian on the
 * wire; the structs are packed and hold raw wire values (convert with be16toh,
 * be32toh, be64toh).  Shared by the server, libshunt and the tests. */
#ifndef SHUNT_NBD_PROTOCOL_H
#define SHUNT_NBD_PROTOCOL_H

#include <stdint.h>

/* ---- Handshake magics ("Newstyle negotiation") ---- */
#define NBD_MAGIC               UINT64_C(0x4e42444d41474943) /* "NBDMAGIC" */
#define NBD_NEW_VERSION         UINT64_C(0x49484156454F5054) /* "IHAVEOPT" */
#define NBD_OLD_VERSION         UINT64_C(0x0000420281861253) /* oldstyle: unused */
#define NBD_REP_MAGIC           UINT64_C(0x0003e889045565a9) /* option reply */

/* Handshake flags (server, 16 bits). */
#define NBD_FLAG_FIXED_NEWSTYLE (1u << 0)
#define NBD_FLAG_NO_ZEROES      (1u << 1)
/* Client flags (32 bits). */
#define NBD_FLAG_C_FIXED_NEWSTYLE NBD_FLAG_FIXED_NEWSTYLE
#define NBD_FLAG_C_NO_ZEROES      NBD_FLAG_NO_ZEROES

/* Transmission flags (16 bits). */
#define NBD_FLAG_HAS_FLAGS          (1u << 0)
#define NBD_FLAG_READ_ONLY          (1u << 1)
#define NBD_FLAG_SEND_FLUSH         (1u << 2)
#define NBD_FLAG_SEND_FUA           (1u << 3)
#define NBD_FLAG_ROTATIONAL         (1u << 4)
#define NBD_FLAG_SEND_TRIM          (1u << 5)
#define NBD_FLAG_SEND_WRITE_ZEROES  (1u << 6)
#define NBD_FLAG_SEND_DF            (1u << 7)
#define NBD_FLAG_CAN_MULTI_CONN     (1u << 8)
#define NBD_FLAG_SEND_RESIZE        (1u << 9)
#define NBD_FLAG_SEND_CACHE         (1u << 10)
#define NBD_FLAG_SEND_FAST_ZERO     (1u << 11)
#define NBD_FLAG_BLOCK_STAT_PAYLOAD (1u << 12)

/* Options. */
#define NBD_OPT_EXPORT_NAME       1
#define NBD_OPT_ABORT             2
#define NBD_OPT_LIST              3
#define NBD_OPT_PEEK_EXPORT       4  /* withdrawn */
#define NBD_OPT_STARTTLS          5
#define NBD_OPT_INFO              6
#define NBD_OPT_GO                7
#define NBD_OPT_STRUCTURED_REPLY  8
#define NBD_OPT_LIST_META_CONTEXT 9
#define NBD_OPT_SET_META_CONTEXT  10
#define NBD_OPT_EXTENDED_HEADERS  11

/* Option replies. */
#define NBD_REP_ACK               1
#define NBD_REP_SERVER            2
#define NBD_REP_INFO              3
#define NBD_REP_META_CONTEXT      4
#define NBD_REP_FLAG_ERROR        (UINT32_C(1) << 31)
#define NBD_REP_ERR_UNSUP         (NBD_REP_FLAG_ERROR | 1)
#define NBD_REP_ERR_POLICY        (NBD_REP_FLAG_ERROR | 2)
#define NBD_REP_ERR_INVALID       (NBD_REP_FLAG_ERROR | 3)
#define NBD_REP_ERR_PLATFORM      (NBD_REP_FLAG_ERROR | 4)
#define NBD_REP_ERR_TLS_REQD      (NBD_REP_FLAG_ERROR | 5)
#define NBD_REP_ERR_UNKNOWN       (NBD_REP_FLAG_ERROR | 6)
#define NBD_REP_ERR_SHUTDOWN      (NBD_REP_FLAG_ERROR | 7)
#define NBD_REP_ERR_BLOCK_SIZE_REQD (NBD_REP_FLAG_ERROR | 8)
#define NBD_REP_ERR_TOO_BIG       (NBD_REP_FLAG_ERROR | 9)
#define NBD_REP_ERR_EXT_HEADER_REQD (NBD_REP_FLAG_ERROR | 10)

/* NBD_REP_INFO types. */
#define NBD_INFO_EXPORT           0
#define NBD_INFO_NAME             1
#define NBD_INFO_DESCRIPTION      2
#define NBD_INFO_BLOCK_SIZE       3

/* ---- Transmission ---- */
#define NBD_REQUEST_MAGIC          UINT32_C(0x25609513)
#define NBD_EXTENDED_REQUEST_MAGIC UINT32_C(0x21e41c71)
#define NBD_SIMPLE_REPLY_MAGIC     UINT32_C(0x67446698)
#define NBD_STRUCTURED_REPLY_MAGIC UINT32_C(0x668e33ef)
#define NBD_EXTENDED_REPLY_MAGIC   UINT32_C(0x6e8a278c)

/* Commands. */
#define NBD_CMD_READ          0
#define NBD_CMD_WRITE         1
#define NBD_CMD_DISC          2
#define NBD_CMD_FLUSH         3
#define NBD_CMD_TRIM          4
#define NBD_CMD_CACHE         5
#define NBD_CMD_WRITE_ZEROES  6
#define NBD_CMD_BLOCK_STATUS  7
#define NBD_CMD_RESIZE        8

/* Command flags (16 bits). */
#define NBD_CMD_FLAG_FUA         (1u << 0)
#define NBD_CMD_FLAG_NO_HOLE     (1u << 1)
#define NBD_CMD_FLAG_DF          (1u << 2)
#define NBD_CMD_FLAG_REQ_ONE     (1u << 3)
#define NBD_CMD_FLAG_FAST_ZERO   (1u << 4)
#define NBD_CMD_FLAG_PAYLOAD_LEN (1u << 5)

/* Structured/extended reply flags and types. */
#define NBD_REPLY_FLAG_DONE             (1u << 0)
#define NBD_REPLY_TYPE_NONE             0
#define NBD_REPLY_TYPE_OFFSET_DATA      1
#define NBD_REPLY_TYPE_OFFSET_HOLE      2
#define NBD_REPLY_TYPE_BLOCK_STATUS     5
#define NBD_REPLY_TYPE_BLOCK_STATUS_EXT 6
#define NBD_REPLY_TYPE_ERROR_BIT        (1u << 15)
#define NBD_REPLY_TYPE_ERROR            (NBD_REPLY_TYPE_ERROR_BIT | 1)
#define NBD_REPLY_TYPE_ERROR_OFFSET     (NBD_REPLY_TYPE_ERROR_BIT | 2)

/* base:allocation status bits. */
#define NBD_STATE_HOLE (1u << 0)
#define NBD_STATE_ZERO (1u << 1)

/* Error values (the wire uses these numbers, not the host's errno). */
#define NBD_EPERM      1
#define NBD_EIO        5
#define NBD_ENOMEM     12
#define NBD_EINVAL     22
#define NBD_ENOSPC     28
#define NBD_EOVERFLOW  75
#define NBD_ENOTSUP    95
#define NBD_ESHUTDOWN  108

/* Limits the protocol itself sets. */
#define NBD_MAX_STRING       4096u  /* export names, descriptions, context names */
#define NBD_DEFAULT_MAX_PAYLOAD (32u * 1024 * 1024)

#define NBD_PACKED __attribute__((packed))

/* Server's first message: "NBDMAGIC" "IHAVEOPT" flags. */
struct nbd_new_handshake {
  uint64_t nbdmagic;
  uint64_t version;
  uint16_t gflags;
} NBD_PACKED;

/* Client option header, followed by optlen bytes of data. */
struct nbd_option {
  uint64_t version;   /* NBD_NEW_VERSION */
  uint32_t option;
  uint32_t optlen;
} NBD_PACKED;

/* Server option reply header, followed by replylen bytes of data. */
struct nbd_fixed_new_option_reply {
  uint64_t magic;     /* NBD_REP_MAGIC */
  uint32_t option;
  uint32_t reply;
  uint32_t replylen;
} NBD_PACKED;

/* Reply to NBD_OPT_EXPORT_NAME (the 124 zero bytes are omitted with NO_ZEROES). */
struct nbd_export_name_reply {
  uint64_t exportsize;
  uint16_t eflags;
  char zeroes[124];
} NBD_PACKED;

/* NBD_REP_INFO payloads. */
struct nbd_info_export {
  uint16_t info;      /* NBD_INFO_EXPORT */
  uint64_t exportsize;
  uint16_t eflags;
} NBD_PACKED;

struct nbd_info_block_size {
  uint16_t info;      /* NBD_INFO_BLOCK_SIZE */
  uint32_t minimum;
  uint32_t preferred;
  uint32_t maximum;
} NBD_PACKED;

/* Compact request (28 bytes). */
struct nbd_request {
  uint32_t magic;     /* NBD_REQUEST_MAGIC */
  uint16_t flags;
  uint16_t type;
  uint64_t cookie;
  uint64_t offset;
  uint32_t count;
} NBD_PACKED;

/* Extended request (32 bytes). */
struct nbd_request_ext {
  uint32_t magic;     /* NBD_EXTENDED_REQUEST_MAGIC */
  uint16_t flags;
  uint16_t type;
  uint64_t cookie;
  uint64_t offset;
  uint64_t count;
} NBD_PACKED;

/* Simple reply (16 bytes). */
struct nbd_simple_reply {
  uint32_t magic;     /* NBD_SIMPLE_REPLY_MAGIC */
  uint32_t error;
  uint64_t cookie;
} NBD_PACKED;

/* Structured reply chunk header (20 bytes). */
struct nbd_structured_reply {
  uint32_t magic;     /* NBD_STRUCTURED_REPLY_MAGIC */
  uint16_t flags;
  uint16_t type;
  uint64_t cookie;
  uint32_t length;
} NBD_PACKED;

/* Extended reply chunk header (32 bytes). */
struct nbd_extended_reply {
  uint32_t magic;     /* NBD_EXTENDED_REPLY_MAGIC */
  uint16_t flags;
  uint16_t type;
  uint64_t cookie;
  uint64_t offset;    /* the request's offset */
  uint64_t length;
} NBD_PACKED;

/* Chunk payload prefixes. */
struct nbd_chunk_offset_data {
  uint64_t offset;    /* followed by the data */
} NBD_PACKED;

struct nbd_chunk_offset_hole {
  uint64_t offset;
  uint32_t length;
} NBD_PACKED;

struct nbd_chunk_offset_hole_ext {  /* not in the spec yet; unused */
  uint64_t offset;
  uint64_t length;
} NBD_PACKED;

struct nbd_chunk_error {
  uint32_t error;
  uint16_t msglen;    /* followed by msglen bytes, then type-specific data */
} NBD_PACKED;

struct nbd_block_descriptor {
  uint32_t length;
  uint32_t status_flags;
} NBD_PACKED;

struct nbd_block_descriptor_ext {
  uint64_t length;
  uint64_t status_flags;
} NBD_PACKED;

struct nbd_chunk_block_status_ext_head {
  uint32_t context_id;
  uint32_t count;     /* number of descriptors that follow */
} NBD_PACKED;

_Static_assert(sizeof(struct nbd_new_handshake) == 18, "handshake");
_Static_assert(sizeof(struct nbd_option) == 16, "option");
_Static_assert(sizeof(struct nbd_fixed_new_option_reply) == 20, "option reply");
_Static_assert(sizeof(struct nbd_export_name_reply) == 134, "export name reply");
_Static_assert(sizeof(struct nbd_info_export) == 12, "info export");
_Static_assert(sizeof(struct nbd_info_block_size) == 14, "info block size");
_Static_assert(sizeof(struct nbd_request) == 28, "request");
_Static_assert(sizeof(struct nbd_request_ext) == 32, "extended request");
_Static_assert(sizeof(struct nbd_simple_reply) == 16, "simple reply");
_Static_assert(sizeof(struct nbd_structured_reply) == 20, "structured reply");
_Static_assert(sizeof(struct nbd_extended_reply) == 32, "extended reply");
_Static_assert(sizeof(struct nbd_chunk_offset_hole) == 12, "offset hole");
_Static_assert(sizeof(struct nbd_chunk_error) == 6, "error chunk");
_Static_assert(sizeof(struct nbd_block_descriptor_ext) == 16, "extent ext");

#endif /* SHUNT_NBD_PROTOCOL_H */
