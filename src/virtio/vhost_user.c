/* vhost_user.c: what a well-formed vhost-user message looks like, per request
 * code: payload size, fd count, and the bounds a payload states about itself.
 * One table says it for every request; vu_msg_check() and vu_reply_check()
 * only read it. */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>

#include "virtio/vhost_user.h"

enum vu_shape {
  VU_SHAPE_UNSUPPORTED,  /* not served here: refused with -EOPNOTSUPP */
  VU_SHAPE_EXACT,        /* exactly .size bytes, .fds fds */
  VU_SHAPE_MEM_TABLE,    /* vu_memory with nregions regions, nregions fds */
  VU_SHAPE_CONFIG,       /* vu_config header + its size bytes, no fd */
  VU_SHAPE_VRING_FD,     /* u64 index/NOFD, one fd unless NOFD */
  VU_SHAPE_FD_OPTIONAL,  /* exactly .size bytes, 0 or 1 fd */
};

struct vu_spec {
  const char *name;
  enum vu_shape shape;
  uint32_t size;
  uint8_t fds;
};

#define U64 sizeof(uint64_t)
#define STATE sizeof(struct vhost_vring_state)
static const struct vu_spec specs[VU_REQUEST_MAX] = {
  [VU_GET_FEATURES] = { "GET_FEATURES", VU_SHAPE_EXACT, 0, 0 },
  [VU_SET_FEATURES] = { "SET_FEATURES", VU_SHAPE_EXACT, U64, 0 },
  [VU_SET_OWNER] = { "SET_OWNER", VU_SHAPE_EXACT, 0, 0 },
  [VU_RESET_OWNER] = { "RESET_OWNER", VU_SHAPE_EXACT, 0, 0 },
  [VU_SET_MEM_TABLE] = { "SET_MEM_TABLE", VU_SHAPE_MEM_TABLE, 0, 0 },
  [VU_SET_LOG_BASE] = { "SET_LOG_BASE", VU_SHAPE_UNSUPPORTED, sizeof(struct vu_log), 1 },
  [VU_SET_LOG_FD] = { "SET_LOG_FD", VU_SHAPE_UNSUPPORTED, 0, 1 },
  [VU_SET_VRING_NUM] = { "SET_VRING_NUM", VU_SHAPE_EXACT, STATE, 0 },
  [VU_SET_VRING_ADDR] = { "SET_VRING_ADDR", VU_SHAPE_EXACT, sizeof(struct vhost_vring_addr), 0 },
  [VU_SET_VRING_BASE] = { "SET_VRING_BASE", VU_SHAPE_EXACT, STATE, 0 },
  [VU_GET_VRING_BASE] = { "GET_VRING_BASE", VU_SHAPE_EXACT, STATE, 0 },
  [VU_SET_VRING_KICK] = { "SET_VRING_KICK", VU_SHAPE_VRING_FD, U64, 1 },
  [VU_SET_VRING_CALL] = { "SET_VRING_CALL", VU_SHAPE_VRING_FD, U64, 1 },
  [VU_SET_VRING_ERR] = { "SET_VRING_ERR", VU_SHAPE_VRING_FD, U64, 1 },
  [VU_GET_PROTOCOL_FEATURES] = { "GET_PROTOCOL_FEATURES", VU_SHAPE_EXACT, 0, 0 },
  [VU_SET_PROTOCOL_FEATURES] = { "SET_PROTOCOL_FEATURES", VU_SHAPE_EXACT, U64, 0 },
  [VU_GET_QUEUE_NUM] = { "GET_QUEUE_NUM", VU_SHAPE_EXACT, 0, 0 },
  [VU_SET_VRING_ENABLE] = { "SET_VRING_ENABLE", VU_SHAPE_EXACT, STATE, 0 },
  [VU_SEND_RARP] = { "SEND_RARP", VU_SHAPE_UNSUPPORTED, U64, 0 },
  [VU_NET_SET_MTU] = { "NET_SET_MTU", VU_SHAPE_UNSUPPORTED, U64, 0 },
  [VU_SET_BACKEND_REQ_FD] = { "SET_BACKEND_REQ_FD", VU_SHAPE_EXACT, 0, 1 },
  [VU_IOTLB_MSG] = { "IOTLB_MSG", VU_SHAPE_UNSUPPORTED, sizeof(struct vhost_iotlb_msg), 0 },
  [VU_SET_VRING_ENDIAN] = { "SET_VRING_ENDIAN", VU_SHAPE_UNSUPPORTED, STATE, 0 },
  [VU_GET_CONFIG] = { "GET_CONFIG", VU_SHAPE_CONFIG, 0, 0 },
  [VU_SET_CONFIG] = { "SET_CONFIG", VU_SHAPE_CONFIG, 0, 0 },
  [VU_CREATE_CRYPTO_SESSION] = { "CREATE_CRYPTO_SESSION", VU_SHAPE_UNSUPPORTED, 0, 0 },
  [VU_CLOSE_CRYPTO_SESSION] = { "CLOSE_CRYPTO_SESSION", VU_SHAPE_UNSUPPORTED, U64, 0 },
  [VU_POSTCOPY_ADVISE] = { "POSTCOPY_ADVISE", VU_SHAPE_UNSUPPORTED, 0, 0 },
  [VU_POSTCOPY_LISTEN] = { "POSTCOPY_LISTEN", VU_SHAPE_UNSUPPORTED, 0, 0 },
  [VU_POSTCOPY_END] = { "POSTCOPY_END", VU_SHAPE_UNSUPPORTED, 0, 0 },
  [VU_GET_INFLIGHT_FD] = { "GET_INFLIGHT_FD", VU_SHAPE_EXACT, sizeof(struct vu_inflight), 0 },
  [VU_SET_INFLIGHT_FD] = { "SET_INFLIGHT_FD", VU_SHAPE_EXACT, sizeof(struct vu_inflight), 1 },
  [VU_GPU_SET_SOCKET] = { "GPU_SET_SOCKET", VU_SHAPE_UNSUPPORTED, 0, 1 },
  [VU_RESET_DEVICE] = { "RESET_DEVICE", VU_SHAPE_EXACT, 0, 0 },
  [VU_VRING_KICK] = { "VRING_KICK", VU_SHAPE_UNSUPPORTED, STATE, 0 },
  [VU_GET_MAX_MEM_SLOTS] = { "GET_MAX_MEM_SLOTS", VU_SHAPE_EXACT, 0, 0 },
  [VU_ADD_MEM_REG] = { "ADD_MEM_REG", VU_SHAPE_EXACT, sizeof(struct vu_mem_reg), 1 },
  [VU_REM_MEM_REG] = { "REM_MEM_REG", VU_SHAPE_FD_OPTIONAL, sizeof(struct vu_mem_reg), 1 },
  [VU_SET_STATUS] = { "SET_STATUS", VU_SHAPE_EXACT, U64, 0 },
  [VU_GET_STATUS] = { "GET_STATUS", VU_SHAPE_EXACT, 0, 0 },
  [VU_GET_SHARED_OBJECT] = { "GET_SHARED_OBJECT", VU_SHAPE_UNSUPPORTED, 0, 0 },
  [VU_SET_DEVICE_STATE_FD] = { "SET_DEVICE_STATE_FD", VU_SHAPE_UNSUPPORTED, 0, 1 },
  [VU_CHECK_DEVICE_STATE] = { "CHECK_DEVICE_STATE", VU_SHAPE_UNSUPPORTED, 0, 0 },
};
#undef U64
#undef STATE

