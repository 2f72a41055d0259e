/* conn.h: one client connection, from greeting to close: the handshake (fed
 * to proto/handshake.c), then transmission (headers decoded by
 * proto/request.c, requests handed to the export's data path), all on the
 * worker's engine.  No thread per connection. */
#ifndef SHUNT_SERVER_CONN_H
#define SHUNT_SERVER_CONN_H

#include <stdbool.h>
#include <stdint.h>

struct worker;
struct conn;

/* Take over an accepted connection: rfd for receiving, wfd for sending (the
 * same fd for sockets; 0 and 1 for --stdio with pipes).  peer names the
 * client in logs.  On failure the fds are closed.  Returns 0 or -errno. */
int conn_start(struct worker *w, int rfd, int wfd, const char *peer);

/* Server shutdown: stop reading new requests, finish those in flight,
 * then close.  A connection still in the handshake is closed at once. */
void conn_stop(struct conn *c);

/* The next connection in its worker's list (w->conns), or NULL. */
struct conn *conn_next(const struct conn *c);

/* The worker's periodic tick (now_ms: CLOCK_MONOTONIC milliseconds): resume
 * a connection paused for the memory budget, and cut one that has held
 * buffers without any progress for --send-timeout seconds (logged and
 * counted in its export's stats). */
void conn_tick(struct conn *c, uint64_t now_ms);

/* Cut the connection now (shutdown grace period over): in-flight requests
 * still complete internally, but nothing more is sent or received. */
void conn_abort(struct conn *c);

#endif
