/* uri.h: parsing of NBD URIs (nbd://, nbds://, nbd+unix://, nbds+unix://)
 * following doc/uri.md of the NBD project.  Pure: no I/O, no globals. */
#ifndef SHUNT_COMMON_URI_H
#define SHUNT_COMMON_URI_H

#include <stdbool.h>
#include <stddef.h>

#define NBD_URI_DEFAULT_PORT "10809"

struct nbd_uri {
  bool tls;             /* nbds:// or nbds+unix:// : TLS is required */
  bool unix_socket;     /* nbd+unix:// or nbds+unix:// */
  char *user;           /* userinfo, or NULL */
  char *host;           /* TCP host (brackets of IPv6 literals removed), or NULL */
  char *port;           /* TCP port as text, "10809" by default, or NULL for unix */
  char *socket;         /* unix socket path (may start with NUL: abstract) */
  size_t socket_len;    /* its length, since an abstract name starts with NUL */
  char *export_name;    /* percent-decoded path without its leading '/', never NULL */
  char *tls_type;       /* ?tls-type=anon|x509|psk, or NULL */
  char *tls_hostname;   /* ?tls-hostname=, or NULL */
  char *tls_psk_file;   /* ?tls-psk-file=, or NULL */
  char *tls_certificates; /* ?tls-certificates= directory, or NULL */
  int tls_verify_peer;  /* ?tls-verify-peer=0|1, or -1 when absent */
};

/* Parse text into *out (zeroed first).  Returns 0, -EINVAL for a malformed or
 * unsupported URI (err gets a message naming the bad part), or -ENOMEM.
 * On failure nothing needs freeing. */
int nbd_uri_parse(const char *text, struct nbd_uri *out, char *err, size_t errlen);

/* Free what nbd_uri_parse allocated; safe on a zeroed struct. */
void nbd_uri_free(struct nbd_uri *u);

/* Does text look like an NBD URI (one of the four schemes)? */
bool nbd_uri_is_nbd(const char *text);

/* Percent-decode src[0..len) into a new NUL-terminated string; *outlen gets the
 * decoded length (which may contain NULs).  Returns 0, -EINVAL on a bad escape,
 * or -ENOMEM. */
int nbd_uri_decode(const char *src, size_t len, char **out, size_t *outlen);

#endif
