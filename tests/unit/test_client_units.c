/* test_client_units.c: size/duration parsing and byte formatting used by the
 * client tools. */
#include <errno.h>
#include <string.h>

#include "common/units.h"
#include "tap.h"

int main(void)
{
  uint64_t v;
  ok(units_parse_size("4096", &v) == 0 && v == 4096, "plain number");
  ok(units_parse_size("64K", &v) == 0 && v == 65536, "64K");
  ok(units_parse_size("1MiB", &v) == 0 && v == 1048576, "1MiB");
  ok(units_parse_size("2g", &v) == 0 && v == UINT64_C(2) << 30, "2g");
  ok(units_parse_size("1T", &v) == 0 && v == UINT64_C(1) << 40, "1T");
  ok(units_parse_size("", &v) == -EINVAL, "empty");
  ok(units_parse_size("12x", &v) == -EINVAL, "bad suffix");
  ok(units_parse_size("99999999999999999999", &v) == -EINVAL, "overflow");
  ok(units_parse_size("17179869184G", &v) == -EINVAL, "shift overflow");
  ok(units_parse_duration_ms("5", &v) == 0 && v == 5000, "5 seconds");
  ok(units_parse_duration_ms("250ms", &v) == 0 && v == 250, "250ms");
  ok(units_parse_duration_ms("2m", &v) == 0 && v == 120000, "2m");
  ok(units_parse_duration_ms("2h", &v) == -EINVAL, "hours are not accepted");
  char b[32];
  ok(!strcmp(units_format_bytes(100, b, sizeof b), "100 B"), "100 B");
  ok(!strcmp(units_format_bytes(1536, b, sizeof b), "1.5 KiB"), "1.5 KiB");
  ok(!strcmp(units_format_bytes(UINT64_C(1) << 30, b, sizeof b), "1.0 GiB"), "1.0 GiB");
  return tap_done();
}
