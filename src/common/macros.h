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

/* The smaller / larger of a and b (each evaluated once). */
#define MIN(a, b) __extension__({ __typeof__(a) a_ = (a); __typeof__(b) b_ = (b); a_ < b_ ? a_ : b_; })
#define MAX(a, b) __extension__({ __typeof__(a) a_ = (a); __typeof__(b) b_ = (b); a_ > b_ ? a_ : b_; })

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
