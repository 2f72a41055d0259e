/* test_sourceopt.c: datapath/sourceopt.h: the options exports and vhost
 * devices share, and the words they are refused in. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "datapath/sourceopt.h"
#include "tap.h"

static const char *const backends[] = { "file", "rbd", NULL };

int main(void)
{
  bool ro = false;
  char *backend = NULL, *datapath = NULL, err[256];
  struct backend_rbd_options rbd = { 0 };
  struct sched_params qos = { 0 };
  struct source_options o = { .kind = "export ", .name = "disk", .backends = backends, .read_only = &ro,
                              .backend = &backend, .datapath = &datapath, .rbd = &rbd, .qos = &qos };

  ok(source_set_option(&o, "ro", NULL, err, sizeof err) == 0 && ro, "a bare ro sets read-only");
  ok(source_set_option(&o, "rw", NULL, err, sizeof err) == 0 && !ro, "a bare rw clears it");
  ok(source_set_option(&o, "read-only", "on", err, sizeof err) == 0 && ro, "read-only=on");
  ok(source_set_option(&o, "readonly", "maybe", err, sizeof err) == -EINVAL
     && !strcmp(err, "export 'disk': bad value 'maybe' for option 'readonly'"), "a bad flag: %s", err);
  ok(source_set_option(&o, "backend", "rbd", err, sizeof err) == 0 && !strcmp(backend, "rbd"), "backend=rbd");
  ok(source_set_option(&o, "backend", "memory", err, sizeof err) == -EINVAL && !strcmp(backend, "rbd")
     && !strcmp(err, "export 'disk': bad value 'memory' for option 'backend'"), "a backend not listed: %s", err);
  ok(source_set_option(&o, "datapath", "auto", err, sizeof err) == 0 && !strcmp(datapath, "auto"), "datapath=auto");
  ok(source_set_option(&o, "datapath", "copy", err, sizeof err) == 0 && !strcmp(datapath, "copy"), "datapath=copy");
  ok(source_set_option(&o, "datapath", "teleport", err, sizeof err) == -EINVAL, "an unknown data path");
  ok(source_set_option(&o, "backend", NULL, err, sizeof err) == 1, "a bare backend is the caller's to refuse");
  ok(source_set_option(&o, "ceph-id", "admin", err, sizeof err) == 0 && rbd.id && !strcmp(rbd.id, "admin"),
     "an rbd option");
  ok(source_set_option(&o, "weight", "5", err, sizeof err) == 0, "a scheduler option");
  ok(source_set_option(&o, "weight", "0", err, sizeof err) == -EINVAL
     && !strcmp(err, "export 'disk': bad value '0' for option 'weight'"), "a bad scheduler value: %s", err);
  ok(source_set_option(&o, "chunk", "1M", err, sizeof err) == 1, "an option of the caller's own");

  o.kind = "";
  o.name = "/run/vm.sock";
  ok(source_unknown_option(&o, "colour", err, sizeof err) == -EINVAL
     && !strcmp(err, "'/run/vm.sock': unknown option 'colour'"), "a device's unknown option: %s", err);
  o.name = NULL;
  ok(source_bad_value(&o, "queues", NULL, err, sizeof err) == -EINVAL
     && !strcmp(err, "'': bad value '' for option 'queues'"), "no name, no value: %s", err);

  free(backend);
  free(datapath);
  backend_rbd_options_free(&rbd);
  return tap_done();
}
