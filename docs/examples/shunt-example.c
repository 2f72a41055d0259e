/* shunt-example.c: the libshunt example of docs/libshunt.md.
 * Connects to an NBD URI, prints the export's size, writes a block, reads it back
 * into two scattered buffers with the asynchronous API, and prints the extent
 * map of the first MiB.  Usage: shunt-example nbd://127.0.0.1:10809/export */
#include <shunt/shunt.h>

#include <stdio.h>
#include <string.h>

static void on_read(const struct shunt_result *r)
{
  int *done = r->user;
  *done = r->error ? r->error : 1;
  if (r->error)
    fprintf(stderr, "%s\n", r->message);
}

static void on_extent(void *user, const char *context, uint64_t offset, uint64_t length,
                      uint32_t flags)
{
  (void)user;
  printf("%s: extent %llu+%llu %s%s\n", context, (unsigned long long)offset,
         (unsigned long long)length, flags & SHUNT_EXTENT_HOLE ? "hole" : "data",
         flags & SHUNT_EXTENT_ZERO ? ",zero" : "");
}

int main(int argc, char **argv)
{
  if (argc != 2) {
    fprintf(stderr, "usage: %s NBD-URI\n", argv[0]);
    return 2;
  }
  struct shunt_handle *h = shunt_create();
  if (!h || shunt_set_connections(h, 4) < 0 || shunt_connect_uri(h, argv[1]) < 0) {
    fprintf(stderr, "%s\n", h ? shunt_last_error(h) : "out of memory");
    shunt_close(h);
    return 1;
  }
  uint64_t size = (uint64_t)shunt_get_size(h);
  printf("size %llu, %u connection(s)\n", (unsigned long long)size, shunt_get_connections(h));

  char block[4096];
  memset(block, 'x', sizeof block);
  if (shunt_get_flag(h, SHUNT_IS_READ_ONLY) == 0 && shunt_pwrite(h, block, sizeof block, 0, 0) < 0) {
    fprintf(stderr, "%s\n", shunt_last_error(h));
    shunt_close(h);
    return 1;
  }

  /* Asynchronous read into two scattered buffers: the payload lands directly. */
  char a[1000], b[3096];
  struct iovec iov[2] = { { a, sizeof a }, { b, sizeof b } };
  int done = 0;
  if (shunt_aio_pread(h, iov, 2, 0, 0, on_read, &done) < 0) {
    fprintf(stderr, "%s\n", shunt_last_error(h));
    shunt_close(h);
    return 1;
  }
  while (!done)
    if (shunt_poll(h, -1) < 0)
      break;
  printf("read: %s, %llu payload bytes copied by the library\n",
         done == 1 ? "ok" : "failed", (unsigned long long)shunt_payload_bytes_copied(h));

  if (shunt_get_flag(h, SHUNT_HAS_META_CONTEXT) == 1)
    shunt_block_status(h, 0, size < 1048576 ? size : 1048576, 0, on_extent, NULL);
  shunt_close(h);
  return done == 1 ? 0 : 1;
}
