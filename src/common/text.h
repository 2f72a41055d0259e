/* text.h: checking and escaping text that comes from users or peers (export
 * names, bytes off the wire) before it reaches a log line or a JSON file, so
 * that a name cannot forge a log line or break the JSON around it. */
#ifndef SHUNT_COMMON_TEXT_H
#define SHUNT_COMMON_TEXT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

/* Length of the valid UTF-8 sequence at s[0..len) (1 to 4 bytes; overlong
 * forms, surrogates and code points past U+10FFFF are invalid), or 0 when the
 * bytes there are not one. */
size_t text_utf8_seq(const unsigned char *s, size_t len);

/* Is s[0..len) valid UTF-8 without control characters (U+0000..U+001F, U+007F)?
 * What an export name must be: the NBD protocol says names are UTF-8, and a
 * newline or escape sequence in one would forge or garble log lines. */
bool text_is_clean(const char *s, size_t len);

/* Copy s[0..len) into out (NUL-terminated, truncated to outlen), control
 * characters and bytes that are not valid UTF-8 written as \xNN and a
 * backslash as \\.  Returns out.  For logging text of unknown origin. */
char *text_escape(const char *s, size_t len, char *out, size_t outlen);

/* Write s as a JSON string with its quotes: '"', '\\' and control characters
 * escaped, bytes that are not valid UTF-8 written as \ufffd. */
void text_json_string(FILE *f, const char *s);

/* The same JSON string, handed piece by piece to put(ctx, bytes, n): for
 * writers whose output is not a FILE. */
void text_json_string_put(const char *s, void (*put)(void *ctx, const char *p, size_t n),
                          void *ctx);

/* Format a message into err (when err is not NULL and errlen not 0) and
 * return rc: the one-line way a function refuses with a reason. */
__attribute__((format(printf, 4, 5)))
int text_refuse(int rc, char *err, size_t errlen, const char *fmt, ...);

/* Replace *dst (freed) with a copy of src.  Returns 0, or -ENOMEM with "out
 * of memory" in err (*dst is then left as it was): how option parsers keep
 * a string they were given. */
int text_set(char **dst, const char *src, char *err, size_t errlen);

#endif
