/* test_client_cover.c: the claimed-range set libshunt keeps per read (cover.c)
 * against a byte-per-byte reference: chunkings in order, in reverse, shuffled
 * (past the inline spans, the heap spans and into the bitmap), and random
 * claims of which every overlap must be refused, whatever the mode. */
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "client/cover.h"
#include "tap.h"

/* Claim through cv and through ref; report any disagreement. */
static bool both_claim(struct sh_cover *cv, unsigned char *ref, uint64_t total, uint64_t a,
                       uint64_t len, int *err)
{
  bool overlap = false;
  for (uint64_t k = a; k < a + len; k++)
    overlap |= ref[k];
  int r = sh_cover_claim(cv, total, a, len);
  *err = r;
  if (r == 0 && !overlap)
    memset(ref + a, 1, len);
  return overlap ? r == -EEXIST : r == 0;
}

static bool same_bytes(const struct sh_cover *cv, const unsigned char *ref, uint64_t total)
{
  for (uint64_t k = 0; k < total; k++)
    if (sh_cover_has(cv, k) != ref[k])
      return false;
  return true;
}

/* Cut [0, total) into n pieces at random, claim them in `order`
 * (0 in order, 1 reversed, 2 shuffled); every claim must succeed. */
static bool partition(unsigned seed, uint64_t total, unsigned n, int order, bool *bitmap)
{
  uint64_t *cut = malloc((n + 1) * sizeof *cut);
  unsigned *idx = malloc(n * sizeof *idx);
  unsigned char *ref = calloc(1, total);
  struct sh_cover cv = { 0 };
  cut[0] = 0;
  cut[n] = total;
  for (unsigned i = 1; i < n; i++)
    cut[i] = (uint64_t)i * total / n + (total / n >= 4 ? (uint64_t)rand_r(&seed) % 3 : 0);
  for (unsigned i = 0; i < n; i++)
    idx[i] = order == 1 ? n - 1 - i : i;
  if (order == 2)
    for (unsigned i = n - 1; i > 0; i--) {
      unsigned k = (unsigned)rand_r(&seed) % (i + 1), t = idx[i];
      idx[i] = idx[k];
      idx[k] = t;
    }
  bool good = true;
  for (unsigned i = 0; i < n && good; i++) {
    int e;
    uint64_t a = cut[idx[i]], b = cut[idx[i] + 1];
    good = b > a && both_claim(&cv, ref, total, a, b - a, &e) && e == 0;
  }
  good = good && same_bytes(&cv, ref, total);
  /* Every byte is claimed now: any further claim overlaps. */
  good = good && sh_cover_claim(&cv, total, total / 2, 1) == -EEXIST &&
         sh_cover_claim(&cv, total, 0, total) == -EEXIST;
  *bitmap = cv.bits != NULL;
  sh_cover_reset(&cv);
  free(cut);
  free(idx);
  free(ref);
  return good;
}

int main(void)
{
  bool bm;
  ok(partition(1, 100000, 200, 0, &bm) && !bm, "200 chunks in order: claimed, stays in spans");
  ok(partition(2, 100000, 200, 1, &bm) && !bm, "200 chunks in reverse: claimed, stays in spans");
  ok(partition(3, 5000, 3, 2, &bm) && !bm, "3 chunks shuffled");
  ok(partition(4, 100000, 60, 2, &bm) && !bm, "60 chunks shuffled: heap spans");
  ok(partition(5, 300000, 2000, 2, &bm) && bm, "2000 chunks shuffled: bitmap mode");
  ok(partition(6, 4097, 4097, 2, &bm) && bm, "4097 one-byte chunks shuffled");

  /* Random claims, overlapping or not, checked against the reference in every
   * mode: a claim succeeds exactly when none of its bytes was claimed. */
  int bad = 0, refused = 0, modes_bitmap = 0;
  for (unsigned seed = 1; seed <= 300; seed++) {
    unsigned s = seed;
    uint64_t total = 1 + (uint64_t)rand_r(&s) % 3000;
    unsigned char *ref = calloc(1, total);
    struct sh_cover cv = { 0 };
    for (int k = 0; k < 400; k++) {
      uint64_t a = (uint64_t)rand_r(&s) % total;
      uint64_t len = 1 + (uint64_t)rand_r(&s) % (k % 3 == 0 ? 40 : 4);
      if (len > total - a)
        len = total - a;
      int e;
      if (!both_claim(&cv, ref, total, a, len, &e))
        bad++;
      refused += e == -EEXIST;
    }
    if (!same_bytes(&cv, ref, total))
      bad++;
    modes_bitmap += cv.bits != NULL;
    sh_cover_reset(&cv);
    free(ref);
  }
  ok(bad == 0 && refused > 1000 && modes_bitmap > 50 && modes_bitmap < 300,
     "random claims: %d disagreements with the reference, %d overlaps refused, %d sets went "
     "to the bitmap", bad, refused, modes_bitmap);

  /* Merging: adjacent claims on both sides fuse into one span. */
  struct sh_cover cv = { 0 };
  ok(sh_cover_claim(&cv, 100, 0, 10) == 0 && sh_cover_claim(&cv, 100, 20, 10) == 0 &&
     sh_cover_claim(&cv, 100, 10, 10) == 0 && cv.n == 1 && cv.inl[0].start == 0 &&
     cv.inl[0].end == 30, "adjacent claims merge into one span");
  ok(sh_cover_claim(&cv, 100, 29, 2) == -EEXIST && sh_cover_claim(&cv, 100, 30, 70) == 0 &&
     cv.n == 1 && sh_cover_has(&cv, 99) && sh_cover_claim(&cv, 100, 0, 1) == -EEXIST,
     "a claim straddling the end is refused; the rest fills up");
  sh_cover_reset(&cv);
  ok(cv.n == 0 && !cv.heap && !cv.bits && sh_cover_claim(&cv, 100, 0, 100) == 0,
     "reset forgets every claim");
  sh_cover_reset(&cv);
  return tap_done();
}
