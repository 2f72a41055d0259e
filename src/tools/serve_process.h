/* serve_process.h: `shunt serve` as a process, the nbdkit/qemu-nbd way:
 * --fork (detach once listening), --pidfile, --run CMD (serve while CMD runs),
 * --exit-with-parent, and -u/-g (drop privileges once the sockets are bound). */
#ifndef SHUNT_TOOLS_SERVE_PROCESS_H
#define SHUNT_TOOLS_SERVE_PROCESS_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <sys/types.h>

#include "common/privs.h"

struct server;

struct serve_process {
  /* Set from the command line. */
  bool fork;               /* --fork */
  const char *pidfile;     /* --pidfile FILE, or NULL */
  const char *run;         /* --run CMD, or NULL */
  bool exit_with_parent;   /* --exit-with-parent */
  const char *user;        /* -u USER (name or number), or NULL */
  const char *group;       /* -g GROUP (name or number), or NULL */
  /* Kept by serve_process.c. */
  struct privs privs;      /* -u/-g resolved */
  int ready_fd;            /* --fork: the pipe the waiting parent reads; -1 */
  bool pidfile_written;
  pid_t run_pid;           /* --run: the command, 0 before it starts */
  pthread_t run_waiter;
  atomic_int run_status;   /* the command's exit status; -1 while it runs */
};

/* Check the combination of settings and resolve -u/-g (before anything
 * starts).  Returns 0, or 2 (a usage error, already reported). */
int serve_process_check(struct serve_process *p, bool stdio);

/* Before the server starts: --exit-with-parent, then --fork.  Returns -1 in
 * the process that goes on to serve; in --fork's parent, which must exit
 * with it, the exit status (0 once the child listens, else the child's). */
int serve_process_start(struct serve_process *p);

/* The server's ready hook (server_config.on_ready; arg is the struct
 * serve_process): write the pid file, drop privileges, release --fork's
 * parent, start --run's command.  Returns 0 or -1 (reported). */
int serve_process_ready(struct server *srv, void *arg);

/* After the server stopped: remove the pid file; the process's exit status
 * (--run's command's, when there is one, else server_status). */
int serve_process_finish(struct serve_process *p, int server_status);

#endif
