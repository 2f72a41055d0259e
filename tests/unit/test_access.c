/* test_access.c: per-export access rules (src/server/access.c): parsing,
 * CIDR matching for IPv4, IPv6 and v4-mapped clients and rules (one meaning
 * on IPv4 and dual-stack listeners), unix and TLS identity
 * matches, first match wins, and the implicit deny after rules. */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <string.h>
#include <sys/un.h>

#include "server/access.h"
#include "tap.h"

static struct access_peer v4(const char *a)
{
  struct access_peer p = { 0 };
  struct sockaddr_in *s = (struct sockaddr_in *)&p.addr;
  s->sin_family = AF_INET;
  inet_pton(AF_INET, a, &s->sin_addr);
  return p;
}

static struct access_peer v6(const char *a)
{
  struct access_peer p = { 0 };
  struct sockaddr_in6 *s = (struct sockaddr_in6 *)&p.addr;
  s->sin6_family = AF_INET6;
  inet_pton(AF_INET6, a, &s->sin6_addr);
  return p;
}

static int add(struct access_list *l, const char *kind, const char *spec)
{
  char err[256];
  return access_add_rule(l, kind, spec, err, sizeof err);
}

int main(void)
{
  struct access_list l = { 0 };
  struct access_peer p;
  char err[256];

  ok(access_check(&l, &(struct access_peer){ 0 }) == ACCESS_RW, "no rules: everyone, read-write");

  ok(add(&l, "allow", "10.1.0.0/16") == 0, "parse allow=10.1.0.0/16");
  ok(add(&l, "allow-ro", "10.0.0.0/8") == 0, "parse allow-ro=10.0.0.0/8");
  ok(add(&l, "deny", "::1") == 0, "parse deny=::1 (host)");
  ok(add(&l, "allow", "[fd00::]/8") == 0, "parse allow=[fd00::]/8");
  ok(add(&l, "allow", "unix") == 0, "parse allow=unix");
  p = v4("10.1.2.3");
  ok(access_check(&l, &p) == ACCESS_RW, "10.1.2.3 matches the /16 first: read-write");
  p = v4("10.2.0.1");
  ok(access_check(&l, &p) == ACCESS_RO, "10.2.0.1 matches the /8: read-only");
  p = v4("11.0.0.1");
  ok(access_check(&l, &p) == ACCESS_DENIED, "11.0.0.1 matches nothing: denied");
  p = v6("::ffff:10.1.9.9");
  ok(access_check(&l, &p) == ACCESS_RW, "v4-mapped ::ffff:10.1.9.9 matches the IPv4 /16");
  p = v6("::1");
  ok(access_check(&l, &p) == ACCESS_DENIED, "::1 denied");
  p = v6("fd12::5");
  ok(access_check(&l, &p) == ACCESS_RW, "fd12::5 in fd00::/8");
  p = v6("fe80::1");
  ok(access_check(&l, &p) == ACCESS_DENIED, "fe80::1 not in fd00::/8");
  p = (struct access_peer){ 0 };
  p.addr.ss_family = AF_UNIX;
  ok(access_check(&l, &p) == ACCESS_RW, "unix client matches allow=unix");
  p.addr.ss_family = AF_UNSPEC;
  ok(access_check(&l, &p) == ACCESS_DENIED, "unknown address (stdio) denied by address rules");
  access_list_free(&l);
  ok(l.n == 0 && l.rules == NULL, "free empties the list");

  /* Odd prefixes. */
  ok(add(&l, "allow", "192.168.1.128/25") == 0, "parse a /25");
  p = v4("192.168.1.200");
  ok(access_check(&l, &p) == ACCESS_RW, "192.168.1.200 in .128/25");
  p = v4("192.168.1.100");
  ok(access_check(&l, &p) == ACCESS_DENIED, "192.168.1.100 outside .128/25");
  access_list_free(&l);
  ok(add(&l, "allow", "0.0.0.0/0") == 0, "parse 0.0.0.0/0");
  p = v4("8.8.8.8");
  ok(access_check(&l, &p) == ACCESS_RW, "/0 matches any IPv4");
  p = v6("2001:db8::1");
  ok(access_check(&l, &p) == ACCESS_DENIED, "an IPv4 /0 does not match IPv6");
  access_list_free(&l);

  /* IPv4-mapped IPv6: a rule and a peer mean the same in either form, so a
   * rule matches the same clients on an IPv4 and on a dual-stack listener. */
  ok(add(&l, "deny", "::ffff:127.0.0.1") == 0, "parse deny=::ffff:127.0.0.1");
  ok(add(&l, "allow", "all") == 0, "parse allow=all");
  p = v4("127.0.0.1");
  ok(access_check(&l, &p) == ACCESS_DENIED, "deny=::ffff:127.0.0.1 denies 127.0.0.1 (IPv4 listener)");
  p = v6("::ffff:127.0.0.1");
  ok(access_check(&l, &p) == ACCESS_DENIED, "deny=::ffff:127.0.0.1 denies ::ffff:127.0.0.1 (dual-stack)");
  p = v4("127.0.0.2");
  ok(access_check(&l, &p) == ACCESS_RW, "... and nothing else (127.0.0.2)");
  access_list_free(&l);
  ok(add(&l, "deny", "127.0.0.1") == 0 && add(&l, "allow", "all") == 0, "parse deny=127.0.0.1, allow=all");
  p = v6("::ffff:127.0.0.1");
  ok(access_check(&l, &p) == ACCESS_DENIED, "deny=127.0.0.1 denies ::ffff:127.0.0.1");
  p = v4("127.0.0.1");
  ok(access_check(&l, &p) == ACCESS_DENIED, "deny=127.0.0.1 denies 127.0.0.1");
  access_list_free(&l);
  ok(add(&l, "allow-ro", "::ffff:0:0/96") == 0, "parse allow-ro=::ffff:0:0/96");
  ok(add(&l, "allow", "::ffff:10.0.0.0/104") == 0, "parse allow=::ffff:10.0.0.0/104");
  p = v4("8.8.8.8");
  ok(access_check(&l, &p) == ACCESS_RO, "::ffff:0:0/96 covers every IPv4 client (8.8.8.8)");
  p = v6("::ffff:8.8.8.8");
  ok(access_check(&l, &p) == ACCESS_RO, "... in mapped form too");
  p = v6("2001:db8::1");
  ok(access_check(&l, &p) == ACCESS_DENIED, "... but no IPv6 client");
  access_list_free(&l);
  ok(add(&l, "allow", "::ffff:10.0.0.0/104") == 0, "parse allow=::ffff:10.0.0.0/104");
  p = v4("10.9.8.7");
  ok(access_check(&l, &p) == ACCESS_RW, "::ffff:10.0.0.0/104 is 10.0.0.0/8 (10.9.8.7)");
  p = v4("11.0.0.1");
  ok(access_check(&l, &p) == ACCESS_DENIED, "... not 11.0.0.1");
  access_list_free(&l);
  ok(add(&l, "allow", "::/0") == 0, "parse allow=::/0");
  p = v4("192.0.2.1");
  ok(access_check(&l, &p) == ACCESS_RW, "::/0 covers IPv4 clients on an IPv4 listener, as on a dual-stack one");
  access_list_free(&l);

  /* TLS identities. */
  ok(add(&l, "allow", "dn:CN=alice,O=*") == 0, "parse dn:GLOB");
  ok(add(&l, "allow-ro", "psk:reader*") == 0, "parse psk:GLOB");
  ok(add(&l, "allow-ro", "tls") == 0, "parse tls");
  ok(add(&l, "deny", "all") == 0, "parse all");
  p = v4("127.0.0.1");
  ok(access_check(&l, &p) == ACCESS_DENIED, "no TLS: denied");
  p.tls = true;
  ok(access_check(&l, &p) == ACCESS_RO, "TLS without a matching identity: the tls rule (read-only)");
  p.dn = "CN=alice,O=Example";
  ok(access_check(&l, &p) == ACCESS_RW, "DN CN=alice,O=Example: read-write");
  p.dn = "CN=alice2,O=Example";
  ok(access_check(&l, &p) == ACCESS_RO, "DN CN=alice2,...: not the DN rule");
  p.dn = NULL;
  p.psk_identity = "reader-7";
  ok(access_check(&l, &p) == ACCESS_RO, "PSK reader-7: read-only");
  access_list_free(&l);

  /* Malformed rules. */
  static const char *const bad[] = { "", "10.0.0.0/33", "::/129", "300.0.0.1", "10.0.0.0/", "host.example",
                                     "10.0.0.0/8x", "[::1", "1.2.3.4/-1" };
  for (size_t i = 0; i < sizeof bad / sizeof *bad; i++)
    ok(access_add_rule(&l, "allow", bad[i], err, sizeof err) < 0, "rejects '%s'", bad[i]);
  ok(access_add_rule(&l, "permit", "all", err, sizeof err) < 0, "rejects an unknown rule kind");
  ok(l.n == 0, "nothing added by rejected rules");
  return tap_done();
}
