/* test_json.c: the JSON writer (src/common/json.c): layouts and nesting,
 * string escaping, numbers, the FILE and buffer outputs giving the same text,
 * and misuse reported by json_finish(). */
#include <errno.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "common/json.h"
#include "tap.h"

/* The report of a copy-like tool, the shapes the tools write. */
static void sample(struct json *j)
{
  json_object(j, NULL, JSON_BLOCK);
  json_string(j, "name", "disk \"a\"");
  json_uint(j, "size", UINT64_MAX);
  json_int(j, "delta", INT64_MIN);
  json_double(j, "seconds", 1.23456, 3);
  json_bool(j, "flushed", true);
  json_null(j, "error");
  json_object(j, "latency_us", JSON_LINE);
  json_uint(j, "p50", 12);
  json_uint(j, "max", 99);
  json_end(j);
  json_array(j, "map", JSON_BLOCK);
  json_object(j, NULL, JSON_LINE);
  json_uint(j, "offset", 0);
  json_end(j);
  json_object(j, NULL, JSON_LINE);
  json_uint(j, "offset", 4096);
  json_end(j);
  json_end(j);
  json_array(j, "empty", JSON_BLOCK);
  json_end(j);
  json_end(j);
}

static const char sample_text[] =
  "{\n"
  "  \"name\": \"disk \\\"a\\\"\",\n"
  "  \"size\": 18446744073709551615,\n"
  "  \"delta\": -9223372036854775808,\n"
  "  \"seconds\": 1.235,\n"
  "  \"flushed\": true,\n"
  "  \"error\": null,\n"
  "  \"latency_us\": { \"p50\": 12, \"max\": 99 },\n"
  "  \"map\": [\n"
  "    { \"offset\": 0 },\n"
  "    { \"offset\": 4096 }\n"
  "  ],\n"
  "  \"empty\": [\n"
  "  ]\n"
  "}\n";

/* One string value written alone, through the buffer writer (without the
 * newline that ends a top-level value). */
static const char *string_json(const char *s)
{
  static char out[256];
  struct json j;
  json_init_buffer(&j);
  json_string(&j, NULL, s);
  snprintf(out, sizeof out, "%s", json_finish(&j) == 0 && j.buf ? j.buf : "(error)\n");
  json_free(&j);
  out[strcspn(out, "\n")] = '\0';
  return out;
}

static const char *double_json(double v, int digits)
{
  static char out[400];
  struct json j;
  json_init_buffer(&j);
  json_double(&j, NULL, v, digits);
  snprintf(out, sizeof out, "%s", json_finish(&j) == 0 && j.buf ? j.buf : "(error)\n");
  json_free(&j);
  out[strcspn(out, "\n")] = '\0';
  return out;
}

