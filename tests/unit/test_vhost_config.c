/* test_vhost_config.c: shunt vhost's device specs (SOCKET=SOURCE[,OPTION]...),
 * its config file ([server] and [vhost SOCKET] sections, serve's format), and
 * the checks on the whole configuration. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/log.h"
#include "server/config.h"
#include "tap.h"
#include "tmptext.h"
#include "vhost/vconfig.h"

static int load(const char *text, struct vhost_config *cfg, char *err, size_t errlen)
{
  char path[TMPTEXT_PATH];
  int r;

  if (tmptext_file(text, strlen(text), path) < 0)
    return -EIO;
  vhost_config_init(cfg);
  r = vhost_config_load_file(cfg, path, err, errlen);
  unlink(path);
  return r;
}

/* A fresh config with one spec added; returns what adding it returned. */
static int spec(const char *s, struct vhost_config *cfg, char *err, size_t errlen)
{
  vhost_config_init(cfg);
  return vhost_config_add_spec(cfg, s, err, errlen);
}

/* The keys both front ends take are refused by vhost in serve's words. */
static void same_words_as_serve(void)
{
  static const char *const bad[][2] = {
    { "threads", "0" }, { "threads", "lots" }, { "arena", "512K" }, { "log", "loud" },
    { "qos", "maybe" }, { "device-iops", "-1" }, { "device-bw", "fast" }, { "colour", "blue" },
  };
  struct vhost_config v;
  struct server_config s;
  char ev[256], es[256];
  bool same = true;

  vhost_config_init(&v);
  config_init(&s);
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    int rv = vhost_config_set_key(&v, bad[i][0], bad[i][1], ev, sizeof ev);
    int rs = config_set_server_key(&s, bad[i][0], bad[i][1], es, sizeof es);
    if (rv != -EINVAL || rs != -EINVAL || strcmp(ev, es)) {
      printf("# %s = %s: vhost %d '%s', serve %d '%s'\n", bad[i][0], bad[i][1], rv, ev, rs, es);
      same = false;
    }
  }
  ok(same, "threads, arena, log, qos, device-iops, device-bw and an unknown key: refused in the same words by "
     "vhost and serve (%s)", ev);
  ok(vhost_config_set_key(&v, "log", "syslog", ev, sizeof ev) == -EINVAL
     && config_set_server_key(&s, "log", "syslog", es, sizeof es) == 0 && s.log_target == LOG_TO_SYSLOG,
     "log = syslog: serve's, not vhost's (%s)", ev);
  vhost_config_free(&v);
  config_free(&s);
}

