/* uri.c: NBD URI parser (doc/uri.md).  Splits scheme, authority, path and query
 * as RFC 3986 does, percent-decodes each part, and checks what the NBD URI
 * spec requires (socket= for unix schemes, known query keys, a valid port). */
#include "common/uri.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/text.h"

static int hexval(char c)
{
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

int nbd_uri_decode(const char *src, size_t len, char **out, size_t *outlen)
{
  char *d = malloc(len + 1);
  size_t n = 0;
  if (!d)
    return -ENOMEM;
  for (size_t i = 0; i < len; i++) {
    if (src[i] == '%') {
      int hi, lo;
      if (len - i < 3) { free(d); return -EINVAL; }
      hi = hexval(src[i + 1]);
      lo = hexval(src[i + 2]);
      if (hi < 0 || lo < 0) { free(d); return -EINVAL; }
      d[n++] = (char)(hi << 4 | lo);
      i += 2;
    } else {
      d[n++] = src[i];
    }
  }
  d[n] = '\0';
  *out = d;
  if (outlen)
    *outlen = n;
  return 0;
}

static const struct { const char *name; bool tls, unix_socket; } schemes[] = {
  { "nbd", false, false },
  { "nbds", true, false },
  { "nbd+unix", false, true },
  { "nbds+unix", true, true },
};

bool nbd_uri_is_nbd(const char *text)
{
  for (size_t i = 0; i < sizeof schemes / sizeof schemes[0]; i++) {
    size_t l = strlen(schemes[i].name);
    if (!strncasecmp(text, schemes[i].name, l) && !strncmp(text + l, "://", 3))
      return true;
  }
  return false;
}

/* Decode into *dst a string that must not contain NUL bytes. */
static int decode_text(const char *s, size_t len, char **dst, const char *what,
                       char *err, size_t errlen)
{
  size_t n;
  int r = nbd_uri_decode(s, len, dst, &n);
  if (r == -ENOMEM)
    return r;
  if (r < 0)
    return text_refuse(-EINVAL, err, errlen, "bad percent-escape in %s", what);
  if (strlen(*dst) != n) {
    free(*dst);
    *dst = NULL;
    return text_refuse(-EINVAL, err, errlen, "%s contains a NUL byte", what);
  }
  return 0;
}

static int parse_authority(const char *a, size_t len, struct nbd_uri *u, char *err, size_t errlen)
{
  const char *at = memrchr(a, '@', len);
  int r;
  if (at) {
    if ((r = decode_text(a, (size_t)(at - a), &u->user, "userinfo", err, errlen)) < 0)
      return r;
    len -= (size_t)(at + 1 - a);
    a = at + 1;
  }
  const char *port = NULL;
  size_t hostlen = len;
  const char *host = a;
  if (len && a[0] == '[') {
    const char *close = memchr(a, ']', len);
    if (!close)
      return text_refuse(-EINVAL, err, errlen, "unterminated IPv6 literal in authority");
    host = a + 1;
    hostlen = (size_t)(close - a - 1);
    if (close + 1 < a + len) {
      if (close[1] != ':')
        return text_refuse(-EINVAL, err, errlen, "junk after IPv6 literal in authority");
      port = close + 2;
    }
  } else {
    const char *colon = memchr(a, ':', len);
    if (colon) {
      hostlen = (size_t)(colon - a);
      port = colon + 1;
    }
  }
  if (hostlen && (r = decode_text(host, hostlen, &u->host, "host", err, errlen)) < 0)
    return r;
  if (port) {
    size_t plen = (size_t)(a + len - port);
    unsigned long v = 0;
    if (plen == 0 || plen > 5)
      return text_refuse(-EINVAL, err, errlen, "bad port '%.*s'", (int)plen, port);
    for (size_t i = 0; i < plen; i++) {
      if (port[i] < '0' || port[i] > '9')
        return text_refuse(-EINVAL, err, errlen, "bad port '%.*s'", (int)plen, port);
      v = v * 10 + (unsigned long)(port[i] - '0');
    }
    if (v == 0 || v > 65535)
      return text_refuse(-EINVAL, err, errlen, "port %lu out of range", v);
    if (!(u->port = strndup(port, plen)))
      return -ENOMEM;
  }
  return 0;
}

static int parse_query(const char *q, size_t len, struct nbd_uri *u, char *err, size_t errlen)
{
  const char *end = q + len;
  while (q < end) {
    const char *amp = memchr(q, '&', (size_t)(end - q));
    const char *pend = amp ? amp : end;
    const char *eq = memchr(q, '=', (size_t)(pend - q));
    if (pend == q) { q = pend + 1; continue; }
    if (!eq)
      return text_refuse(-EINVAL, err, errlen, "query parameter '%.*s' has no value", (int)(pend - q), q);
    char *key, *val;
    size_t vlen;
    int r = decode_text(q, (size_t)(eq - q), &key, "query key", err, errlen);
    if (r < 0)
      return r;
    r = nbd_uri_decode(eq + 1, (size_t)(pend - eq - 1), &val, &vlen);
    if (r < 0) {
      free(key);
      return r == -ENOMEM ? r : text_refuse(-EINVAL, err, errlen, "bad percent-escape in query value");
    }
    char **slot = NULL;
    if (!strcmp(key, "socket")) {
      free(u->socket);
      u->socket = val;
      u->socket_len = vlen;
      val = NULL;
    } else if (!strcmp(key, "tls-type")) {
      slot = &u->tls_type;
      if (strcmp(val, "anon") && strcmp(val, "x509") && strcmp(val, "psk")) {
        text_refuse(-EINVAL, err, errlen, "tls-type must be anon, x509 or psk, not '%s'", val);
        free(key); free(val);
        return -EINVAL;
      }
    } else if (!strcmp(key, "tls-hostname")) {
      slot = &u->tls_hostname;
    } else if (!strcmp(key, "tls-username")) {
      slot = &u->user;   /* libnbd's spelling of the userinfo (PSK identity) */
    } else if (!strcmp(key, "tls-psk-file")) {
      slot = &u->tls_psk_file;
    } else if (!strcmp(key, "tls-certificates")) {
      slot = &u->tls_certificates;
    } else if (!strcmp(key, "tls-verify-peer")) {
      if (strcmp(val, "0") && strcmp(val, "1")) {
        text_refuse(-EINVAL, err, errlen, "tls-verify-peer must be 0 or 1, not '%s'", val);
        free(key); free(val);
        return -EINVAL;
      }
      u->tls_verify_peer = val[0] == '1';
    } else if (strncmp(key, "x-", 2)) {
      /* doc/uri.md: unknown parameters SHOULD be diagnosed (x- ones are experimental). */
      text_refuse(-EINVAL, err, errlen, "unknown query parameter '%s'", key);
      free(key); free(val);
      return -EINVAL;
    }
    if (slot && val && strlen(val) != vlen) {
      text_refuse(-EINVAL, err, errlen, "query parameter '%s' contains a NUL byte", key);
      free(key); free(val);
      return -EINVAL;
    }
    if (slot) {
      free(*slot);
      *slot = val;
      val = NULL;
    }
    free(key);
    free(val);
    q = pend + 1;
  }
  return 0;
}

int nbd_uri_parse(const char *text, struct nbd_uri *u, char *err, size_t errlen)
{
  memset(u, 0, sizeof *u);
  u->tls_verify_peer = -1;
  if (err && errlen)
    err[0] = '\0';
  const char *sep = strstr(text, "://");
  size_t i, n = sizeof schemes / sizeof schemes[0];
  for (i = 0; sep && i < n; i++)
    if ((size_t)(sep - text) == strlen(schemes[i].name) &&
        !strncasecmp(text, schemes[i].name, (size_t)(sep - text)))
      break;
  if (!sep || i == n)
    return text_refuse(-EINVAL, err, errlen, "'%s' is not an NBD URI (nbd://, nbds://, nbd+unix://, nbds+unix://)", text);
  u->tls = schemes[i].tls;
  u->unix_socket = schemes[i].unix_socket;

  const char *a = sep + 3;
  const char *aend = a + strcspn(a, "/?#");
  const char *path = aend;
  const char *pend = path + strcspn(path, "?#");
  const char *query = NULL, *qend = NULL;
  if (*pend == '?') {
    query = pend + 1;
    qend = query + strcspn(query, "#");
  }
  int r;
  if ((r = parse_authority(a, (size_t)(aend - a), u, err, errlen)) < 0)
    goto out;
  /* The export name is the path without its leading '/'. */
  if (*path == '/')
    path++;
  if ((r = decode_text(path, (size_t)(pend - path), &u->export_name, "export name", err, errlen)) < 0)
    goto out;
  if (query && (r = parse_query(query, (size_t)(qend - query), u, err, errlen)) < 0)
    goto out;
  if (u->unix_socket) {
    if (u->host || u->port) {
      r = text_refuse(-EINVAL, err, errlen, "a unix-socket URI must not name a host or port");
      goto out;
    }
    if (!u->socket || u->socket_len == 0) {
      r = text_refuse(-EINVAL, err, errlen, "%s:// needs ?socket=PATH", schemes[i].name);
      goto out;
    }
  } else {
    if (u->socket) {
      r = text_refuse(-EINVAL, err, errlen, "?socket= is only valid with nbd+unix:// or nbds+unix://");
      goto out;
    }
    if (!u->host) {
      r = text_refuse(-EINVAL, err, errlen, "'%s' names no host", text);
      goto out;
    }
    if (!u->port && !(u->port = strdup(NBD_URI_DEFAULT_PORT))) {
      r = -ENOMEM;
      goto out;
    }
  }
  return 0;
out:
  nbd_uri_free(u);
  return r;
}

void nbd_uri_free(struct nbd_uri *u)
{
  free(u->user);
  free(u->host);
  free(u->port);
  free(u->socket);
  free(u->export_name);
  free(u->tls_type);
  free(u->tls_hostname);
  free(u->tls_psk_file);
  free(u->tls_certificates);
  memset(u, 0, sizeof *u);
  u->tls_verify_peer = -1;
}
