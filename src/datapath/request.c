/* request.c: a request's reply items, their way out through the request's
 * sink, and the request's end: stats, buffers, then the front end (see
 * request.h). */
#include <stdlib.h>
#include <string.h>

#include "common/log.h"
#include "common/macros.h"
#include "datapath/datapath.h"
#include "datapath/dpexport.h"
#include "datapath/dpworker.h"
#include "datapath/request.h"
#include "proto/nbd-protocol.h"

struct request *request_new(struct request_sink *s, const struct proto_request *hdr)
{
  struct request *r = calloc(1, sizeof *r);
  struct dp_stats *st = &s->export->stats;

  if (!r)
    return NULL;
  r->sink = s;
  r->eng = s->eng;
  r->session = s->session;
  r->export = s->export;
  r->dp = s->dp;
  r->share = s->share;
  r->hdr = *hdr;
  r->times.recv = dp_now();
  stat_add(&st->requests, 1);
  stat_add(hdr->type == NBD_CMD_READ ? &st->reads : hdr->type == NBD_CMD_WRITE ? &st->writes : &st->other, 1);
  return r;
}

static void request_free(struct request *r)
{
  if (r->hdr.type == NBD_CMD_READ || r->hdr.type == NBD_CMD_WRITE)
    dp_stats_account(&r->export->stats, &r->times, r->hdr.type == NBD_CMD_WRITE);
  if (r->buf_from_datapath)
    r->dp->free_buffer(r, r->buf);
  else if (r->buf_pooled)
    dp_buffer_put(r->eng, r->buf, r->buf_pooled);
  else if (!r->buf_lender)   /* else the front end's memory, taken back in freed() */
    free(r->buf);
  free(r->items);
  free(r->dp_priv);
  r->sink->ops->freed(r->sink, r);
  free(r);
}

void *request_pool_buffer(struct request *r, size_t len)
{
  r->buf = dp_buffer_get(r->eng, len, r->hdr.type != NBD_CMD_WRITE, &r->export->stats);
  r->buf_pooled = r->buf ? len : 0;
  return r->buf;
}

void *request_alloc_buffer(struct request *r, size_t len)
{
  const struct datapath *dp = r->dp;

  if (dp->alloc_buffer && dp->free_buffer) {
    r->buf = dp->alloc_buffer(r, len);
    r->buf_from_datapath = r->buf != NULL;
    return r->buf;
  }
  return request_pool_buffer(r, len);
}

struct reply_item *request_items(struct request *r, size_t n)
{
  if (r->items || n == 0)
    return NULL;
  r->items = calloc(n, sizeof *r->items);
  r->nitems = r->items ? n : 0;
  return r->items;
}

static void item_sent(struct sendq_item *sq, int err)
{
  struct reply_item *it = container_of(sq, struct reply_item, sq);
  struct request *r = it->req;

  if (err)
    r->sink->ops->send_failed(r->sink, err);
  if (it->payload && !err)
    dp_times_net(&r->times);
  if (it->release)
    it->release(it, err);
  if (--r->unsent == 0 && r->finished)
    request_free(r);
}

void request_push(struct request *r, struct reply_item *it, bool held)
{
  it->req = r;
  it->sq.done = item_sent;
  it->sq.hold = held;
  r->unsent++;
  r->sink->ops->push(r->sink, &it->sq);
}

/* Point it's iovecs at its header bytes and data. */
static void item_fill(struct reply_item *it, size_t hdr_len, const void *data, size_t data_len)
{
  it->sq.niov = 0;
  if (hdr_len)
    it->sq.iov[it->sq.niov++] = (struct iovec){ it->hdr, hdr_len };
  if (data_len)
    it->sq.iov[it->sq.niov++] = (struct iovec){ (void *)data, data_len };
}

void request_send(struct request *r, struct reply_item *it, size_t hdr_len,
                  const void *data, size_t data_len)
{
  item_fill(it, hdr_len, data, data_len);
  request_push(r, it, false);
}

void request_send_held(struct request *r, struct reply_item *it, size_t hdr_len,
                       const void *data, size_t data_len)
{
  item_fill(it, hdr_len, data, data_len);
  request_push(r, it, true);
}

void request_release(struct request *r, struct reply_item *it)
{
  r->sink->ops->release(r->sink, &it->sq);
}

void request_fail_connection(struct request *r)
{
  r->sink->ops->fail(r->sink, r);
}

void request_finish(struct request *r)
{
  r->finished = true;
  if (r->unsent == 0)
    request_free(r);
}

void request_reply_status(struct request *r, uint32_t nbd_error, const char *msg)
{
  struct reply_item *it = &r->status_item;

  if (nbd_error)
    log_msg(LOG_DEBUG, r->sink->peer, r->export->name, "%s at %llu+%llu: error %u%s%s",
            proto_command_name(r->hdr.type), (unsigned long long)r->hdr.offset,
            (unsigned long long)r->hdr.length, nbd_error, msg ? ": " : "", msg ? msg : "");
  if (r->sink->ops->done) {   /* a memory front end: the status is the whole answer */
    r->sink->ops->done(r->sink, r, nbd_error);
    request_finish(r);
    return;
  }
  request_send(r, it, proto_reply_status(it->hdr, r->session, &r->hdr, nbd_error, msg), NULL, 0);
  request_finish(r);
}
