/* tap.h: a tiny TAP producer for unit tests; tests/run.sh counts the lines.
 * Usage: ok(cond, "what"); ... return tap_done(); */
#ifndef SHUNT_TESTS_TAP_H
#define SHUNT_TESTS_TAP_H

#include <stdio.h>

static int tap_n, tap_failed;

#define ok(cond, ...)                                                   \
  do {                                                                  \
    int ok_c_ = !!(cond);                                               \
    printf("%s %d - ", ok_c_ ? "ok" : "not ok", ++tap_n);               \
    printf(__VA_ARGS__);                                                \
    printf("\n");                                                       \
    if (!ok_c_) {                                                       \
      tap_failed++;                                                     \
      printf("#   failed at %s:%d: %s\n", __FILE__, __LINE__, #cond);   \
    }                                                                   \
    fflush(stdout);                                                     \
  } while (0)

static inline int tap_done(void)
{
  printf("1..%d\n", tap_n);
  return tap_failed ? 1 : 0;
}

#endif
