/* test_procopt.c: datapath/procopt.h: the process-wide keys serve and vhost
 * share (threads, arena, stats, log, the scheduler's), the values they
 * take, and the words they are refused in. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "common/log.h"
#include "datapath/procopt.h"
#include "tap.h"

int main(void)
{
  unsigned threads = 0;
  uint64_t arena = 0;
  char *stats = NULL, err[256];
  int level = LOG_INFO, target = LOG_TO_STDERR;
  struct dp_qos_config qos = { 0 };
  struct proc_options o = { .threads = &threads, .arena = &arena, .stats_path = &stats, .log_level = &level,
                            .log_target = &target, .qos = &qos, .qos_key = true };

  ok(proc_set_key(&o, "threads", "4", err, sizeof err) == 0 && threads == 4, "threads=4");
  ok(proc_set_key(&o, "threads", "0", err, sizeof err) == -EINVAL && threads == 4
     && !strcmp(err, "bad value '0' for 'threads'"), "threads=0 refused: %s", err);
  ok(proc_set_key(&o, "threads", "1025", err, sizeof err) == -EINVAL, "threads=1025 refused");
  ok(proc_set_key(&o, "arena", "8M", err, sizeof err) == 0 && arena == 8u << 20, "arena=8M");
  ok(proc_set_key(&o, "arena", "512K", err, sizeof err) == -EINVAL && arena == 8u << 20
     && !strcmp(err, "bad value '512K' for 'arena'"), "an arena under 1M refused: %s", err);
  ok(proc_set_key(&o, "arena", "65G", err, sizeof err) == -EINVAL, "an arena over 64G refused");
  ok(proc_set_key(&o, "stats", "/tmp/a.json", err, sizeof err) == 0 && !strcmp(stats, "/tmp/a.json"), "stats=FILE");
  ok(proc_set_key(&o, "stats", "/tmp/b.json", err, sizeof err) == 0 && !strcmp(stats, "/tmp/b.json"),
     "stats again replaces it");
  ok(proc_set_key(&o, "log", "debug", err, sizeof err) == 0 && level == LOG_DEBUG, "log=debug");
  ok(proc_set_key(&o, "log", "syslog", err, sizeof err) == 0 && target == LOG_TO_SYSLOG && level == LOG_DEBUG,
     "log=syslog sets the target, not the level");
  ok(proc_set_key(&o, "log", "loud", err, sizeof err) == -EINVAL && !strcmp(err, "bad value 'loud' for 'log'"),
     "an unknown level refused: %s", err);
  ok(proc_set_key(&o, "qos", "off", err, sizeof err) == 0 && qos.off, "qos=off");
  ok(proc_set_key(&o, "device-iops", "5000", err, sizeof err) == 0 && qos.dev.device_iops == 5000, "device-iops");
  ok(proc_set_key(&o, "device-bw", "fast", err, sizeof err) == -EINVAL
     && !strcmp(err, "bad value 'fast' for 'device-bw'"), "a bad scheduler value: %s", err);
  ok(proc_set_key(&o, "qos-key", "addr", err, sizeof err) == 0 && qos.key == DP_QOS_KEY_ADDR, "qos-key=addr");
  ok(proc_set_key(&o, "chunk", "1M", err, sizeof err) == 1 && proc_set_key(&o, "listen", ":1", err, sizeof err) == 1,
     "a key of the caller's own is left to it");

  /* vhost's: log takes a level only, and there is no qos-key. */
  o.log_target = NULL;
  o.qos_key = false;
  ok(proc_set_key(&o, "log", "syslog", err, sizeof err) == -EINVAL && !strcmp(err, "bad value 'syslog' for 'log'"),
     "without a target, log=syslog is a bad value: %s", err);
  ok(proc_set_key(&o, "log", "error", err, sizeof err) == 0 && level == LOG_ERROR, "... and a level still set");
  ok(proc_set_key(&o, "qos-key", "conn", err, sizeof err) == 1 && qos.key == DP_QOS_KEY_ADDR,
     "without qos-key, it is left to the caller (unchanged)");
  ok(proc_unknown_key("qos-key", err, sizeof err) == -EINVAL && !strcmp(err, "unknown server key 'qos-key'"),
     "the words of an unknown key: %s", err);

  free(stats);
  return tap_done();
}
