/* test_macros.c: the helpers of src/common/macros.h: container_of, rounding,
 * min/max (single evaluation, nesting) and is_zero at every length and
 * position around its 16-byte head. */
#include <stdint.h>
#include <string.h>

#include "common/macros.h"
#include "tap.h"

struct outer {
  int a;
  char pad[13];
  long member;
};

int main(void)
{
  struct outer o;
  ok(container_of(&o.member, struct outer, member) == &o, "container_of finds the struct");

  ok(ROUND_UP(UINT64_C(0), 4096) == 0 && ROUND_UP(UINT64_C(1), 4096) == 4096 &&
     ROUND_UP(UINT64_C(4096), 4096) == 4096 && ROUND_UP(UINT64_C(4097), 4096) == 8192,
     "ROUND_UP to 4096");
  ok(ROUND_DOWN(UINT64_C(4095), 4096) == 0 && ROUND_DOWN(UINT64_C(8191), 4096) == 4096,
     "ROUND_DOWN to 4096");
  uint64_t big = (UINT64_C(1) << 40) + 5;
  ok(ROUND_UP(big, 4096) == (UINT64_C(1) << 40) + 4096 && ROUND_DOWN(big, 4096) == UINT64_C(1) << 40,
     "64-bit values keep their high bits");
  uint32_t small = 513;
  ok(ROUND_UP(small, 512u) == 1024 && ROUND_DOWN(small, 512u) == 512, "32-bit values");

  int calls = 0;
  int m = MIN((calls++, 3), 5);
  ok(m == 3 && calls == 1, "MIN evaluates each argument once");
  ok(MAX(-1, 2) == 2 && MIN(-1, 2) == -1, "MAX and MIN of signed values");
  ok(MIN(MIN(7, 3), MAX(1, 2)) == 2 && MAX(MAX(1, 9), MIN(8, 4)) == 9,
     "nested MIN and MAX (no shadowed temporaries)");

  unsigned char buf[4096 + 64 + 3]; /* the longest length at the last start */
  memset(buf, 0, sizeof buf);
  ok(is_zero(buf, 0) && is_zero(buf, 1) && is_zero(buf, sizeof buf), "zero buffers are zero");
  bool all = true;
  size_t lens[] = { 1, 15, 16, 17, 31, 32, 33, 4096, 4096 + 63 };
  for (size_t k = 0; k < sizeof lens / sizeof lens[0]; k++)
    for (size_t start = 0; start < 3; start++)
      for (size_t i = 0; i < lens[k]; i++) {
        buf[start + i] = 0x80;
        all = all && !is_zero(buf + start, lens[k]) && is_zero(buf + start, i);
        buf[start + i] = 0;
      }
  ok(all, "one non-zero byte anywhere is found, at any length and alignment");
  return tap_done();
}
