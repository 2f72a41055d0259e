/* fd_exact.h: read exactly n bytes from a file descriptor (a test's fake
 * server reading what the client sent), for unit tests. */
#ifndef SHUNT_TESTS_FD_EXACT_H
#define SHUNT_TESTS_FD_EXACT_H

#include <stddef.h>
#include <unistd.h>

/* 0 once all n bytes are in b; -1 at end of file or on an error. */
static inline int fd_read_exact(int fd, void *b, size_t n)
{
  char *p = b;
  while (n) {
    ssize_t r = read(fd, p, n);
    if (r <= 0)
      return -1;
    p += r;
    n -= (size_t)r;
  }
  return 0;
}

#endif
