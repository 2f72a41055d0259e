/* metrics.h: the running server's statistics as one whole (version, uptime,
 * connections, buffer pools, and every export's counters summed over the
 * workers' slots), written two ways: JSON (the --stats file, and `shunt
 * stats --json` over the control socket) and the Prometheus text format
 * (GET /metrics, `shunt stats --prometheus`).  The metrics and keys are
 * listed in docs/metrics.md.  Safe from any thread: counters are read
 * relaxed while the workers write them, the export table under
 * srv->stats_lock. */
#ifndef SHUNT_SERVER_METRICS_H
#define SHUNT_SERVER_METRICS_H

#include <stdio.h>

#include "common/json.h"
#include "common/prom.h"

struct server;

/* The whole statistics as one JSON object (the top-level value of j). */
void metrics_json(struct server *srv, struct json *j);

/* The whole statistics in the Prometheus text format, appended to p. */
void metrics_prometheus(struct server *srv, struct prom *p);

/* A short human-readable summary (`shunt stats`): connections, and per
 * export the commands seen with their counts, bytes, errors and latency
 * percentiles.  Returns 0, -ENOMEM or -EIO. */
int metrics_text(struct server *srv, FILE *f);

/* Seconds since the server started (CLOCK_MONOTONIC). */
double metrics_uptime(const struct server *srv);

#endif
