/* config.h: everything `shunt serve` can be told, from the command line
 * (src/tools/serve.c) or a config file (format: docs/config.md). */
#ifndef SHUNT_SERVER_CONFIG_H
#define SHUNT_SERVER_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "datapath/qos.h"
#include "server/export.h"
#include "server/tls.h"

#define SHUNT_DEFAULT_PORT "10809"
#define SHUNT_DEFAULT_MAX_INFLIGHT (64u << 20)
/* A client must finish its handshake within this many seconds (0: no limit). */
#define SHUNT_DEFAULT_HANDSHAKE_TIMEOUT 10u
#define SHUNT_MAX_HANDSHAKE_TIMEOUT     86400u
/* Connections served at once, all listeners and workers together (0: no limit). */
#define SHUNT_DEFAULT_MAX_CONNECTIONS   1000u
#define SHUNT_MAX_MAX_CONNECTIONS       1000000u
/* A connection holding buffers (replies queued, or a WRITE payload arriving)
 * without any progress for this many seconds is cut (0: never). */
#define SHUNT_DEFAULT_SEND_TIMEOUT      60u
#define SHUNT_MAX_SEND_TIMEOUT          86400u
/* The smallest --memory-budget: room for a request of the maximum payload
 * (32 MiB) beside others.  0 in the config: half of sys_memory_limit(), at least
 * SHUNT_MIN_AUTO_MEMORY_BUDGET. */
#define SHUNT_MIN_MEMORY_BUDGET         (64u << 20)
#define SHUNT_MIN_AUTO_MEMORY_BUDGET    (256u << 20)

struct server;

/* A hook server_run calls once every listener is open and the workers exist,
 * before the first connection is served (the point a caller may announce
 * readiness, drop privileges or start a client).  A negative return stops the
 * server with exit status 1. */
typedef int (*server_ready_fn)(struct server *srv, void *arg);

struct server_config {
  char **listen;           /* HOST:PORT strings */
  size_t nlisten;
  char **unix_paths;
  size_t nunix;
  unsigned threads;        /* 0: one per online CPU */
  bool stdio;              /* serve one client on stdin/stdout, then exit */
  int log_level;           /* LOG_ERROR..LOG_DEBUG */
  int log_target;          /* enum log_target: stderr (default) or syslog */
  uint64_t max_inflight;   /* per-connection cap on buffered request bytes */
  unsigned handshake_timeout;  /* seconds to finish the handshake; 0: unlimited */
  unsigned max_connections;    /* connections at once; 0: unlimited */
  unsigned send_timeout;       /* seconds without progress while holding buffers; 0: never */
  uint64_t memory_budget;      /* in-flight request bytes, all connections; 0: half of sys_memory_limit() */
  uint64_t chunk;          /* default chunk size of split reads/writes (0: 256 KiB) */
  uint64_t arena;          /* direct path buffer arena per worker (0: 64 MiB) */
  char *stats_path;        /* --stats FILE: JSON written on SIGUSR1 and at exit */
  struct dp_qos_config qos;    /* --qos, --qos-key, --device-iops, --device-bw */
  char *control_path;      /* --control PATH: the control socket (`shunt stats`); NULL: none */
  unsigned control_mode;   /* its file mode (default 0600: its owner only) */
  char *metrics_listen;    /* --metrics HOST:PORT: GET /metrics over HTTP; NULL: none */
  struct export_config *exports;
  size_t nexports;
  struct tls_config tls;   /* STARTTLS (docs/config.md, "TLS") */
  server_ready_fn on_ready;    /* NULL: none */
  void *on_ready_arg;
  /* SIGHUP (reload.h): the configuration file the exports came from (NULL:
   * the command line only, nothing to reload), and how to read the whole
   * configuration again as at start (the file, then the command line over
   * it) into a config_init()ed cfg: 0, or -errno with the message. */
  const char *config_file;
  int (*reload)(struct server_config *out, void *arg, char *err, size_t errlen);
  void *reload_arg;
};

/* Defaults: no listeners yet (server.c adds the default), info logging. */
void config_init(struct server_config *cfg);
void config_free(struct server_config *cfg);

int config_add_listen(struct server_config *cfg, const char *hostport);
int config_add_unix(struct server_config *cfg, const char *path);
/* Add an export from a NAME=PATH[,OPTION]... spec; message in err. */
int config_add_export_spec(struct server_config *cfg, const char *spec, char *err, size_t errlen);

/* Set one TLS setting by its config-file key (tls, tls-certificates,
 * tls-psk, tls-priority, tls-verify-peer, tls-allow-dn); the command line uses it too.
 * Returns 0 or -errno with a message in err. */
int config_set_tls(struct server_config *cfg, const char *key, const char *val,
                   char *err, size_t errlen);

/* Set one server-wide setting by its config-file key (threads, max-inflight,
 * chunk, arena, stats, control, control-mode, metrics, handshake-timeout,
 * max-connections, send-timeout, memory-budget, qos, qos-key, device-iops,
 * device-bw, log (a level, or stderr or
 * syslog), listen, unix,
 * export, tls*), validating the value. The command line's long options go
 * through here too, so both accept exactly the same values.
 * Returns 0, or -EINVAL with a message in err. */
int config_set_server_key(struct server_config *cfg, const char *key, const char *val,
                          char *err, size_t errlen);

/* The server-wide settings (all but the exports) in which a and b differ:
 * up to max config-file key names into keys.  Returns how many differ. */
size_t config_server_diff(const struct server_config *a, const struct server_config *b,
                          const char **keys, size_t max);

/* Read a config file (docs/config.md) into cfg.  Returns 0 or -errno with
 * "FILE:LINE: message" in err. */
int config_load_file(struct server_config *cfg, const char *path, char *err, size_t errlen);

#endif
