/* iov.c: iovec arithmetic for direct placement: the slice of a caller's
 * scattered buffers that one chunk's bytes must land in. */
#include "client/client.h"

int sh_iov_slice(const struct iovec *iov, int iovcnt, uint64_t off, uint64_t len,
                 struct iovec *out, int max)
{
  int n = 0;
  for (int i = 0; i < iovcnt && len && n < max; i++) {
    if (off >= iov[i].iov_len) {
      off -= iov[i].iov_len;
      continue;
    }
    size_t take = iov[i].iov_len - (size_t)off;
    if (take > len)
      take = (size_t)len;
    out[n].iov_base = (char *)iov[i].iov_base + off;
    out[n].iov_len = take;
    n++;
    len -= take;
    off = 0;
  }
  return n;
}
