/* test_config.c: export specs (NAME=PATH[,OPTION]...), the config file
 * format of docs/config.md, value parsers, and HOST:PORT splitting. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/log.h"
#include "common/parse.h"
#include "datapath/qosopt.h"
#include "server/config.h"
#include "server/export.h"
#include "server/listener.h"
#include "tap.h"
#include "tmptext.h"

/* Load len bytes of text (which may hold NUL bytes) as a config file. */
static int load_n(const char *text, size_t len, struct server_config *cfg, char *err, size_t errlen)
{
  char path[TMPTEXT_PATH];
  int r;

  if (tmptext_file(text, len, path) < 0)
    return -EIO;
  config_init(cfg);
  r = config_load_file(cfg, path, err, errlen);
  unlink(path);
  return r;
}

static int load(const char *text, struct server_config *cfg, char *err, size_t errlen)
{
  return load_n(text, strlen(text), cfg, err, errlen);
}

int main(void)
{
  struct export_config e;
  struct server_config cfg;
  char err[512], host[64], port[16];
  uint64_t v;
  bool b;

  ok(export_parse_spec("disk=/srv/d.img", &e, err, sizeof err) == 0 && !strcmp(e.name, "disk")
     && !strcmp(e.path, "/srv/d.img") && !e.read_only && !e.backend, "plain spec");
  export_config_free(&e);
  ok(export_parse_spec("logs=/srv/l.img,ro,desc=the logs,datapath=copy", &e, err, sizeof err) == 0
     && e.read_only && !strcmp(e.description, "the logs") && !strcmp(e.datapath, "copy"), "spec with options");
  export_config_free(&e);
  ok(export_parse_spec("m=64M,backend=memory", &e, err, sizeof err) == 0 && !strcmp(e.backend, "memory"),
     "memory backend spec");
  export_config_free(&e);
  ok(export_parse_spec("v=rbd/vm1@snap,backend=rbd,ceph-conf=/etc/c.conf,ceph-id=gw,ceph-cluster=east,lock=exclusive",
                       &e, err, sizeof err) == 0 && !strcmp(e.backend, "rbd") && !strcmp(e.path, "rbd/vm1@snap")
     && !strcmp(e.rbd.conf, "/etc/c.conf") && !strcmp(e.rbd.id, "gw") && !strcmp(e.rbd.cluster, "east")
     && e.rbd.lock_exclusive, "rbd backend spec with its options");
  export_config_free(&e);
  ok(export_parse_spec("v=rbd/vm1,backend=rbd,lock=shared", &e, err, sizeof err) == -EINVAL && strstr(err, "lock"),
     "lock= other than exclusive or auto refused: %s", err);
  ok(export_parse_spec("v=rbd/vm1,backend=rbd,ceph-id", &e, err, sizeof err) == -EINVAL && strstr(err, "needs a value"),
     "ceph-id without a value refused: %s", err);
  ok(export_parse_spec("v=rbd/vm1,backend=rbd,ceph-conf=", &e, err, sizeof err) == -EINVAL && strstr(err, "empty"),
     "an empty ceph-conf refused: %s", err);
  ok(export_parse_spec("x=/a,bogus", &e, err, sizeof err) == -EINVAL && strstr(err, "bogus"), "unknown option refused: %s", err);
  ok(export_parse_spec("x=/a,datapath=warp", &e, err, sizeof err) == -EINVAL, "unknown data path refused");
  ok(export_parse_spec("x=/a,backend=tape", &e, err, sizeof err) == -EINVAL, "unknown backend refused");
  ok(export_parse_spec("=/a", &e, err, sizeof err) == -EINVAL, "empty name refused");
  ok(export_parse_spec("noequals", &e, err, sizeof err) == -EINVAL, "missing '=' refused");
  ok(export_parse_spec("x=,ro", &e, err, sizeof err) == -EINVAL, "missing path refused");

  ok(load("# comment\nlisten = 127.0.0.1:1234\nlisten=[::1]:1234\nunix = /tmp/s\nthreads = 3\nlog = debug\n"
          "max-inflight = 128M\nexport = a=/a,ro\n\n[export b]\npath = /b\ndescription = with, commas\nro = no\n"
          "[export c]\nbackend = memory\npath = 1G\nreadonly\n", &cfg, err, sizeof err) == 0, "config file loads: %s", err);
  ok(cfg.nlisten == 2 && !strcmp(cfg.listen[1], "[::1]:1234") && cfg.nunix == 1 && cfg.threads == 3
     && cfg.log_level == LOG_DEBUG && cfg.max_inflight == 128u << 20, "server keys");
  ok(cfg.nexports == 3 && cfg.exports[0].read_only && !strcmp(cfg.exports[1].name, "b")
     && !strcmp(cfg.exports[1].description, "with, commas") && !cfg.exports[1].read_only
     && !strcmp(cfg.exports[2].backend, "memory") && cfg.exports[2].read_only, "exports from both forms");
  config_free(&cfg);
  ok(load("chunk = 64K\narena = 8M\nstats = /tmp/st.json\n[export d]\npath = /d\ndatapath = auto\nchunk = 1M\n",
          &cfg, err, sizeof err) == 0 && cfg.chunk == 64u << 10 && cfg.arena == 8u << 20
     && !strcmp(cfg.stats_path, "/tmp/st.json") && !strcmp(cfg.exports[0].datapath, "auto")
     && cfg.exports[0].chunk == 1u << 20, "data path keys: chunk, arena, stats, datapath=auto, export chunk: %s", err);
  config_free(&cfg);
  ok(export_parse_spec("x=/a,datapath=splice,chunk=4K", &e, err, sizeof err) == 0 && e.chunk == 4096
     && !strcmp(e.datapath, "splice"), "spec with datapath=splice,chunk=4K");
  export_config_free(&e);
  ok(export_parse_spec("x=/a,chunk=5000", &e, err, sizeof err) == -EINVAL
     && export_parse_spec("x=/a,chunk=64M", &e, err, sizeof err) == -EINVAL, "chunk not a multiple of 4K, or above 32M, refused");
  ok(load("chunk = 3K\n", &cfg, err, sizeof err) < 0, "bad server chunk refused");
  config_free(&cfg);
  config_init(&cfg);
  ok(cfg.send_timeout == 60 && cfg.memory_budget == 0, "defaults: send timeout 60 s, memory budget from the RAM");
  config_free(&cfg);
  ok(load("send-timeout = 5\nmemory-budget = 1G\n", &cfg, err, sizeof err) == 0 && cfg.send_timeout == 5
     && cfg.memory_budget == 1u << 30, "send-timeout and memory-budget keys: %s", err);
  config_free(&cfg);
  ok(load("send-timeout = 0\n", &cfg, err, sizeof err) == 0 && cfg.send_timeout == 0, "send-timeout 0: never");
  config_free(&cfg);
  ok(load("memory-budget = 32M\n", &cfg, err, sizeof err) < 0 && load("send-timeout = 1d\n", &cfg, err, sizeof err) < 0,
     "memory-budget below 64M, or a send-timeout that is no number, refused");
  config_free(&cfg);
  ok(load("[export a]\nro\n", &cfg, err, sizeof err) < 0 && strstr(err, "no path"), "export without path: %s", err);
  config_free(&cfg);
  ok(load("threads = lots\n", &cfg, err, sizeof err) < 0 && strstr(err, ":1:"), "bad value names the line: %s", err);
  config_free(&cfg);
  ok(load("[bogus]\n", &cfg, err, sizeof err) < 0
     && strstr(err, ":1: unknown section [bogus] (expected [server] or [export NAME])"), "unknown section refused: %s", err);
  config_free(&cfg);
  ok(load("[exportx]\n", &cfg, err, sizeof err) < 0 && strstr(err, "unknown section [exportx]"),
     "a section kind without a blank before the name: %s", err);
  config_free(&cfg);
  ok(load("[export a]\npath = /a\n[server]\nro\n", &cfg, err, sizeof err) < 0 && strstr(err, ":4: expected KEY = VALUE"),
     "[server] after an export: its lines are the server's again: %s", err);
  config_free(&cfg);
  ok(load("threads = 2\n[export  a]\npath = /a\nro\n", &cfg, err, sizeof err) == 0 && cfg.nexports == 1
     && !strcmp(cfg.exports[0].name, "a") && cfg.exports[0].read_only && cfg.threads == 2,
     "[export  a]: blanks before the name skipped, a bare key in an export: %s", err);
  config_free(&cfg);
  ok(load("[export a]\npath=/a\n[export a]\npath=/b\n", &cfg, err, sizeof err) < 0 && strstr(err, "twice"),
     "duplicate export refused");
  config_free(&cfg);

  /* Anything but a regular file is refused (a directory read as empty). */
  config_init(&cfg);
  ok(config_load_file(&cfg, "/tmp", err, sizeof err) == -EINVAL && strstr(err, "not a regular file"),
     "a directory as config file refused: %s", err);
  config_free(&cfg);
  config_init(&cfg);
  ok(config_load_file(&cfg, "/dev/null", err, sizeof err) == -EINVAL && strstr(err, "not a regular file"),
     "a device as config file refused: %s", err);
  config_free(&cfg);
  ok(load_n("threads = 2\nlisten = 1\0002\n", 25, &cfg, err, sizeof err) == -EINVAL && strstr(err, ":2: NUL byte"),
     "a NUL byte is named, with its line: %s", err);
  config_free(&cfg);
  {
    char big[9000];
    memset(big, '#', sizeof big - 2);
    big[sizeof big - 2] = '\n';
    big[sizeof big - 1] = '\0';
    ok(load(big, &cfg, err, sizeof err) == -EINVAL && strstr(err, ":1: line too long"), "long line: %s", err);
    config_free(&cfg);
  }
  ok(load("threads = 2", &cfg, err, sizeof err) == 0 && cfg.threads == 2, "last line without newline");
  config_free(&cfg);
  ok(load("[export a\033[31mb]\npath = /a\n", &cfg, err, sizeof err) == -EINVAL &&
     strstr(err, ":1: export name") && !strchr(err, '\033'), "export section name with control characters refused: %s", err);
  config_free(&cfg);
  ok(load("[export d\xc3\xafsk]\npath = /a\n", &cfg, err, sizeof err) == 0 && !strcmp(cfg.exports[0].name, "d\xc3\xafsk"),
     "UTF-8 export name accepted");
  config_free(&cfg);
  ok(export_parse_spec("a\nshunt: forged=/a", &e, err, sizeof err) == -EINVAL && !strchr(err, '\n'),
     "export name with a newline refused: %s", err);
  ok(export_parse_spec("a\xff=/a", &e, err, sizeof err) == -EINVAL, "export name with invalid UTF-8 refused");
  ok(export_parse_spec("a\xc0\xaf=/a", &e, err, sizeof err) == -EINVAL, "overlong UTF-8 refused");
  ok(export_parse_spec("a\x7f=/a", &e, err, sizeof err) == -EINVAL, "DEL refused");
  ok(export_parse_spec("\xe2\x82\xac=/a", &e, err, sizeof err) == 0, "a euro sign is a fine name");
  export_config_free(&e);

  ok(parse_size("64M", &v) == 0 && v == 64u << 20, "64M");
  ok(parse_size("1GiB", &v) == 0 && v == 1u << 30, "1GiB");
  ok(parse_size("4096", &v) == 0 && v == 4096, "4096");
  ok(parse_size("16E", &v) == -ERANGE, "16E overflows");
  ok(parse_size("1.5G", &v) < 0 && parse_size("", &v) < 0 && parse_size("-1", &v) < 0, "junk refused");
  ok(parse_bool("yes", &b) == 0 && b && parse_bool("off", &b) == 0 && !b && parse_bool("maybe", &b) < 0, "booleans");
  ok(parse_flag(NULL, &b) == 0 && b && parse_flag("off", &b) == 0 && !b && parse_flag("maybe", &b) < 0,
     "flags: bare is true, else a boolean");
  {
    unsigned m;
    int lvl;
    ok(parse_mode("600", &m) == 0 && m == 0600 && parse_mode("0660", &m) == 0 && m == 0660, "modes in octal");
    ok(parse_mode("", &m) < 0 && parse_mode("8", &m) < 0 && parse_mode("1000", &m) < 0 && parse_mode("-1", &m) < 0,
       "bad modes refused");
    ok(log_parse_level("debug", &lvl) == 0 && lvl == LOG_DEBUG && log_parse_level("error", &lvl) == 0
       && lvl == LOG_ERROR && log_parse_level("loud", &lvl) < 0, "log levels by name");
  }
  {
    struct sched_params p = { 0 };
    struct dp_qos_config q = { 0 };
    ok(qos_set_flow_option(&p, "weight", "7") == 0 && p.weight == 7 && qos_set_flow_option(&p, "limit-bw", "4M") == 0
       && p.limit_bw == 4u << 20 && qos_set_flow_option(&p, "reserve-iops", "10") == 0 && p.reserve_iops == 10,
       "scheduler flow options");
    ok(qos_set_flow_option(&p, "weight", "0") == -EINVAL && qos_set_flow_option(&p, "weight", NULL) == -EINVAL
       && qos_set_flow_option(&p, "queues", "2") == -ENOENT, "... bad values, and other keys left to the caller");
    ok(qos_set_server_key(&q, "qos", "off") == 0 && q.off && qos_set_server_key(&q, "device-iops", "5000") == 0
       && q.dev.device_iops == 5000 && qos_set_server_key(&q, "qos-key", "addr") == 0 && q.key == DP_QOS_KEY_ADDR
       && qos_set_server_key(&q, "threads", "2") == -ENOENT, "scheduler server keys");
  }

  ok(listener_split("127.0.0.1:10809", host, sizeof host, port, sizeof port) == 0 && !strcmp(host, "127.0.0.1")
     && !strcmp(port, "10809"), "v4 host:port");
  ok(listener_split("[::1]:99", host, sizeof host, port, sizeof port) == 0 && !strcmp(host, "::1")
     && !strcmp(port, "99"), "[v6]:port");
  ok(listener_split(":77", host, sizeof host, port, sizeof port) == 0 && !host[0] && !strcmp(port, "77"),
     ":port means all addresses");
  ok(listener_split("localhost", host, sizeof host, port, sizeof port) == 0 && !strcmp(port, "10809"),
     "default port");
  ok(listener_split("10810", host, sizeof host, port, sizeof port) == 0 && !host[0] && !strcmp(port, "10810"),
     "a bare number is a port on all addresses");
  ok(listener_split("99999", host, sizeof host, port, sizeof port) < 0, "a bare number out of range refused");
  ok(listener_split("::1:80", host, sizeof host, port, sizeof port) < 0, "bare v6 refused");
  ok(listener_split("h:99999", host, sizeof host, port, sizeof port) < 0, "port out of range refused");
  {
    struct listen_set set = { 0 };
    ok(listener_open_tcp(&set, "", err, sizeof err) == -EINVAL && set.n == 0 && strstr(err, "empty"),
       "--listen '' refused (it would mean every address): %s", err);
    listener_close_all(&set);
  }
  /* What a reload compares: everything but the scheduler's options. */
  struct export_config e2;
  ok(export_parse_spec("x=/a,ro,datapath=copy,weight=5,limit-iops=10", &e, err, sizeof err) == 0
     && export_parse_spec("x=/a,ro,datapath=copy,weight=300,limit-bw=1M", &e2, err, sizeof err) == 0
     && export_config_same(&e, &e2), "reload: only weight=/limit-*= differ: the same export");
  export_config_free(&e2);
  ok(export_parse_spec("x=/a,ro,datapath=splice,weight=5", &e2, err, sizeof err) == 0
     && !export_config_same(&e, &e2), "reload: another data path: a changed export");
  export_config_free(&e2);
  ok(export_parse_spec("x=/b,ro,datapath=copy", &e2, err, sizeof err) == 0 && !export_config_same(&e, &e2),
     "reload: another path: a changed export");
  export_config_free(&e2);
  ok(export_parse_spec("x=/a,datapath=copy", &e2, err, sizeof err) == 0 && !export_config_same(&e, &e2),
     "reload: read-only dropped: a changed export");
  export_config_free(&e2);
  ok(export_parse_spec("x=/a,ro,datapath=copy,allow=127.0.0.1", &e2, err, sizeof err) == 0
     && !export_config_same(&e, &e2), "reload: an access rule added: a changed export");
  export_config_free(&e2);
  export_config_free(&e);
  ok(load("[export x]\npath = /a\nro\ndatapath = copy\nweight = 7\n", &cfg, err, sizeof err) == 0
     && export_parse_spec("x=/a,ro,datapath=copy", &e, err, sizeof err) == 0
     && export_config_same(&cfg.exports[0], &e), "an [export] section and a spec saying the same are the same export");
  export_config_free(&e);
  config_free(&cfg);
  struct server_config c2;
  const char *keys[4];
  ok(load("threads = 2\nlisten = :1\n[export x]\npath = /a\n", &cfg, err, sizeof err) == 0
     && load("threads = 3\nlisten = :1\n[export y]\npath = /b\n", &c2, err, sizeof err) == 0
     && config_server_diff(&cfg, &c2, keys, 4) == 1 && !strcmp(keys[0], "threads"),
     "server-wide differences: only threads (the exports are not server-wide)");
  config_free(&c2);
  config_free(&cfg);
  return tap_done();
}
