/* access.c: parsing and evaluating per-export access rules (see access.h). */
#include <arpa/inet.h>
#include <errno.h>
#include <fnmatch.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/parse.h"
#include "server/access.h"

/* The first 96 bits of an IPv4-mapped IPv6 address (::ffff:0:0/96). */
static const uint8_t v4mapped[12] = { 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff };

static int parse_addr(struct access_rule *r, const char *spec, char *err, size_t errlen)
{
  char buf[128];
  const char *slash = strchr(spec, '/');
  size_t alen = slash ? (size_t)(slash - spec) : strlen(spec);
  unsigned max;
  uint64_t v;

  if (alen == 0 || alen >= sizeof buf)
    goto bad;
  memcpy(buf, spec, alen);
  buf[alen] = '\0';
  /* "[::1]/128" is accepted as well as "::1/128". */
  if (buf[0] == '[' && buf[alen - 1] == ']') {
    memmove(buf, buf + 1, alen - 2);
    buf[alen - 2] = '\0';
  }
  /* One form for every rule: IPv4 as its IPv4-mapped IPv6 address
   * (::ffff:a.b.c.d, prefix + 96), so that "10.0.0.0/8" and
   * "::ffff:10.0.0.0/104" are the same rule, whatever the listener. */
  if (inet_pton(AF_INET, buf, r->addr + 12) == 1) {
    memcpy(r->addr, v4mapped, sizeof v4mapped);
    max = 32;
  } else if (inet_pton(AF_INET6, buf, r->addr) == 1) {
    max = 128;
  } else {
    goto bad;
  }
  r->prefix = 128;
  if (slash) {
    if (parse_uint(slash + 1, 0, max, &v) < 0)
      goto bad;
    r->prefix = (unsigned)v + (128 - max);
  }
  r->match = ACCESS_MATCH_ADDR;
  return 0;
bad:
  snprintf(err, errlen, "bad access rule '%s' (expected all, unix, tls, ADDRESS[/BITS], dn:PATTERN or psk:PATTERN)", spec);
  return -EINVAL;
}

int access_add_rule(struct access_list *l, const char *kind, const char *spec,
                    char *err, size_t errlen)
{
  struct access_rule r = { 0 };
  struct access_rule *nr;
  int ret;

  if (!strcmp(kind, "allow"))
    r.result = ACCESS_RW;
  else if (!strcmp(kind, "allow-ro"))
    r.result = ACCESS_RO;
  else if (!strcmp(kind, "deny"))
    r.result = ACCESS_DENIED;
  else {
    snprintf(err, errlen, "unknown access rule kind '%s'", kind);
    return -EINVAL;
  }
  if (!spec || !*spec) {
    snprintf(err, errlen, "%s: empty access rule", kind);
    return -EINVAL;
  }
  if (!strcmp(spec, "all") || !strcmp(spec, "*")) {
    r.match = ACCESS_MATCH_ALL;
  } else if (!strcmp(spec, "unix")) {
    r.match = ACCESS_MATCH_UNIX;
  } else if (!strcmp(spec, "tls")) {
    r.match = ACCESS_MATCH_TLS;
  } else if (!strncmp(spec, "dn:", 3) || !strncmp(spec, "psk:", 4)) {
    r.match = spec[0] == 'd' ? ACCESS_MATCH_DN : ACCESS_MATCH_PSK;
    if (!(r.pattern = strdup(strchr(spec, ':') + 1))) {
      snprintf(err, errlen, "out of memory");
      return -ENOMEM;
    }
  } else if ((ret = parse_addr(&r, spec, err, errlen)) < 0) {
    return ret;
  }
  nr = realloc(l->rules, (l->n + 1) * sizeof *nr);
  if (!nr) {
    free(r.pattern);
    snprintf(err, errlen, "out of memory");
    return -ENOMEM;
  }
  l->rules = nr;
  l->rules[l->n++] = r;
  return 0;
}

void access_list_free(struct access_list *l)
{
  for (size_t i = 0; i < l->n; i++)
    free(l->rules[i].pattern);
  free(l->rules);
  l->rules = NULL;
  l->n = 0;
}

static bool prefix_equal(const uint8_t *a, const uint8_t *b, unsigned bits)
{
  unsigned bytes = bits / 8, rest = bits % 8;

  if (memcmp(a, b, bytes))
    return false;
  if (rest) {
    uint8_t mask = (uint8_t)(0xff << (8 - rest));
    return (a[bytes] & mask) == (b[bytes] & mask);
  }
  return true;
}

/* The peer in the rules' form: an IPv4 client (on an IPv4 socket) becomes
 * ::ffff:a.b.c.d, which is how a dual-stack socket reports it, so a rule
 * matches the same clients on either kind of listener. */
static bool addr_matches(const struct access_rule *r, const struct sockaddr_storage *ss)
{
  uint8_t a[16];

  if (ss->ss_family == AF_INET) {
    memcpy(a, v4mapped, sizeof v4mapped);
    memcpy(a + 12, &((const struct sockaddr_in *)ss)->sin_addr, 4);
  } else if (ss->ss_family == AF_INET6) {
    memcpy(a, ((const struct sockaddr_in6 *)ss)->sin6_addr.s6_addr, 16);
  } else {
    return false;
  }
  return prefix_equal(a, r->addr, r->prefix);
}

static bool rule_matches(const struct access_rule *r, const struct access_peer *p)
{
  switch (r->match) {
  case ACCESS_MATCH_ALL: return true;
  case ACCESS_MATCH_ADDR: return addr_matches(r, &p->addr);
  case ACCESS_MATCH_UNIX: return p->addr.ss_family == AF_UNIX;
  case ACCESS_MATCH_TLS: return p->tls;
  case ACCESS_MATCH_DN: return p->dn && fnmatch(r->pattern, p->dn, 0) == 0;
  case ACCESS_MATCH_PSK: return p->psk_identity && fnmatch(r->pattern, p->psk_identity, 0) == 0;
  }
  return false;
}

enum access_result access_check(const struct access_list *l, const struct access_peer *peer)
{
  if (l->n == 0)
    return ACCESS_RW;
  for (size_t i = 0; i < l->n; i++)
    if (rule_matches(&l->rules[i], peer))
      return l->rules[i].result;
  return ACCESS_DENIED;
}

void access_peer_from_fd(struct access_peer *peer, int fd)
{
  socklen_t len = sizeof peer->addr;

  memset(&peer->addr, 0, sizeof peer->addr);
  if (getpeername(fd, (struct sockaddr *)&peer->addr, &len) < 0) {
    peer->addr.ss_family = AF_UNSPEC;
    return;
  }
  /* An unnamed unix peer still reports AF_UNIX: keep it. */
}
