/* vconfig.h: everything `shunt vhost` can be told, from the command line
 * (src/tools/vhost.c) or a config file in serve's format (docs/vhost.md):
 * a [server] part with the process-wide keys and one [vhost SOCKET]
 * section per device. */
#ifndef SHUNT_VHOST_VCONFIG_H
#define SHUNT_VHOST_VCONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "backend/backend.h"
#include "common/privs.h"
#include "datapath/qos.h"

/* The most queues one device offers (VIRTIO_BLK_F_MQ num_queues). */
#define VHOST_MAX_QUEUES 64
/* virtio-blk's GET_ID answer is at most this many bytes. */
#define VHOST_SERIAL_MAX 20

/* One device: SOCKET=SOURCE[,OPTION]... */
struct vhost_dev_config {
  char *socket;        /* the unix socket the frontend (qemu) connects to */
  char *source;        /* a file or block device, an NBD URI, or POOL/IMAGE[@SNAP] for rbd */
  char *backend;       /* NULL or "file": a file; "rbd": a Ceph RBD image */
  struct backend_rbd_options rbd;   /* backend=rbd: ceph-conf, ceph-id, ceph-cluster, lock */
  char *datapath;      /* copy, splice, direct, mmap, auto; NULL: direct */
  char *serial;        /* GET_ID's answer; NULL: none */
  unsigned queues;     /* queues offered; 0: one per worker */
  bool read_only;
  bool discard;        /* DISCARD and WRITE_ZEROES offered (default on) */
  struct sched_params qos;   /* weight, reserve-iops, limit-iops, limit-bw: the device is
                              * one flow of its storage device's scheduler (local sources) */
};

struct vhost_config {
  struct vhost_dev_config *devs;
  size_t ndevs;
  unsigned threads;    /* 0: one per online CPU */
  int log_level;       /* LOG_ERROR..LOG_DEBUG */
  uint64_t arena;      /* direct path's arena per worker; 0: the default */
  char *stats_path;    /* --stats FILE: JSON written on SIGUSR1 and at exit */
  unsigned socket_mode;      /* the devices' socket files' mode (default 0600) */
  struct privs privs;        /* -u/-g: run as this user and group once the sockets and
                              * sources are open (the sockets then belong to them) */
  struct dp_qos_config qos;  /* --qos, --device-iops, --device-bw */
};

/* Defaults: no devices, info logging, sockets for their owner only. */
void vhost_config_init(struct vhost_config *cfg);
void vhost_config_free(struct vhost_config *cfg);

/* Add a device from "SOCKET=SOURCE[,OPTION]...".  Returns 0 or -errno with a
 * message in err. */
int vhost_config_add_spec(struct vhost_config *cfg, const char *spec, char *err, size_t errlen);

/* Set one device option (ro, rw, queues=N, datapath=PATH, serial=TEXT,
 * discard=on|off, source=SOURCE, backend=file|rbd, ceph-conf=FILE, ceph-id=USER,
 * ceph-cluster=NAME, lock=exclusive, and the scheduler's weight=, reserve-iops=,
 * limit-iops=, limit-bw= as serve's exports take them; val NULL for a bare
 * flag).  Shared by the
 * command line and the config file.  Returns 0 or -EINVAL with a message. */
int vhost_dev_set_option(struct vhost_dev_config *d, const char *key, const char *val,
                         char *err, size_t errlen);

/* Set one process-wide key (threads, arena, stats, log, device,
 * socket-mode, qos, device-iops, device-bw); the command
 * line's long options go through here too.  Returns 0 or -EINVAL with a
 * message. */
int vhost_config_set_key(struct vhost_config *cfg, const char *key, const char *val,
                         char *err, size_t errlen);

/* Read a config file into cfg.  Returns 0 or -errno with "FILE:LINE: message". */
int vhost_config_load_file(struct vhost_config *cfg, const char *path, char *err, size_t errlen);

/* Every device has a source, no socket is given twice, no remote source has
 * scheduler options (it is not on a local device).  Returns 0 or -EINVAL
 * with a message. */
int vhost_config_check(const struct vhost_config *cfg, char *err, size_t errlen);

/* True when source names a remote export (nbd://, nbds://, nbd+unix://, ...). */
bool vhost_source_is_uri(const char *source);

#endif
