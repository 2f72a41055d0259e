/* checked.h: overflow-checked arithmetic and alignment tests.
 * Every length or offset that came off the wire goes through these before use. */
#ifndef SHUNT_COMMON_CHECKED_H
#define SHUNT_COMMON_CHECKED_H

#include <stdbool.h>
#include <stdint.h>

/* True when a + b overflows uint64_t; otherwise stores the sum in *r. */
#define ck_add_overflow(a, b, r) __builtin_add_overflow((a), (b), (r))
/* True when a * b overflows; otherwise stores the product in *r. */
#define ck_mul_overflow(a, b, r) __builtin_mul_overflow((a), (b), (r))

/* True when [off, off+len) lies inside [0, size), computed without overflow. */
static inline bool range_within(uint64_t off, uint64_t len, uint64_t size)
{
  return off <= size && len <= size - off;
}

/* True when v is a multiple of align (align is a power of two, or 0/1 = any). */
static inline bool is_aligned(uint64_t v, uint64_t align)
{
  return align <= 1 || (v & (align - 1)) == 0;
}

#endif
