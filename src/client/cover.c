/* cover.c: the byte ranges one read's chunks have claimed (see cover.h): sorted
 * merged spans, inline first, then a bounded heap array, then a bitmap. */
#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "client/cover.h"

static struct sh_span *spans(const struct sh_cover *cv)
{
  return cv->heap ? cv->heap : (struct sh_span *)cv->inl;
}

/* The first span whose end is >= a (spans are sorted, disjoint, not adjacent). */
static unsigned first_ending_at_or_after(const struct sh_cover *cv, uint64_t a)
{
  const struct sh_span *s = spans(cv);
  unsigned lo = 0, hi = cv->n;
  if (hi && s[hi - 1].end < a)
    return hi; /* past the last span: chunks in order */
  while (lo < hi) {
    unsigned mid = lo + (hi - lo) / 2;
    if (s[mid].end < a)
      lo = mid + 1;
    else
      hi = mid;
  }
  return lo;
}

/* Bits [lo, hi) of a word, 0 <= lo < hi <= 64. */
static uint64_t word_mask(unsigned lo, unsigned hi)
{
  uint64_t upto = hi == 64 ? ~UINT64_C(0) : (UINT64_C(1) << hi) - 1;
  return upto & ~((UINT64_C(1) << lo) - 1);
}

/* Test (set == false) or set the bits [a, b); testing returns whether any is set. */
static bool bits_walk(uint64_t *w, uint64_t a, uint64_t b, bool set)
{
  while (a < b) {
    uint64_t wi = a / 64, base = wi * 64;
    unsigned lo = (unsigned)(a - base);
    unsigned hi = b - base >= 64 ? 64 : (unsigned)(b - base);
    uint64_t m = word_mask(lo, hi);
    if (set)
      w[wi] |= m;
    else if (w[wi] & m)
      return true;
    a = base + hi;
  }
  return false;
}

/* Move the spans into a bitmap of `total` bits. */
static int to_bitmap(struct sh_cover *cv, uint64_t total)
{
  uint64_t words = total / 64 + (total % 64 != 0);
  if (words > SIZE_MAX / sizeof(uint64_t))
    return -ENOMEM;
  uint64_t *w = calloc((size_t)words ? (size_t)words : 1, sizeof *w);
  if (!w)
    return -ENOMEM;
  const struct sh_span *s = spans(cv);
  for (unsigned i = 0; i < cv->n; i++)
    bits_walk(w, s[i].start, s[i].end, true);
  free(cv->heap);
  cv->heap = NULL;
  cv->cap = 0;
  cv->n = 0;
  cv->bits = w;
  return 0;
}

/* Room for one more span: grow the heap array up to SH_COVER_SPANS_MAX.
 * Returns 0, 1 (at the cap: use the bitmap) or -ENOMEM. */
static int make_room(struct sh_cover *cv)
{
  unsigned cap = cv->heap ? cv->cap : SH_COVER_INLINE;
  if (cv->n < cap)
    return 0;
  if (cap >= SH_COVER_SPANS_MAX)
    return 1;
  unsigned ncap = cap * 4 < SH_COVER_SPANS_MAX ? cap * 4 : SH_COVER_SPANS_MAX;
  struct sh_span *h = realloc(cv->heap, ncap * sizeof *h);
  if (!h)
    return -ENOMEM;
  if (!cv->heap)
    memcpy(h, cv->inl, cv->n * sizeof *h);
  cv->heap = h;
  cv->cap = ncap;
  return 0;
}

int sh_cover_claim(struct sh_cover *cv, uint64_t total, uint64_t rel, uint64_t len)
{
  uint64_t a = rel, b = rel + len;
  if (cv->bits) {
    if (bits_walk(cv->bits, a, b, false))
      return -EEXIST;
    bits_walk(cv->bits, a, b, true);
    return 0;
  }
  unsigned n = cv->n, i = first_ending_at_or_after(cv, a);
  struct sh_span *s = spans(cv);
  /* j: the first span ending after a; only it can start before b. */
  unsigned j = i < n && s[i].end == a ? i + 1 : i;
  if (j < n && s[j].start < b)
    return -EEXIST;
  bool left = j > i, right = j < n && s[j].start == b;
  if (left && right) {
    s[i].end = s[j].end;
    memmove(s + j, s + j + 1, (n - j - 1) * sizeof *s);
    cv->n--;
  } else if (left) {
    s[i].end = b;
  } else if (right) {
    s[j].start = a;
  } else {
    int r = make_room(cv);
    if (r < 0)
      return r;
    if (r == 1) {
      if ((r = to_bitmap(cv, total)) < 0)
        return r;
      bits_walk(cv->bits, a, b, true);
      return 0;
    }
    s = spans(cv);
    memmove(s + j + 1, s + j, (n - j) * sizeof *s);
    s[j] = (struct sh_span){ a, b };
    cv->n++;
  }
  return 0;
}

int sh_cover_has(const struct sh_cover *cv, uint64_t rel)
{
  if (cv->bits)
    return (int)(cv->bits[rel / 64] >> (rel % 64) & 1);
  unsigned i = first_ending_at_or_after(cv, rel + 1);
  return i < cv->n && spans(cv)[i].start <= rel;
}

void sh_cover_reset(struct sh_cover *cv)
{
  free(cv->heap);
  free(cv->bits);
  memset(cv, 0, sizeof *cv);
}
