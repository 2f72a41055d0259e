/* tests/tools/eiofs.c: a one-file FUSE filesystem that fails I/O in a chosen range.
 * It exposes BACKING as MOUNTPOINT/disk.img; reads, writes and fallocates that touch
 * [BAD_OFFSET, BAD_OFFSET + BAD_LENGTH) fail with EIO, everything else passes through.
 * tests/interop/faults_backend.sh uses it where device-mapper's `error` target is missing.
 *
 * Usage: eiofs BACKING BAD_OFFSET BAD_LENGTH MOUNTPOINT [FUSE OPTIONS, e.g. -f -s]
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "onefile.h"

static int backing_fd = -1;
static uint64_t bad_offset, bad_length;

/* True when [off, off + len) overlaps the failing range. */
static int touches_bad_range(off_t off, size_t len)
{
	uint64_t start = (uint64_t)off, end = start + len;

	return len > 0 && start < bad_offset + bad_length && end > bad_offset;
}

static int eio_getattr(const char *path, struct stat *st, struct fuse_file_info *fi)
{
	struct stat b = { 0 };

	(void)fi;
	if (strcmp(path, ONEFILE_PATH) == 0 && fstat(backing_fd, &b) < 0)
		return -errno;
	return onefile_getattr(path, st, b.st_size, b.st_blocks, 4096);
}

static int eio_open(const char *path, struct fuse_file_info *fi)
{
	if (strcmp(path, ONEFILE_PATH) != 0)
		return -ENOENT;
	/* Bypass the page cache, so every read of the bad range reaches us. */
	fi->direct_io = 1;
	return 0;
}

static int eio_read(const char *path, char *buf, size_t len, off_t off, struct fuse_file_info *fi)
{
	(void)path, (void)fi;
	if (touches_bad_range(off, len))
		return -EIO;
	ssize_t n = pread(backing_fd, buf, len, off);
	return n < 0 ? -errno : (int)n;
}

static int eio_write(const char *path, const char *buf, size_t len, off_t off,
		     struct fuse_file_info *fi)
{
	(void)path, (void)fi;
	if (touches_bad_range(off, len))
		return -EIO;
	ssize_t n = pwrite(backing_fd, buf, len, off);
	return n < 0 ? -errno : (int)n;
}

static int eio_fallocate(const char *path, int mode, off_t off, off_t len,
			 struct fuse_file_info *fi)
{
	(void)path, (void)fi;
	if (len > 0 && touches_bad_range(off, (size_t)len))
		return -EIO;
	return fallocate(backing_fd, mode, off, len) < 0 ? -errno : 0;
}

static int eio_fsync(const char *path, int datasync, struct fuse_file_info *fi)
{
	(void)path, (void)fi;
	return (datasync ? fdatasync(backing_fd) : fsync(backing_fd)) < 0 ? -errno : 0;
}

static const struct fuse_operations eio_ops = {
	.getattr = eio_getattr,
	.readdir = onefile_readdir,
	.open = eio_open,
	.read = eio_read,
	.write = eio_write,
	.fallocate = eio_fallocate,
	.fsync = eio_fsync,
	.truncate = onefile_truncate,
};

static int parse_u64(const char *s, uint64_t *out)
{
	char *end;

	errno = 0;
	*out = strtoull(s, &end, 0);
	return errno || *end || end == s ? -EINVAL : 0;
}

int main(int argc, char **argv)
{
	if (argc < 5 || parse_u64(argv[2], &bad_offset) < 0 || parse_u64(argv[3], &bad_length) < 0 ||
	    bad_offset + bad_length < bad_offset) {
		fprintf(stderr, "usage: eiofs BACKING BAD_OFFSET BAD_LENGTH MOUNTPOINT [FUSE OPTIONS]\n");
		return 2;
	}
	backing_fd = open(argv[1], O_RDWR | O_CLOEXEC);
	if (backing_fd < 0) {
		fprintf(stderr, "eiofs: %s: %s\n", argv[1], strerror(errno));
		return 1;
	}
	return onefile_main(argc, argv, 3, &eio_ops);
}