const char *vu_request_name(uint32_t request)
{
  if (request < VU_REQUEST_MAX && specs[request].name)
    return specs[request].name;
  return "UNKNOWN";
}

/* Write the reason into err and return rc. */
__attribute__((format(printf, 4, 5)))
static int refuse(int rc, char *err, size_t errlen, const char *fmt, ...)
{
  va_list ap;

  if (err && errlen) {
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
  }
  return rc;
}

/* The fields of the header every message shares. */
static int check_flags(const struct vu_msg_hdr *h, bool reply, char *err, size_t errlen)
{
  const char *name = vu_request_name(h->request);

  if ((h->flags & VU_VERSION_MASK) != VU_VERSION)
    return refuse(-EPROTO, err, errlen, "%s (%u): protocol version %u, expected %u", name,
                  h->request, h->flags & VU_VERSION_MASK, VU_VERSION);
  if (!!(h->flags & VU_FLAG_REPLY) != reply)
    return refuse(-EPROTO, err, errlen, "%s (%u): flags 0x%x: the reply flag is %s", name,
                  h->request, h->flags, reply ? "missing on a reply" : "set on a request");
  if (h->size > VU_MAX_PAYLOAD)
    return refuse(-EPROTO, err, errlen, "%s (%u): payload of %u bytes, more than the %zu any message has",
                  name, h->request, h->size, VU_MAX_PAYLOAD);
  return 0;
}

