/* macros.h: the small helpers every layer uses: container_of, rounding to a
 * power-of-two alignment, min/max, and a test for an all-zero buffer. */
#ifndef SHUNT_COMMON_MACROS_H
#define SHUNT_COMMON_MACROS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

/* The struct of type `type` whose member `member` is at p. */
#define container_of(p, type, member) ((type *)((char *)(p) - offsetof(type, member)))

/* v rounded down / up to a multiple of align (a power of two). */
#define ROUND_DOWN(v, align) ((v) & ~((__typeof__(v))(align) - 1))
#define ROUND_UP(v, align)   ROUND_DOWN((v) + ((__typeof__(v))(align) - 1), (align))

/* The smaller / larger of a and b (each evaluated once).  The temporaries
 * get a name of their own per use, so MIN(MIN(a, b), c) does not shadow. */
#define MIN(a, b) MINMAX_(a, b, <, __COUNTER__)
#define MAX(a, b) MINMAX_(a, b, >, __COUNTER__)
#define MINMAX_(a, b, op, n) MINMAX__(a, b, op, n)
#define MINMAX__(a, b, op, n) __extension__({ \
    __typeof__(a) a_##n = (a); __typeof__(b) b_##n = (b); a_##n op b_##n ? a_##n : b_##n; })

/* True when the len bytes at p are all zero. */
static inline bool is_zero(const void *p, size_t len)
{
  const unsigned char *c = p;
  if (len == 0)
    return true;
  /* The first 16 bytes byte by byte, then the buffer against itself shifted
   * by 16: equal only if every byte equals its predecessor 16 back. */
  size_t head = len < 16 ? len : 16;
  for (size_t i = 0; i < head; i++)
    if (c[i])
      return false;
  return len <= 16 || memcmp(c, c + 16, len - 16) == 0;
}

#endif
