/* ops.h: the operator endpoints: the control socket (--control PATH, where
 * `shunt stats` asks for the statistics) and the metrics endpoint
 * (--metrics HOST:PORT, HTTP GET /metrics in the Prometheus text format).
 *
 * Both are served by one thread of their own, never by the workers: a
 * request renders every export's counters (tens of kilobytes of text), and
 * an HTTP client may be hostile; neither may cost a worker's NBD
 * connections any time.  The thread only reads counters (metrics.h) and
 * is bounded: at most OPS_MAX_CLIENTS clients at once (a new one evicts the
 * oldest), a request of at most OPS_REQUEST_MAX bytes, one request per
 * connection, and OPS_DEADLINE_MS for a client's whole exchange (a client
 * that sends slowly or never reads its answer is closed then).
 *
 * The control protocol: the client sends one line, "stats json", "stats
 * prometheus" or "stats text"; the server answers "ok\n" and the
 * statistics, or "error: MESSAGE\n", and closes.  The socket file has mode
 * --control-mode (default 0600: the server's user, root for a system
 * service); with such a private mode a peer whose uid is neither root nor
 * the server's is refused even if it got the socket some other way. */
#ifndef SHUNT_SERVER_OPS_H
#define SHUNT_SERVER_OPS_H

#include <stddef.h>

#define OPS_MAX_CLIENTS  16
#define OPS_REQUEST_MAX  8192
#define OPS_DEADLINE_MS  5000

struct server;
struct ops;

/* Open the endpoints srv->cfg asks for and start the thread.  *out is NULL
 * when none is asked for.  Returns 0 or -errno with a message in err. */
int ops_start(struct server *srv, struct ops **out, char *err, size_t errlen);

/* Stop the thread, close the endpoints (removing the control socket file)
 * and free o (NULL: nothing). */
void ops_stop(struct ops *o);

#endif
