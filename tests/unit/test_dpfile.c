/* test_dpfile.c: exports of one file share a dp_file (datapath_setup): one
 * range lock for all of them, a separate one for another file; auto writes
 * O_DIRECT unless a fixed path writes the file through the page cache
 * (dp_export_writes_direct), and TLS connections write the way the export
 * does (dp_export_tls_path); an export without datapath= is auto, one on a
 * memory backend copy.  Where O_DIRECT does not work on the test directory
 * the O_DIRECT cases are reported as skipped. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "backend/backend.h"
#include "datapath/datapath.h"
#include "datapath/dpexport.h"
#include "tap.h"

static char dir[] = "/var/tmp/shunt-dpfile.XXXXXX";
static char img1[64], img2[64];

/* Set up dx on path with datapath dp (NULL: the default). */
static int setup(struct dp_export *dx, const char *path, const char *dp, bool ro)
{
  struct backend *b = NULL;
  char err[256];
  int r = backend_open(strcmp(path, "1M") ? "file" : "memory", path, ro, &b, err, sizeof err);
  if (r < 0) {
    printf("# %s\n", err);
    return r;
  }
  r = datapath_setup(dx, b, &(struct dp_export_setup){ .name = path, .path = path, .datapath = dp,
                                                         .read_only = ro }, err, sizeof err);
  if (r < 0)
    printf("# %s\n", err);
  return r;
}

static bool direct_works(const char *path)
{
  int fd = open(path, O_RDONLY | O_DIRECT);
  if (fd < 0)
    return false;
  close(fd);
  return true;
}

int main(void)
{
  struct dp_export a, b, c, m;
  int fd;

  if (!mkdtemp(dir)) {
    ok(0, "mkdtemp: %s", strerror(errno));
    return tap_done();
  }
  snprintf(img1, sizeof img1, "%s/one.img", dir);
  snprintf(img2, sizeof img2, "%s/two.img", dir);
  for (const char *p = img1; p; p = p == img1 ? img2 : NULL) {
    fd = open(p, O_CREAT | O_RDWR, 0600);
    ok(fd >= 0 && ftruncate(fd, 1 << 20) == 0, "image %s", p);
    close(fd);
  }
  bool direct = direct_works(img1);

  /* The default: auto on a file, copy on a memory backend. */
  ok(setup(&a, img1, NULL, false) == 0 && a.datapath == &datapath_auto, "no datapath=: auto");
  ok(setup(&m, "1M", NULL, false) == 0 && m.datapath == &datapath_copy && !dp_export_writes_direct(&m)
     && dp_export_tls_path(&m) == &datapath_tls, "memory backend: copy, TLS path (reads as copy: no mapping)");
  ok(a.map != NULL, "auto maps the file");

  /* Two exports of one file share it; another file has its own. */
  ok(setup(&b, img1, "mmap", false) == 0 && b.file == a.file && b.wlock == a.wlock, "same file: one dp_file, one range lock");
  ok(setup(&c, img2, NULL, false) == 0 && c.file != a.file && c.wlock != a.wlock, "another file: its own");
  ok(!dp_export_writes_direct(&a) && dp_export_tls_path(&a) == &datapath_tls,
     "auto beside mmap (a page-cache writer): buffered writes, TLS path (writes as copy)");
  if (direct)
    ok(dp_export_writes_direct(&c) && dp_export_tls_path(&c) == &datapath_tls_direct,
       "auto alone: O_DIRECT writes, TLS writes as direct");
  else
    printf("ok %d - auto alone: O_DIRECT writes # SKIP O_DIRECT does not work in %s\n", ++tap_n, dir);
  ok(a.file->buffered_writers == 1 && a.file->refs == 2, "the file counts the mmap export as a page-cache writer");
  dp_export_close(&b);
  ok(a.file->buffered_writers == 0 && a.file->refs == 1, "closed, it no longer counts");
  dp_export_close(&c);
  dp_export_close(&a);

  /* A read-only page-cache export does not write: auto keeps O_DIRECT. */
  if (direct) {
    ok(setup(&a, img1, NULL, false) == 0 && setup(&b, img1, "copy", true) == 0 && dp_export_writes_direct(&a),
       "auto beside a read-only copy export: O_DIRECT writes");
    dp_export_close(&b);
    ok(setup(&b, img1, "direct", false) == 0 && b.wlock == a.wlock && dp_export_writes_direct(&a)
       && dp_export_writes_direct(&b) && dp_export_tls_path(&b) == &datapath_tls_direct,
       "auto beside direct: both O_DIRECT under one range lock");
    dp_export_close(&b);
    dp_export_close(&a);
    /* Closed: the next export of the file starts afresh. */
    ok(setup(&a, img1, NULL, false) == 0 && a.file->refs == 1 && a.file->buffered_writers == 0
       && a.file->direct_writers == 0, "after closing every export the file's counts start over");
    dp_export_close(&a);
  } else {
    printf("ok %d - O_DIRECT cases # SKIP O_DIRECT does not work in %s\n", ++tap_n, dir);
  }
  dp_export_close(&m);
  unlink(img1);
  unlink(img2);
  rmdir(dir);
  return tap_done();
}
