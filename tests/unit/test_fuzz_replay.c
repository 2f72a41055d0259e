/* test_fuzz_replay.c: replays a fuzz harness's whole corpus (tests/fuzz/corpus/
 * NAME: the seeds and every crash-* reproducer of a fixed bug) through the
 * harness, built by the normal compiler without libFuzzer, so each bug the
 * fuzzers found stays a regression test in every build (leaks included under
 * the ASan build).  One executable per harness: FUZZ_NAME and FUZZ_CORPUS are
 * set by tests/unit/meson.build. */
#include <dirent.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tap.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int cmp(const void *a, const void *b)
{
  return strcmp(*(char *const *)a, *(char *const *)b);
}

int main(void)
{
  DIR *d = opendir(FUZZ_CORPUS);
  struct dirent *e;
  char *names[4096];
  size_t n = 0, crashes = 0;

  ok(d != NULL, "corpus %s opens", FUZZ_CORPUS);
  if (!d)
    return tap_done();
  while ((e = readdir(d)) && n < sizeof names / sizeof names[0])
    if (e->d_name[0] != '.')
      names[n++] = strdup(e->d_name);
  closedir(d);
  qsort(names, n, sizeof names[0], cmp);
  for (size_t i = 0; i < n; i++) {
    char path[4096];
    FILE *f;
    uint8_t *buf;
    long len;

    snprintf(path, sizeof path, "%s/%s", FUZZ_CORPUS, names[i]);
    f = fopen(path, "rb");
    if (!f || fseek(f, 0, SEEK_END) < 0 || (len = ftell(f)) < 0 || fseek(f, 0, SEEK_SET) < 0
        || !(buf = malloc(len ? (size_t)len : 1)) || fread(buf, 1, (size_t)len, f) != (size_t)len) {
      ok(0, "%s: %s readable", FUZZ_NAME, names[i]);
      if (f)
        fclose(f);
      continue;
    }
    fclose(f);
    /* An invariant that fails aborts the process: the test fails there. */
    LLVMFuzzerTestOneInput(buf, (size_t)len);
    free(buf);
    if (!strncmp(names[i], "crash-", 6)) {
      crashes++;
      ok(1, "%s: reproducer %s runs clean", FUZZ_NAME, names[i]);
    }
    free(names[i]);
  }
  ok(n > 0, "%s: %zu corpus inputs replayed (%zu reproducers of fixed bugs)", FUZZ_NAME, n, crashes);
  return tap_done();
}
