/* json.h: a small JSON writer for the tools' reports (shunt copy, info and
 * bench --json): objects, arrays, strings, integers, doubles, booleans and
 * null, written to a FILE or to a growing buffer.  Strings are escaped by
 * text.c (invalid UTF-8 becomes U+FFFD), so a name cannot break the JSON.
 *
 * Layout: a container opened JSON_BLOCK puts each member on its own line,
 * indented by two spaces per level; one opened JSON_LINE keeps its members on
 * one line ({ "a": 1, "b": 2 }).  A complete top-level value ends with a
 * newline.
 *
 * Every value call takes a key: the member name inside an object, NULL inside
 * an array or for the top-level value.  Errors (a misplaced key, nesting past
 * JSON_MAX_DEPTH, out of memory, a failed write) are remembered and reported by
 * json_finish(); the calls after one do nothing. */
#ifndef SHUNT_COMMON_JSON_H
#define SHUNT_COMMON_JSON_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#define JSON_MAX_DEPTH 16

enum json_layout { JSON_BLOCK, JSON_LINE };

struct json {
  FILE *f;                   /* the output, or NULL: the buffer below */
  char *buf;                 /* buffer output: NUL-terminated text (malloc'd) */
  size_t len, cap;
  int error;                 /* 0 or the first negative errno */
  unsigned depth;            /* open containers */
  bool complete;             /* the top-level value is written */
  struct json_level {
    bool object;             /* object (members have keys) or array */
    bool line;               /* JSON_LINE layout */
    bool empty;              /* nothing written inside yet */
  } level[JSON_MAX_DEPTH];
};

/* Start writing to f. */
void json_init_file(struct json *j, FILE *f);

/* Start writing to a buffer: j->buf, j->len once written (free with json_free). */
void json_init_buffer(struct json *j);

/* Check that every container was closed and the output written: 0, or the
 * first error (-EINVAL for misuse, -ENOMEM, -EIO for a FILE error). */
int json_finish(struct json *j);

/* Free a buffer writer's text. */
void json_free(struct json *j);

/* Open an object or an array; close it with json_end(). */
void json_object(struct json *j, const char *key, enum json_layout layout);
void json_array(struct json *j, const char *key, enum json_layout layout);
void json_end(struct json *j);

/* Values.  json_string() writes null for a NULL s.  json_double() writes v with
 * the given digits after the decimal point ("%.*f"), or null when v is not
 * finite (JSON has no NaN or infinity). */
void json_string(struct json *j, const char *key, const char *s);
void json_uint(struct json *j, const char *key, uint64_t v);
void json_int(struct json *j, const char *key, int64_t v);
void json_double(struct json *j, const char *key, double v, int digits);
void json_bool(struct json *j, const char *key, bool v);
void json_null(struct json *j, const char *key);

#endif
