/* cover.h: which bytes of one read its structured chunks have claimed, so that
 * a chunk overlapping an earlier one (spec, "Structured reply chunk message
 * types": content chunks MUST NOT overlap an earlier content or error chunk) is
 * caught before its bytes land in the caller's buffer.
 *
 * Claims are kept as sorted, disjoint spans with neighbours merged: chunks in
 * order, in reverse order, or a few out of order stay in a handful of inline
 * spans (no allocation, a few comparisons per chunk).  Past SH_COVER_SPANS_MAX
 * disjoint spans the set turns into a bitmap of one bit per request byte, whose
 * size (length / 8) is bounded by the length the caller asked for, never by
 * what the server sends. */
#ifndef SHUNT_CLIENT_COVER_H
#define SHUNT_CLIENT_COVER_H

#include <stdint.h>

#define SH_COVER_INLINE 4        /* spans inside the request itself */
#define SH_COVER_SPANS_MAX 128   /* then a heap array up to this many, then bits */

struct sh_span {
  uint64_t start, end;           /* [start, end) relative to the request */
};

struct sh_cover {
  unsigned n;                    /* spans in use */
  unsigned cap;                  /* heap spans allocated (0: inline) */
  struct sh_span *heap;          /* NULL while the inline array suffices */
  uint64_t *bits;                /* non-NULL: bitmap mode (spans unused) */
  struct sh_span inl[SH_COVER_INLINE];
};

/* Claim [rel, rel + len) of a request of `total` bytes (the caller has checked
 * that it lies inside).  Returns 0, -EEXIST if any byte of it was claimed
 * before (nothing is claimed then), or -ENOMEM. */
int sh_cover_claim(struct sh_cover *cv, uint64_t total, uint64_t rel, uint64_t len);

/* Whether byte rel was claimed. */
int sh_cover_has(const struct sh_cover *cv, uint64_t rel);

/* Forget every claim and free what was allocated (a retry, or completion). */
void sh_cover_reset(struct sh_cover *cv);

#endif
