/* reload.h: SIGHUP in `shunt serve`: the configuration file is read again
 * (with the command line over it, as at start) and the exports it names
 * are offered from then on.  An export whose settings did not change is
 * kept as it is, its connections untouched; one whose scheduler settings
 * alone changed (weight=, reserve-iops=, limit-iops=, limit-bw=) is kept
 * and its open flows take the new values at once.  A removed export is
 * refused to new clients while the connections already on it are served
 * until they close (then it is flushed and closed); a changed one is a
 * removal plus an addition.  A configuration that cannot be read or whose
 * exports cannot all be opened changes nothing: each problem is logged.
 * Server-wide settings (listen, threads, tls, ...) are not reloaded: a
 * difference is logged. */
#ifndef SHUNT_SERVER_RELOAD_H
#define SHUNT_SERVER_RELOAD_H

struct export;
struct server;

/* Reload srv's configuration (on the signal thread; the workers go on).
 * Returns 0 when the new exports are offered (or there was nothing to
 * reload), -errno when the configuration in use was kept; all logged. */
int server_reload(struct server *srv);

/* Log what serves export ex (backend, path, size, data path, chunk): at
 * start and for an export a reload opens. */
void reload_log_export(const struct export *ex);

#endif
