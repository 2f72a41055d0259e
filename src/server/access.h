/* access.h: per-export access rules (docs/config.md, "Access rules").  A rule
 * allows (read-write or read-only) or denies a client by its address (CIDR,
 * IPv4 or IPv6; unix sockets) or its TLS identity (certificate DN or PSK
 * identity); the first rule that matches decides; with rules but no match,
 * the client is refused; an export without rules is open to everyone. */
#ifndef SHUNT_SERVER_ACCESS_H
#define SHUNT_SERVER_ACCESS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

enum access_result { ACCESS_DENIED = 0, ACCESS_RW = 1, ACCESS_RO = 2 };

enum access_match {
  ACCESS_MATCH_ALL,    /* "all" */
  ACCESS_MATCH_ADDR,   /* "10.0.0.0/8", "::1", "fd00::/8" */
  ACCESS_MATCH_UNIX,   /* "unix": a unix-socket client */
  ACCESS_MATCH_TLS,    /* "tls": any client that completed TLS */
  ACCESS_MATCH_DN,     /* "dn:PATTERN": fnmatch over a verified certificate's DN */
  ACCESS_MATCH_PSK,    /* "psk:PATTERN": fnmatch over the PSK identity */
};

struct access_rule {
  enum access_result result;   /* what a match grants */
  enum access_match match;
  /* ACCESS_MATCH_ADDR: an IPv6 prefix; IPv4 rules are kept as IPv4-mapped
   * addresses (::ffff:a.b.c.d/96+BITS), and IPv4 peers are compared in that
   * form, so a rule means the same on IPv4 and dual-stack listeners. */
  uint8_t addr[16];
  unsigned prefix;             /* bits, 0..128 */
  char *pattern;               /* for DN and PSK */
};

struct access_list {
  struct access_rule *rules;
  size_t n;
};

/* The client as the rules see it. */
struct access_peer {
  struct sockaddr_storage addr;   /* ss_family AF_UNSPEC when unknown (stdio) */
  const char *dn;                 /* verified certificate DN, or NULL */
  const char *psk_identity;       /* or NULL */
  bool tls;                       /* TLS completed */
};

/* Add a rule: kind is "allow", "allow-ro" or "deny"; spec is described in
 * the header comment.  Returns 0 or -EINVAL/-ENOMEM with a message in err. */
int access_add_rule(struct access_list *l, const char *kind, const char *spec,
                    char *err, size_t errlen);

/* Free the rules. */
void access_list_free(struct access_list *l);

/* Decide for peer. */
enum access_result access_check(const struct access_list *l, const struct access_peer *peer);

/* Fill peer->addr from a connected socket (AF_UNSPEC for pipes). */
void access_peer_from_fd(struct access_peer *peer, int fd);

#endif