int main(void)
{
  struct json j;

  json_init_buffer(&j);
  sample(&j);
  ok(json_finish(&j) == 0, "a nested report finishes without error");
  ok(j.buf && strcmp(j.buf, sample_text) == 0, "block and line layouts, nesting, every kind of value");
  if (j.buf && strcmp(j.buf, sample_text) != 0)
    printf("# got: %s", j.buf);
  ok(j.len == strlen(sample_text), "len counts the text (%zu)", j.len);
  json_free(&j);

  char fbuf[1024] = { 0 };
  FILE *f = fmemopen(fbuf, sizeof fbuf - 1, "w");
  json_init_file(&j, f);
  sample(&j);
  ok(json_finish(&j) == 0, "the FILE writer finishes without error");
  fclose(f);
  ok(strcmp(fbuf, sample_text) == 0, "the FILE writer writes the same text");

  /* Escaping. */
  ok(!strcmp(string_json("plain"), "\"plain\""), "plain string");
  ok(!strcmp(string_json("a\\b\"c"), "\"a\\\\b\\\"c\""), "backslash and quote escaped: %s",
     string_json("a\\b\"c"));
  ok(!strcmp(string_json("l1\nl2\t\x01"), "\"l1\\u000al2\\u0009\\u0001\""),
     "control characters as \\u00XX: %s", string_json("l1\nl2\t\x01"));
  ok(!strcmp(string_json("caf\xc3\xa9 \xe2\x82\xac"), "\"caf\xc3\xa9 \xe2\x82\xac\""),
     "valid UTF-8 kept as is");
  ok(!strcmp(string_json("a\xff" "b\xc3"), "\"a\\ufffdb\\ufffd\""),
     "invalid UTF-8 (a stray byte, a cut sequence) as \\ufffd: %s", string_json("a\xff" "b\xc3"));
  ok(!strcmp(string_json(""), "\"\""), "empty string");
  ok(!strcmp(string_json(NULL), "null"), "NULL string is null");
  json_init_buffer(&j);
  json_object(&j, NULL, JSON_LINE);
  json_uint(&j, "we\"ird\n", 1);
  json_end(&j);
  ok(json_finish(&j) == 0 && !strcmp(j.buf, "{ \"we\\\"ird\\u000a\": 1 }\n"), "keys are escaped too");
  json_free(&j);

  /* Numbers. */
  ok(!strcmp(double_json(2.5, 1), "2.5"), "double with 1 digit");
  ok(!strcmp(double_json(1e6 / 3, 2), "333333.33"), "double with 2 digits");
  ok(!strcmp(double_json(0, 3), "0.000"), "zero with 3 digits");
  ok(!strcmp(double_json(-1.5, 0), "-2"), "0 digits rounds to an integer: %s", double_json(-1.5, 0));
  ok(!strcmp(double_json(NAN, 3), "null"), "NaN is null");
  ok(!strcmp(double_json(-INFINITY, 3), "null"), "infinity is null");
  ok(strlen(double_json(1e300, 1)) > 300, "the largest doubles fit");

  /* Misuse. */
  json_init_buffer(&j);
  json_object(&j, NULL, JSON_BLOCK);
  json_uint(&j, NULL, 1);
  ok(json_finish(&j) == -EINVAL, "a value without a key in an object is refused");
  json_free(&j);
  json_init_buffer(&j);
  json_array(&j, NULL, JSON_BLOCK);
  json_uint(&j, "k", 1);
  ok(json_finish(&j) == -EINVAL, "a key in an array is refused");
  json_free(&j);
  json_init_buffer(&j);
  json_object(&j, NULL, JSON_BLOCK);
  ok(json_finish(&j) == -EINVAL, "an unclosed object is reported");
  json_free(&j);
  json_init_buffer(&j);
  json_end(&j);
  ok(json_finish(&j) == -EINVAL, "closing what was never opened is reported");
  json_free(&j);
  json_init_buffer(&j);
  ok(json_finish(&j) == -EINVAL, "no value at all is reported");
  json_free(&j);
  json_init_buffer(&j);
  json_uint(&j, NULL, 1);
  json_uint(&j, NULL, 2);
  ok(json_finish(&j) == -EINVAL && !strcmp(j.buf, "1\n"), "a second top-level value is refused");
  json_free(&j);
  json_init_buffer(&j);
  for (int i = 0; i < JSON_MAX_DEPTH + 1; i++)
    json_array(&j, NULL, JSON_LINE);
  ok(json_finish(&j) == -EINVAL, "nesting past %d levels is refused", JSON_MAX_DEPTH);
  json_free(&j);
  json_init_buffer(&j);
  for (int i = 0; i < JSON_MAX_DEPTH; i++)
    json_array(&j, NULL, JSON_LINE);
  for (int i = 0; i < JSON_MAX_DEPTH; i++)
    json_end(&j);
  ok(json_finish(&j) == 0, "%d levels are fine", JSON_MAX_DEPTH);
  json_free(&j);

  /* A FILE that cannot take the text. */
  char small[8];
  f = fmemopen(small, sizeof small, "w");
  setvbuf(f, NULL, _IONBF, 0);
  json_init_file(&j, f);
  sample(&j);
  ok(json_finish(&j) == -EIO, "a failed write is reported as -EIO");
  fclose(f);
  return tap_done();
}
