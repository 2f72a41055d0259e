/* copy_same.c: same-file and same-export checks for `shunt copy` (see copy_same.h). */
#include <netdb.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>

#include "common/uri.h"
#include "tools/copy_same.h"

bool copy_same_file(const struct stat *a, const struct stat *b)
{
  if (S_ISBLK(a->st_mode) && S_ISBLK(b->st_mode))
    return a->st_rdev == b->st_rdev;
  return a->st_dev == b->st_dev && a->st_ino == b->st_ino;
}

static bool same_addr(const struct addrinfo *a, const struct addrinfo *b)
{
  return a->ai_family == b->ai_family && a->ai_addrlen == b->ai_addrlen &&
         memcmp(a->ai_addr, b->ai_addr, a->ai_addrlen) == 0;
}

/* Do host:port of a and b resolve to at least one common address? */
static bool same_tcp_server(const struct nbd_uri *a, const struct nbd_uri *b)
{
  struct addrinfo hints = { .ai_socktype = SOCK_STREAM }, *ra = NULL, *rb = NULL;
  bool same = false;

  /* No host (nbd:///x) is the loopback address, as getaddrinfo has it. */
  if (a->host && b->host && !strcasecmp(a->host, b->host) && !strcmp(a->port, b->port))
    return true;
  if (getaddrinfo(a->host, a->port, &hints, &ra) != 0)
    return false;
  if (getaddrinfo(b->host, b->port, &hints, &rb) == 0)
    for (const struct addrinfo *x = ra; x && !same; x = x->ai_next)
      for (const struct addrinfo *y = rb; y && !same; y = y->ai_next)
        same = same_addr(x, y);
  freeaddrinfo(ra);
  if (rb)
    freeaddrinfo(rb);
  return same;
}

static bool same_unix_server(const struct nbd_uri *a, const struct nbd_uri *b)
{
  struct stat sa, sb;

  if (a->socket_len == b->socket_len && !memcmp(a->socket, b->socket, a->socket_len))
    return true;
  /* Abstract names (leading NUL) have no file to compare. */
  if (!a->socket_len || !b->socket_len || !a->socket[0] || !b->socket[0])
    return false;
  return stat(a->socket, &sa) == 0 && stat(b->socket, &sb) == 0 &&
         sa.st_dev == sb.st_dev && sa.st_ino == sb.st_ino;
}

bool copy_same_export(const char *uri_a, const char *uri_b)
{
  struct nbd_uri a, b;
  char err[256];
  bool same = false;

  if (nbd_uri_parse(uri_a, &a, err, sizeof err) < 0)
    return false;
  if (nbd_uri_parse(uri_b, &b, err, sizeof err) < 0) {
    nbd_uri_free(&a);
    return false;
  }
  if (a.unix_socket == b.unix_socket && !strcmp(a.export_name, b.export_name))
    same = a.unix_socket ? same_unix_server(&a, &b) : same_tcp_server(&a, &b);
  nbd_uri_free(&a);
  nbd_uri_free(&b);
  return same;
}
