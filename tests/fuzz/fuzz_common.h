/* fuzz_common.h: shared by the libFuzzer harnesses in tests/fuzz/: export
 * shapes the server's protocol code is fuzzed against, a deterministic chunker
 * (the fuzzer picks the seed, so it picks where recv() boundaries fall), and
 * FUZZ_CHECK (fuzz_check.h). */
#ifndef SHUNT_FUZZ_COMMON_H
#define SHUNT_FUZZ_COMMON_H

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/wire.h"
#include "fuzz_check.h"
#include "proto/nbd-protocol.h"
#include "proto/session.h"


/* Names and descriptions at the 4096-byte limit (NBD_MAX_STRING), to reach
 * the edges of the reply buffers; filled by fuzz_exports_init(). */
static char fuzz_long_name[NBD_MAX_STRING + 1];
static char fuzz_long_desc[2 * NBD_MAX_STRING + 1];

/* Export tables: 0 one read-write disk with base:allocation; 1 a read-only
 * export of an odd size; 2 three exports, one with an empty name and one with
 * the longest name and a description longer than any reply carries. */
static struct proto_export fuzz_exports[3][3];
static const size_t fuzz_nexports[3] = { 1, 1, 3 };

static inline void fuzz_exports_init(void)
{
  static int done;
  if (done)
    return;
  done = 1;
  memset(fuzz_long_name, 'n', NBD_MAX_STRING);
  memset(fuzz_long_desc, 'd', 2 * NBD_MAX_STRING);
  fuzz_exports[0][0] = (struct proto_export){
    .name = "disk", .description = "the disk", .size = 1 << 20, .can_trim = 1, .can_zero = 1,
    .can_fast_zero = 1, .can_flush = 1, .can_fua = 1, .can_multi_conn = 1, .can_cache = 1,
    .base_allocation = 1, .min_block = 512, .pref_block = 4096, .max_payload = NBD_DEFAULT_MAX_PAYLOAD };
  fuzz_exports[1][0] = (struct proto_export){
    .name = "ro", .size = 1000, .read_only = 1, .can_flush = 1,
    .min_block = 1, .pref_block = 4096, .max_payload = NBD_DEFAULT_MAX_PAYLOAD };
  fuzz_exports[2][0] = (struct proto_export){
    .name = "", .description = "", .size = UINT64_MAX - 4095, .can_trim = 1, .can_zero = 1,
    .base_allocation = 1, .min_block = 4096, .pref_block = 4096, .max_payload = 65536 };
  fuzz_exports[2][1] = (struct proto_export){
    .name = fuzz_long_name, .description = fuzz_long_desc, .size = 0,
    .base_allocation = 1, .min_block = 512, .pref_block = 4096, .max_payload = NBD_DEFAULT_MAX_PAYLOAD };
  fuzz_exports[2][2] = fuzz_exports[0][0];
}

/* xorshift64: chunk sizes from a fuzzer-chosen seed. */
struct fuzz_chunker {
  uint64_t s;
};

static inline void fuzz_chunker_init(struct fuzz_chunker *c, uint8_t seed)
{
  c->s = 0x9e3779b97f4a7c15ull ^ ((uint64_t)seed * 0x100000001b3ull);
}

/* Next chunk length, at most left: seed 0 delivers everything at once;
 * others mix single bytes, small pieces and large ones. */
static inline size_t fuzz_chunk(struct fuzz_chunker *c, uint8_t seed, size_t left)
{
  size_t n;
  if (seed == 0 || left == 0)
    return left;
  c->s ^= c->s << 13;
  c->s ^= c->s >> 7;
  c->s ^= c->s << 17;
  switch (c->s % 4) {
  case 0: n = 1; break;
  case 1: n = 1 + (c->s >> 8) % 16; break;
  case 2: n = 1 + (c->s >> 8) % 512; break;
  default: n = left; break;
  }
  return n < left ? n : left;
}

#endif
