/* test_client_uri.c: NBD URI parsing (doc/uri.md examples and error cases). */
#include <errno.h>
#include <string.h>

#include "common/uri.h"
#include "tap.h"

static void good(const char *text, const char *host, const char *port, const char *sock,
                 const char *name, int tls)
{
  struct nbd_uri u;
  char err[256];
  int r = nbd_uri_parse(text, &u, err, sizeof err);
  ok(r == 0, "parse %s (%s)", text, r ? err : "ok");
  if (r)
    return;
  ok((host ? u.host && !strcmp(u.host, host) : !u.host) &&
     (port ? u.port && !strcmp(u.port, port) : !u.port) &&
     (sock ? u.socket && !strcmp(u.socket, sock) : !u.socket) &&
     !strcmp(u.export_name, name) && u.tls == tls,
     "%s -> host=%s port=%s socket=%s export='%s' tls=%d", text,
     u.host ? u.host : "-", u.port ? u.port : "-", u.socket ? u.socket : "-",
     u.export_name, u.tls);
  nbd_uri_free(&u);
}

static void bad(const char *text, const char *why)
{
  struct nbd_uri u;
  char err[256] = "";
  int r = nbd_uri_parse(text, &u, err, sizeof err);
  ok(r == -EINVAL && err[0], "reject %s (%s): %s", text, why, err);
}

int main(void)
{
  /* The examples of doc/uri.md. */
  good("nbd://example.com/disk", "example.com", "10809", NULL, "disk", 0);
  good("nbd+unix:///disk?socket=sock", NULL, NULL, "sock", "disk", 0);
  good("nbd://example.com/", "example.com", "10809", NULL, "", 0);
  good("nbd://example.com", "example.com", "10809", NULL, "", 0);
  good("nbd://example.com//disk", "example.com", "10809", NULL, "/disk", 0);
  good("nbd://example.com/hello%20world", "example.com", "10809", NULL, "hello world", 0);
  /* Ports, IPv6, TLS schemes, userinfo. */
  good("nbd://127.0.0.1:2000/x", "127.0.0.1", "2000", NULL, "x", 0);
  good("nbd://[::1]:2000/x", "::1", "2000", NULL, "x", 0);
  good("nbd://[fe80::1]/", "fe80::1", "10809", NULL, "", 0);
  good("nbds://host/e", "host", "10809", NULL, "e", 1);
  good("NBD://host/e", "host", "10809", NULL, "e", 0);
  good("nbds+unix:///e?socket=/tmp/s%20x&tls-type=psk", NULL, NULL, "/tmp/s x", "e", 1);
  good("nbd://user@host:1/e?x-custom=1", "host", "1", NULL, "e", 0);
  good("nbd://h/a%2Fb#frag", "h", "10809", NULL, "a/b", 0);
  {
    struct nbd_uri u;
    int r = nbd_uri_parse("nbd://alice@h/?tls-verify-peer=0&tls-hostname=srv", &u, NULL, 0);
    ok(r == 0 && u.user && !strcmp(u.user, "alice") && u.tls_verify_peer == 0 &&
       u.tls_hostname && !strcmp(u.tls_hostname, "srv"), "userinfo and TLS parameters");
    nbd_uri_free(&u);
    r = nbd_uri_parse("nbd+unix:///?socket=%00/abstract", &u, NULL, 0);
    ok(r == 0 && u.socket_len == 10 && u.socket[0] == '\0' && !memcmp(u.socket + 1, "/abstract", 9),
       "abstract socket keeps its leading NUL");
    nbd_uri_free(&u);
  }
  ok(nbd_uri_is_nbd("nbd+unix:///x?socket=y") && !nbd_uri_is_nbd("/dev/sda") &&
     !nbd_uri_is_nbd("file.img") && !nbd_uri_is_nbd("http://x/"), "nbd_uri_is_nbd");

  bad("http://example.com/", "wrong scheme");
  bad("/tmp/file", "not a URI");
  bad("nbd+unix:///disk", "unix without socket=");
  bad("nbd+unix://host/disk?socket=s", "unix with a host");
  bad("nbd://host/disk?socket=s", "socket= on TCP");
  bad("nbd://host:0/", "port 0");
  bad("nbd://host:70000/", "port too big");
  bad("nbd://host:12a/", "port not numeric");
  bad("nbd://host/x%2", "truncated escape");
  bad("nbd://host/x%zz", "bad escape");
  bad("nbd://host/a%00b", "NUL in export name");
  bad("nbd://host/?bogus=1", "unknown query parameter");
  bad("nbd://host/?tls-type=kerberos", "bad tls-type");
  bad("nbd:///disk", "TCP without host");
  bad("nbd://[::1/", "unterminated IPv6");
  return tap_done();
}