int main(void)
{
  struct vhost_config cfg;
  char err[512];

  ok(spec("/run/vm1.sock=/srv/vm1.img", &cfg, err, sizeof err) == 0 && cfg.ndevs == 1 &&
     !strcmp(cfg.devs[0].socket, "/run/vm1.sock") && !strcmp(cfg.devs[0].source, "/srv/vm1.img") &&
     !cfg.devs[0].read_only && cfg.devs[0].discard && cfg.devs[0].queues == 0 && !cfg.devs[0].datapath,
     "plain spec: defaults (rw, discard on, queues per worker, datapath default)");
  vhost_config_free(&cfg);
  ok(spec("/s=/i,ro,queues=4,datapath=copy,serial=abc-1,discard=off", &cfg, err, sizeof err) == 0 &&
     cfg.devs[0].read_only && cfg.devs[0].queues == 4 && !strcmp(cfg.devs[0].datapath, "copy") &&
     !strcmp(cfg.devs[0].serial, "abc-1") && !cfg.devs[0].discard, "every option");
  vhost_config_free(&cfg);
  ok(spec("/s=nbd://10.0.0.5/vm2,queues=2", &cfg, err, sizeof err) == 0 &&
     vhost_source_is_uri(cfg.devs[0].source), "an NBD URI parses as a source");
  vhost_config_free(&cfg);
  ok(!vhost_source_is_uri("/srv/nbd.img") && vhost_source_is_uri("nbd+unix:///x?socket=/s") &&
     vhost_source_is_uri("nbds://h/x"), "URI recognition");
  ok(spec("/s", &cfg, err, sizeof err) == -EINVAL && strstr(err, "SOCKET=SOURCE"), "no '=': %s", err);
  vhost_config_free(&cfg);
  ok(spec("=/i", &cfg, err, sizeof err) == -EINVAL, "empty socket refused");
  vhost_config_free(&cfg);
  ok(spec("/s=", &cfg, err, sizeof err) == -EINVAL && spec("/s=,ro", &cfg, err, sizeof err) == -EINVAL,
     "empty source refused");
  vhost_config_free(&cfg);
  ok(spec("/s=/i,queues=0", &cfg, err, sizeof err) == -EINVAL && strstr(err, "queues"), "queues=0: %s", err);
  vhost_config_free(&cfg);
  ok(spec("/s=/i,queues=65", &cfg, err, sizeof err) == -EINVAL, "queues above 64 refused");
  vhost_config_free(&cfg);
  ok(spec("/s=/i,serial=123456789012345678901", &cfg, err, sizeof err) == -EINVAL && strstr(err, "20 bytes"),
     "serial of 21 bytes refused: %s", err);
  vhost_config_free(&cfg);
  ok(spec("/s=/i,serial=12345678901234567890", &cfg, err, sizeof err) == 0, "serial of 20 bytes taken");
  vhost_config_free(&cfg);
  ok(spec("/s=/i,serial=a\tb", &cfg, err, sizeof err) == -EINVAL, "serial with a control character refused");
  vhost_config_free(&cfg);
  ok(spec("/s=/i,datapath=warp", &cfg, err, sizeof err) == -EINVAL, "unknown data path refused");
  vhost_config_free(&cfg);
  ok(spec("/s=/i,colour", &cfg, err, sizeof err) == -EINVAL && strstr(err, "colour"), "unknown option: %s", err);
  vhost_config_free(&cfg);
  ok(spec("/s\n=/i", &cfg, err, sizeof err) == -EINVAL, "a newline in the socket path refused");
  vhost_config_free(&cfg);
  {
    char longpath[200];
    memset(longpath, 'a', sizeof longpath);
    longpath[0] = '/';
    memcpy(longpath + 150, "=/i", 4);
    ok(spec(longpath, &cfg, err, sizeof err) == -ENAMETOOLONG, "a socket path too long for sun_path refused");
    vhost_config_free(&cfg);
  }

  ok(load("# devices\n[server]\nthreads = 3\nlog = debug\nstats = /tmp/st.json\narena = 8M\n"
          "device = /a.sock=/a.img,ro\n[vhost /b.sock]\nsource = /b.img\nqueues = 2\nserial = b\n"
          "[vhost /c.sock]\npath = /c.img\nreadonly\ndiscard = no\n", &cfg, err, sizeof err) == 0,
     "config file loads: %s", err);
  ok(cfg.threads == 3 && cfg.log_level == LOG_DEBUG && !strcmp(cfg.stats_path, "/tmp/st.json") &&
     cfg.arena == 8u << 20, "server keys");
  ok(cfg.ndevs == 3 && cfg.devs[0].read_only && !strcmp(cfg.devs[1].socket, "/b.sock") &&
     !strcmp(cfg.devs[1].source, "/b.img") && cfg.devs[1].queues == 2 && !strcmp(cfg.devs[1].serial, "b") &&
     !strcmp(cfg.devs[2].source, "/c.img") && cfg.devs[2].read_only && !cfg.devs[2].discard,
     "devices from both forms");
  ok(vhost_config_check(&cfg, err, sizeof err) == 0, "the whole configuration passes its check");
  ok(vhost_config_add_spec(&cfg, "/b.sock=/x.img", err, sizeof err) == 0 &&
     vhost_config_check(&cfg, err, sizeof err) == -EINVAL && strstr(err, "twice"), "a socket twice: %s", err);
  vhost_config_free(&cfg);
  ok(spec("/r.sock=rbd/vm1,backend=rbd,ceph-id=gw,lock=exclusive", &cfg, err, sizeof err) == 0 &&
     !strcmp(cfg.devs[0].backend, "rbd") && !strcmp(cfg.devs[0].rbd.id, "gw") && cfg.devs[0].rbd.lock_exclusive &&
     vhost_config_check(&cfg, err, sizeof err) == 0, "an rbd source with its options");
  vhost_config_free(&cfg);
  ok(spec("/r.sock=/x.img,ceph-id=gw", &cfg, err, sizeof err) == 0 &&
     vhost_config_check(&cfg, err, sizeof err) == -EINVAL && strstr(err, "options of backend=rbd"),
     "rbd options on a file source refused: %s", err);
  vhost_config_free(&cfg);
  ok(spec("/r.sock=nbd://h/e,backend=rbd", &cfg, err, sizeof err) == 0 &&
     vhost_config_check(&cfg, err, sizeof err) == -EINVAL && strstr(err, "not a URI"),
     "backend=rbd with a URI refused: %s", err);
  vhost_config_free(&cfg);
  ok(spec("/r.sock=rbd/vm1,backend=tape", &cfg, err, sizeof err) == -EINVAL, "an unknown backend refused");
  vhost_config_free(&cfg);
  ok(load("[vhost /d.sock]\nqueues = 2\n", &cfg, err, sizeof err) == 0 &&
     vhost_config_check(&cfg, err, sizeof err) == -EINVAL && strstr(err, "no source"), "no source: %s", err);
  vhost_config_free(&cfg);
  ok(load("[export x]\npath = /x\n", &cfg, err, sizeof err) == -EINVAL
     && strstr(err, ":1: unknown section [export x] (expected [server] or [vhost SOCKET])"),
     "serve's [export] section is not a device: %s", err);
  vhost_config_free(&cfg);
  ok(load("threads\n", &cfg, err, sizeof err) == -EINVAL && strstr(err, "KEY = VALUE"), "a bare server key: %s", err);
  vhost_config_free(&cfg);
  ok(load("[server]\nlisten = :10809\n", &cfg, err, sizeof err) == -EINVAL && strstr(err, ":2: unknown server key"),
     "serve's keys are not vhost's: %s", err);
  vhost_config_free(&cfg);
  ok(load("[vhost /e.sock]\nsource = /e\nbogus = 1\n", &cfg, err, sizeof err) == -EINVAL && strstr(err, ":3:"),
     "an unknown device key names its line: %s", err);
  vhost_config_free(&cfg);
  ok(load("[vhost]\n", &cfg, err, sizeof err) == -EINVAL, "[vhost] without a socket refused");
  vhost_config_free(&cfg);
  ok(spec("/s=/i,weight=300,reserve-iops=50,limit-iops=200,limit-bw=8M", &cfg, err, sizeof err) == 0 &&
     cfg.devs[0].qos.weight == 300 && cfg.devs[0].qos.reserve_iops == 50 && cfg.devs[0].qos.limit_iops == 200 &&
     cfg.devs[0].qos.limit_bw == 8u << 20 && vhost_config_check(&cfg, err, sizeof err) == 0,
     "the scheduler's options on a file");
  vhost_config_free(&cfg);
  ok(spec("/s=/i,weight=0", &cfg, err, sizeof err) == -EINVAL && strstr(err, "weight"), "weight=0: %s", err);
  vhost_config_free(&cfg);
  ok(spec("/s=nbd://h/e,limit-iops=10", &cfg, err, sizeof err) == 0 &&
     vhost_config_check(&cfg, err, sizeof err) == -EINVAL && strstr(err, "remote"), "... refused for an NBD source: %s",
     err);
  vhost_config_free(&cfg);
  ok(load("[server]\nsocket-mode = 660\nqos = off\ndevice-bw = 100M\n[vhost /q.sock]\nsource = /q\nweight = 5\n",
          &cfg, err, sizeof err) == 0 && cfg.socket_mode == 0660 && cfg.qos.off &&
     cfg.qos.dev.device_bw == 100u << 20 && cfg.devs[0].qos.weight == 5, "socket-mode and scheduler keys in a file");
  vhost_config_free(&cfg);
  vhost_config_init(&cfg);
  ok(cfg.socket_mode == 0600 && vhost_config_set_key(&cfg, "socket-mode", "0", err, sizeof err) == -EINVAL &&
     vhost_config_set_key(&cfg, "qos-key", "addr", err, sizeof err) == -EINVAL, "sockets 0600 by default; "
     "socket-mode 0 and qos-key refused");
  vhost_config_free(&cfg);
  same_words_as_serve();
  return tap_done();
}
