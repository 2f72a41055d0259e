/* test_text.c: UTF-8 checks and escaping (src/common/text.c), and log lines
 * staying single lines whatever bytes they are given (src/common/log.c). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/log.h"
#include "common/text.h"
#include "tap.h"

static const char *json(const char *s)
{
  static char buf[256];
  FILE *f = fmemopen(buf, sizeof buf, "w");
  text_json_string(f, s);
  fclose(f);
  return buf;
}

/* What log_msg writes to stderr for one call. */
static const char *logged(const char *client, const char *export, const char *msg)
{
  static char buf[2048];
  int p[2], saved = dup(STDERR_FILENO);
  ssize_t n;

  if (pipe(p) < 0)
    return "";
  dup2(p[1], STDERR_FILENO);
  log_msg(LOG_ERROR, client, export, "%s", msg);
  dup2(saved, STDERR_FILENO);
  close(saved);
  close(p[1]);
  n = read(p[0], buf, sizeof buf - 1);
  close(p[0]);
  buf[n > 0 ? n : 0] = '\0';
  return buf;
}

int main(void)
{
  char out[128];

  ok(text_utf8_seq((const unsigned char *)"a", 1) == 1, "ASCII");
  ok(text_utf8_seq((const unsigned char *)"\xc3\xa9", 2) == 2, "2-byte sequence");
  ok(text_utf8_seq((const unsigned char *)"\xe2\x82\xac", 3) == 3, "3-byte sequence");
  ok(text_utf8_seq((const unsigned char *)"\xf0\x9f\x98\x80", 4) == 4, "4-byte sequence");
  ok(text_utf8_seq((const unsigned char *)"\xc3", 1) == 0, "truncated sequence");
  ok(text_utf8_seq((const unsigned char *)"\xc0\x80", 2) == 0, "overlong NUL");
  ok(text_utf8_seq((const unsigned char *)"\xed\xa0\x80", 3) == 0, "surrogate");
  ok(text_utf8_seq((const unsigned char *)"\xf4\x90\x80\x80", 4) == 0, "past U+10FFFF");
  ok(text_utf8_seq((const unsigned char *)"\x80", 1) == 0, "lone continuation byte");

  ok(text_is_clean("disk-1.img", 10), "plain name is clean");
  ok(text_is_clean("d\xc3\xafsk", 5), "UTF-8 name is clean");
  ok(!text_is_clean("a\nb", 3), "newline is not");
  ok(!text_is_clean("a\x1b[31m", 6), "escape is not");
  ok(!text_is_clean("a\x7f", 2), "DEL is not");
  ok(!text_is_clean("a\xff", 2), "invalid UTF-8 is not");
  ok(!text_is_clean("a\0b", 3), "NUL is not");

  ok(!strcmp(text_escape("a\nb\\c\xff\xc3\xa9", 8, out, sizeof out), "a\\x0ab\\\\c\\xff\xc3\xa9"),
     "escape: %s", out);
  ok(!strcmp(text_escape("abcdef\n", 7, out, 9), "abcdef"), "escape truncates whole escapes: %s", out);

  ok(!strcmp(json("plain"), "\"plain\""), "json plain");
  ok(!strcmp(json("q\"b\\n\nt\tx\x01"), "\"q\\\"b\\\\n\\u000at\\u0009x\\u0001\""), "json escapes: %s", json("q\"b\\n\nt\tx\x01"));
  ok(!strcmp(json("bad\xff\xc3\xa9"), "\"bad\\ufffd\xc3\xa9\""), "json replaces invalid UTF-8: %s", json("bad\xff\xc3\xa9"));

  const char *l = logged("1.2.3.4:5", "a\nshunt: error: forged", "msg\r\n\x1b[2J");
  ok(strchr(l, '\n') == l + strlen(l) - 1, "a log line with newlines in its parts is one line: %s", l);
  ok(strstr(l, "a\\x0ashunt: error: forged") && strstr(l, "msg\\x0d\\x0a\\x1b[2J"), "... with them escaped");
  l = logged(NULL, "\xff\xfe", "ok");
  ok(strstr(l, "export '\\xff\\xfe'") != NULL, "invalid UTF-8 is escaped in logs: %s", l);
  return tap_done();
}