static int check_fds(const char *name, uint32_t req, size_t nfds, size_t want, char *err, size_t errlen)
{
  if (nfds != want)
    return refuse(-EPROTO, err, errlen, "%s (%u): %zu file descriptors, expected %zu", name, req,
                  nfds, want);
  return 0;
}

static int check_config(const char *name, const struct vu_msg *msg, char *err, size_t errlen)
{
  const struct vu_config *c = &msg->payload.config;
  uint32_t size = msg->hdr.size;

  if (size < VU_CONFIG_HDR_SIZE)
    return refuse(-EPROTO, err, errlen, "%s (%u): payload of %u bytes, shorter than the %u-byte config header",
                  name, msg->hdr.request, size, VU_CONFIG_HDR_SIZE);
  if (c->size > VU_CONFIG_SPACE_MAX || c->offset > VU_CONFIG_SPACE_MAX - c->size)
    return refuse(-EPROTO, err, errlen, "%s (%u): config offset %u size %u past the %u-byte config space",
                  name, msg->hdr.request, c->offset, c->size, VU_CONFIG_SPACE_MAX);
  if (size != VU_CONFIG_HDR_SIZE + c->size)
    return refuse(-EPROTO, err, errlen, "%s (%u): payload of %u bytes for a config size of %u (expected %u)",
                  name, msg->hdr.request, size, c->size, VU_CONFIG_HDR_SIZE + c->size);
  if (c->flags > VU_CONFIG_F_MIGRATION)
    return refuse(-EPROTO, err, errlen, "%s (%u): config flags %u (0 or 1 expected)", name,
                  msg->hdr.request, c->flags);
  return 0;
}

