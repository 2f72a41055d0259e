/* vhostfe_wire.h: the vhost-user protocol constants and payloads the test frontend sends.
 * The virtio layouts come from the kernel's uapi headers; only the vhost-user message format,
 * which uapi lacks, is spelled out here. */
#ifndef VHOSTFE_WIRE_H
#define VHOSTFE_WIRE_H

#include <stdint.h>

enum fe_vu_request {
  FE_VU_GET_FEATURES = 1,
  FE_VU_SET_FEATURES = 2,
  FE_VU_SET_OWNER = 3,
  FE_VU_SET_MEM_TABLE = 5,
  FE_VU_SET_VRING_NUM = 8,
  FE_VU_SET_VRING_ADDR = 9,
  FE_VU_SET_VRING_BASE = 10,
  FE_VU_GET_VRING_BASE = 11,
  FE_VU_SET_VRING_KICK = 12,
  FE_VU_SET_VRING_CALL = 13,
  FE_VU_GET_PROTOCOL_FEATURES = 15,
  FE_VU_SET_PROTOCOL_FEATURES = 16,
  FE_VU_GET_QUEUE_NUM = 17,
  FE_VU_SET_VRING_ENABLE = 18,
  FE_VU_GET_CONFIG = 24,
  FE_VU_GET_INFLIGHT_FD = 31,
  FE_VU_SET_INFLIGHT_FD = 32,
  FE_VU_GET_MAX_MEM_SLOTS = 36,
  FE_VU_ADD_MEM_REG = 37,
};

#define FE_VU_VERSION 0x1u
#define FE_VU_FLAG_REPLY (1u << 2)
#define FE_VU_FLAG_NEED_REPLY (1u << 3)
#define FE_VU_F_PROTOCOL_FEATURES 30 /* feature bit: protocol features are negotiated */
#define FE_VU_VRING_NOFD (1ull << 8) /* kick/call payload: no fd attached */

/* Protocol feature bits. */
#define FE_VU_PF_MQ 0
#define FE_VU_PF_REPLY_ACK 3
#define FE_VU_PF_CONFIG 9
#define FE_VU_PF_INFLIGHT_SHMFD 12
#define FE_VU_PF_CONFIGURE_MEM_SLOTS 15

#define FE_VU_MAX_REGIONS 8

struct fe_vu_hdr {
  uint32_t request;
  uint32_t flags;
  uint32_t size;
};

struct fe_vu_state {
  uint32_t index;
  uint32_t num;
};

struct fe_vu_addr {
  uint32_t index;
  uint32_t flags;
  uint64_t desc;
  uint64_t used;
  uint64_t avail;
  uint64_t log;
};

struct fe_vu_region {
  uint64_t gpa;
  uint64_t size;
  uint64_t uaddr;
  uint64_t mmap_offset;
};

struct fe_vu_memory {
  uint32_t nregions;
  uint32_t padding;
  struct fe_vu_region regions[FE_VU_MAX_REGIONS];
};

struct fe_vu_mem_reg {
  uint64_t padding;
  struct fe_vu_region region;
};

struct fe_vu_config {
  uint32_t offset;
  uint32_t size;
  uint32_t flags;
  uint8_t region[256];
};

struct fe_vu_inflight {
  uint64_t mmap_size;
  uint64_t mmap_offset;
  uint16_t num_queues;
  uint16_t queue_size;
};

#endif
