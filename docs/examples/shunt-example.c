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

static void on_extent(void *user, uint64_t offset, uint64_t length, uint32_t flags)
{
  (void)user;
  printf("extent %llu+%llu %s%s\n", (unsigned long long)offset, (unsigned long long)length,
         flags & SHUNT_EXTENT_HOLE ? "hole" : "data", flags & SHUNT_EXTENT_ZERO ? ",zero" : "");
}

int main(int argc, char **argv)
{
  struct shunt_handle *h;
  struct shunt_options opt = { .connections = 4 };
  char err[512];
  if (argc != 2) {
    fprintf(stderr, "usage: %s NBD-URI\n", argv[0]);
    return 2;
  }
  if (shunt_connect(&h, argv[1], &opt, err, sizeof err) < 0) {
    fprintf(stderr, "%s\n", err);
    return 1;
  }
  const struct shunt_info *in = shunt_get_info(h);
  printf("size %llu, %u connection(s)\n", (unsigned long long)in->size, in->connections);

  char block[4096];
  memset(block, 'x', sizeof block);
  if (!in->read_only && shunt_pwrite(h, block, sizeof block, 0, 0) < 0) {
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

  if (in->block_status)
    shunt_block_status(h, 0, in->size < 1048576 ? in->size : 1048576, 0, on_extent, NULL);
  shunt_close(h);
  return done == 1 ? 0 : 1;
}