int vu_msg_check(const struct vu_msg *msg, size_t nfds, char *err, size_t errlen)
{
  const struct vu_msg_hdr *h = &msg->hdr;
  const struct vu_spec *sp;
  const char *name = vu_request_name(h->request);
  int rc;

  if ((rc = check_flags(h, false, err, errlen)) < 0)
    return rc;
  if (h->request >= VU_REQUEST_MAX || !specs[h->request].name)
    return refuse(-EOPNOTSUPP, err, errlen, "unknown request %u", h->request);
  sp = &specs[h->request];
  switch (sp->shape) {
  case VU_SHAPE_UNSUPPORTED:
    return refuse(-EOPNOTSUPP, err, errlen, "%s (%u): not supported by this back-end", name,
                  h->request);
  case VU_SHAPE_EXACT:
  case VU_SHAPE_FD_OPTIONAL:
  case VU_SHAPE_VRING_FD:
    if (h->size != sp->size)
      return refuse(-EPROTO, err, errlen, "%s (%u): payload of %u bytes, expected %u", name,
                    h->request, h->size, sp->size);
    if (sp->shape == VU_SHAPE_FD_OPTIONAL)
      return nfds <= sp->fds ? 0
        : refuse(-EPROTO, err, errlen, "%s (%u): %zu file descriptors, expected at most %u", name,
                 h->request, nfds, sp->fds);
    if (sp->shape == VU_SHAPE_VRING_FD) {
      uint64_t v = msg->payload.u64;
      if (v & ~(VU_VRING_IDX_MASK | VU_VRING_NOFD))
        return refuse(-EPROTO, err, errlen, "%s (%u): value 0x%llx has bits other than the ring index and no-fd flag",
                      name, h->request, (unsigned long long)v);
      return check_fds(name, h->request, nfds, (v & VU_VRING_NOFD) ? 0 : 1, err, errlen);
    }
    return check_fds(name, h->request, nfds, sp->fds, err, errlen);
  case VU_SHAPE_MEM_TABLE: {
    uint32_t n;
    if (h->size < offsetof(struct vu_memory, regions))
      return refuse(-EPROTO, err, errlen, "%s (%u): payload of %u bytes, shorter than the table header",
                    name, h->request, h->size);
    n = msg->payload.memory.nregions;
    if (n == 0 || n > VU_MEMORY_MAX_NREGIONS)
      return refuse(-EPROTO, err, errlen, "%s (%u): %u regions (1 to %u allowed)", name, h->request,
                    n, VU_MEMORY_MAX_NREGIONS);
    if (h->size != offsetof(struct vu_memory, regions) + n * sizeof(struct vu_mem_region))
      return refuse(-EPROTO, err, errlen, "%s (%u): payload of %u bytes for %u regions (expected %zu)",
                    name, h->request, h->size, n,
                    offsetof(struct vu_memory, regions) + n * sizeof(struct vu_mem_region));
    return check_fds(name, h->request, nfds, n, err, errlen);
  }
  case VU_SHAPE_CONFIG:
    if ((rc = check_config(name, msg, err, errlen)) < 0)
      return rc;
    return check_fds(name, h->request, nfds, 0, err, errlen);
  }
  return refuse(-EPROTO, err, errlen, "%s (%u): no rule", name, h->request);
}

int vu_reply_check(uint32_t request, bool need_ack, uint32_t config_size,
                   const struct vu_msg *reply, size_t nfds, char *err, size_t errlen)
{
  const struct vu_msg_hdr *h = &reply->hdr;
  const char *name = vu_request_name(request);
  size_t want_size = sizeof(uint64_t), want_fds = 0;
  int rc;

  if (h->request != request)
    return refuse(-EPROTO, err, errlen, "reply to %s (%u) names request %u", name, request,
                  h->request);
  if ((rc = check_flags(h, true, err, errlen)) < 0)
    return rc;
  switch (request) {
  case VU_GET_FEATURES:
  case VU_GET_PROTOCOL_FEATURES:
  case VU_GET_QUEUE_NUM:
  case VU_GET_MAX_MEM_SLOTS:
  case VU_GET_STATUS:
    break;
  case VU_GET_VRING_BASE:
    want_size = sizeof(struct vhost_vring_state);
    break;
  case VU_GET_CONFIG:
    if (h->size == 0)   /* the back-end's way of saying it failed */
      break;
    want_size = VU_CONFIG_HDR_SIZE + (size_t)config_size;
    if (h->size == want_size && reply->payload.config.size != config_size)
      return refuse(-EPROTO, err, errlen, "reply to %s: config size %u, asked %u", name,
                    reply->payload.config.size, config_size);
    break;
  case VU_GET_INFLIGHT_FD:
    want_size = sizeof(struct vu_inflight);
    want_fds = 1;
    break;
  default:
    if (!need_ack)
      return refuse(-EPROTO, err, errlen, "%s (%u) has no reply", name, request);
    break;
  }
  if (!(request == VU_GET_CONFIG && h->size == 0) && h->size != want_size)
    return refuse(-EPROTO, err, errlen, "reply to %s: payload of %u bytes, expected %zu", name,
                  h->size, want_size);
  if (request == VU_GET_CONFIG && h->size == 0)
    want_fds = 0;
  return check_fds(name, request, nfds, want_fds, err, errlen);
}
