/* text.c: UTF-8 checks and escaping for logs and JSON, and the strings option
 * parsers keep (see text.h). */
#include <errno.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "common/text.h"

size_t text_utf8_seq(const unsigned char *s, size_t len)
{
  uint32_t cp, min;
  size_t n;

  if (len == 0)
    return 0;
  if (s[0] < 0x80)
    return 1;
  if ((s[0] & 0xe0) == 0xc0) { n = 2; cp = s[0] & 0x1f; min = 0x80; }
  else if ((s[0] & 0xf0) == 0xe0) { n = 3; cp = s[0] & 0x0f; min = 0x800; }
  else if ((s[0] & 0xf8) == 0xf0) { n = 4; cp = s[0] & 0x07; min = 0x10000; }
  else return 0;
  if (len < n)
    return 0;
  for (size_t i = 1; i < n; i++) {
    if ((s[i] & 0xc0) != 0x80)
      return 0;
    cp = (cp << 6) | (s[i] & 0x3f);
  }
  if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
    return 0;
  return n;
}

static bool is_control(unsigned char c)
{
  return c < 0x20 || c == 0x7f;
}

bool text_is_clean(const char *s, size_t len)
{
  const unsigned char *p = (const unsigned char *)s;
  size_t i = 0;

  while (i < len) {
    size_t n = text_utf8_seq(p + i, len - i);
    if (n == 0 || (n == 1 && is_control(p[i])))
      return false;
    i += n;
  }
  return true;
}

char *text_escape(const char *s, size_t len, char *out, size_t outlen)
{
  static const char hex[] = "0123456789abcdef";
  const unsigned char *p = (const unsigned char *)s;
  size_t i = 0, o = 0;

  if (outlen == 0)
    return out;
  while (i < len) {
    size_t n = text_utf8_seq(p + i, len - i);
    if (n == 1 && p[i] == '\\') {
      if (o + 2 >= outlen) break;
      out[o++] = '\\';
      out[o++] = '\\';
      i++;
    } else if (n == 0 || (n == 1 && is_control(p[i]))) {
      if (o + 4 >= outlen) break;
      out[o++] = '\\';
      out[o++] = 'x';
      out[o++] = hex[p[i] >> 4];
      out[o++] = hex[p[i] & 15];
      i++;
    } else {
      if (o + n >= outlen) break;
      memcpy(out + o, p + i, n);
      o += n;
      i += n;
    }
  }
  out[o] = '\0';
  return out;
}

void text_json_string_put(const char *s, void (*put)(void *ctx, const char *p, size_t n),
                          void *ctx)
{
  const unsigned char *p = (const unsigned char *)s;
  size_t len = strlen(s), i = 0, run = 0;
  char esc[8];

  /* Runs of bytes that need no escaping go out in one piece. */
  put(ctx, "\"", 1);
  while (i < len) {
    size_t n = text_utf8_seq(p + i, len - i);
    const char *rep = NULL;
    size_t replen = 0;
    if (n == 0) {
      rep = "\\ufffd";
      replen = 6;
    } else if (n == 1 && (p[i] == '"' || p[i] == '\\')) {
      esc[0] = '\\';
      esc[1] = (char)p[i];
      rep = esc;
      replen = 2;
    } else if (n == 1 && p[i] < 0x20) {
      replen = (size_t)snprintf(esc, sizeof esc, "\\u%04x", p[i]);
      rep = esc;
    }
    if (!rep) {
      run += n;
      i += n;
      continue;
    }
    if (run)
      put(ctx, s + i - run, run);
    run = 0;
    put(ctx, rep, replen);
    i += n ? n : 1;
  }
  if (run)
    put(ctx, s + i - run, run);
  put(ctx, "\"", 1);
}

static void put_file(void *ctx, const char *p, size_t n)
{
  fwrite(p, 1, n, ctx);
}

void text_json_string(FILE *f, const char *s)
{
  text_json_string_put(s, put_file, f);
}

int text_refuse(int rc, char *err, size_t errlen, const char *fmt, ...)
{
  if (err && errlen) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
  }
  return rc;
}

int text_set(char **dst, const char *src, char *err, size_t errlen)
{
  char *s = strdup(src);

  if (!s)
    return text_refuse(-ENOMEM, err, errlen, "out of memory");
  free(*dst);
  *dst = s;
  return 0;
}
