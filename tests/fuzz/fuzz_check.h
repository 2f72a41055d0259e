/* fuzz_check.h: FUZZ_CHECK, an invariant of the code under test that aborts
 * with a message when it fails, so libFuzzer records the input.  Shared by
 * every harness in tests/fuzz/. */
#ifndef SHUNT_FUZZ_CHECK_H
#define SHUNT_FUZZ_CHECK_H

#include <stdio.h>
#include <stdlib.h>

/* An invariant of the code under test; a failure is a finding. */
#define FUZZ_CHECK(cond)                                                        \
  do {                                                                          \
    if (!(cond)) {                                                              \
      fprintf(stderr, "fuzz invariant failed at %s:%d: %s\n", __FILE__,         \
              __LINE__, #cond);                                                 \
      abort();                                                                  \
    }                                                                           \
  } while (0)

#endif
