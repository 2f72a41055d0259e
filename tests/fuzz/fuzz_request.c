/* fuzz_request.c: libFuzzer harness for transmission request parsing and
 * validation (proto_request_decode + proto_request_check) and the reply
 * encoders, against several export shapes and sessions (simple, structured,
 * extended; with and without base:allocation and strict block sizes).
 * Input: byte 0 = export (bits 0-1), headers (bits 2-3: simple, structured,
 * extended, extended), base:allocation (bit 4), strict alignment (bit 5);
 * the rest = a stream of requests with their payloads. */
#include "fuzz_requests.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
  static const struct { int table, idx; } shapes[4] = { { 0, 0 }, { 1, 0 }, { 2, 0 }, { 2, 1 } };
  struct proto_session s;
  uint8_t c;

  if (size < 1)
    return 0;
  fuzz_exports_init();
  c = data[0];
  memset(&s, 0, sizeof s);
  s.export = &fuzz_exports[shapes[c & 3].table][shapes[c & 3].idx];
  s.export_index = (size_t)shapes[c & 3].idx;
  s.structured = ((c >> 2) & 3) == 1;
  s.extended = ((c >> 2) & 3) >= 2;
  s.eflags = proto_export_eflags(s.export, s.structured || s.extended);
  s.meta_base_allocation = (c & 0x10) && s.export->base_allocation && (s.structured || s.extended);
  s.strict_block_size = c & 0x20;
  fuzz_requests(&s, data + 1, size - 1);
  return 0;
}
